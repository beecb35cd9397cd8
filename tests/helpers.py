"""Small helpers shared by test modules."""

from __future__ import annotations

from bff.task import Task
from bff.task_store import TaskStore


def store_for(redis_client) -> TaskStore:
    return TaskStore(redis_client, retention_seconds=600, open_ttl_seconds=3600)


# The client the Flask test client is, with no API keys configured: its address.
TEST_CLIENT = "address:127.0.0.1"


def new_text_task(redis_client, *, prompt="a fox", style=None, texture=True, created_at=None) -> Task:
    task = Task.new(service="tripo", kind="text_to_model", params={"prompt": prompt, "style": style, "texture": texture},
                    request_id="req-test", client=TEST_CLIENT)
    if created_at is not None:
        task = task.evolve(created_at=created_at)
    store_for(redis_client).create(task)
    return task
