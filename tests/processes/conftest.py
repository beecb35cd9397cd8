"""Every test here starts the service's real processes: all are slow."""

import pytest


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "/processes/" in str(item.fspath):
            item.add_marker(pytest.mark.slow)
