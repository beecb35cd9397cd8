"""Where files live in the bucket: the storage URL and the layout of object keys.

Keys are ``{prefix}/{folder}/{task_id}/{random}/{name}``:

- ``folder`` is ``results`` for the files a task made (kept as long as the task, then
  removed by the bucket's lifecycle rule) or ``uploads`` for inputs (deleted when the task
  ends; a shorter lifecycle rule on that folder removes any a crash left behind);
- 192 random bits make a key impossible to guess from a task id, while the task id lets
  an operator find a task's files by prefix.

No boto3 here: the settings check ``BFF_STORAGE_URL`` with this at start.
"""

from __future__ import annotations

import re
import secrets
import urllib.parse

RESULTS = "results"
UPLOADS = "uploads"

# SigV4 signed links live at most 7 days.
LINK_SECONDS_MAX = 7 * 24 * 3600

_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
# One segment of a key: the prefix's parts, a task id, a file name.
_KEY_SEGMENT = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}")
_STORAGE_URL_FORM = "s3://BUCKET or s3://BUCKET/PREFIX"


def parse_storage_url(url: str) -> tuple[str, str]:
    """``s3://bucket`` or ``s3://bucket/some/prefix`` -> (bucket, prefix without slashes)."""
    # The value is never echoed: a mistaken setting could hold a secret.
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "s3" or parts.query or parts.fragment:
        raise ValueError(f"the storage URL must look like {_STORAGE_URL_FORM}")
    if not _BUCKET_NAME.fullmatch(parts.netloc):
        raise ValueError(f"the storage URL must look like {_STORAGE_URL_FORM}: the bucket name is 3-63 "
                         "lowercase letters, digits, dots and hyphens (no credentials or port)")
    prefix = parts.path.strip("/")
    if prefix and not all(_KEY_SEGMENT.fullmatch(segment) for segment in prefix.split("/")):
        raise ValueError(f"the storage URL must look like {_STORAGE_URL_FORM}: the prefix is made of "
                         "letters, digits, '.', '_' and '-' separated by '/'")
    return parts.netloc, prefix


def object_key(prefix: str, folder: str, task_id: str, name: str) -> str:
    """A fresh key for the file ``name`` of a task (see the module's docstring)."""
    segments = (prefix, folder, _check_segment(task_id, "task_id"), secrets.token_urlsafe(24),
                _check_segment(name, "name"))
    return "/".join(segment for segment in segments if segment)


def _check_segment(value: str, what: str) -> str:
    if not _KEY_SEGMENT.fullmatch(value):
        raise ValueError(f"{what} must be 1-128 letters, digits, '.', '_' or '-', not starting with '.'")
    return value
