"""The README stays true to the code: every setting and every task error code is listed,
with the defaults the code uses."""

from __future__ import annotations

import re
from pathlib import Path

from bff.settings import specs
from bff.tasks.error_codes import TASK_ERROR_CODES

README = (Path(__file__).parent.parent / "README.md").read_text()


def table_rows() -> dict[str, str]:
    rows = re.findall(r"^\| `([A-Z_a-z0-9]+)` \| ([^|]*) \|", README, flags=re.MULTILINE)
    return {name: cell.strip() for name, cell in rows}


def test_every_setting_is_documented_with_its_default():
    documented = table_rows()

    for name, spec in specs().items():
        assert name in documented, f"{name} missing from the README settings table"
        if spec.default is None:
            assert documented[name].startswith("(required"), name
        elif spec.default == "":
            assert documented[name].startswith("(none"), name
        else:
            assert documented[name].startswith(f"`{spec.default}`"), (name, documented[name])


def test_every_task_error_code_is_documented():
    documented = table_rows()

    assert set(TASK_ERROR_CODES) <= set(documented)
