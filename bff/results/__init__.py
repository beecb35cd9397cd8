"""Results in object storage: with ``BFF_STORAGE_URL`` set, every file a task makes (and
the image uploaded with it) is kept in an S3-compatible bucket, and downloads are 302s to
links signed for that bucket. Without it, nothing here is used.

- ``locations``: the storage URL and the layout of object keys (no boto3: settings use it);
- ``object_store``: the bucket, through boto3 (put, stream from a URL, sign, delete, ping);
- ``file_kinds``: recognising a file by its bytes before it is kept;
- ``task_files``: where each file of a task is, for both roles (bucket or Redis).
"""
