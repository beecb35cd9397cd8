"""Small helpers shared by test modules."""

from __future__ import annotations

from bff.tasks.record import Kind, Service, Task
from bff.tasks.store import TaskStore


def store_for(redis_client) -> TaskStore:
    return TaskStore(redis_client, retention_seconds=600, open_ttl_seconds=3600)


# The client the Flask test client is, with no API keys configured: its address.
TEST_CLIENT = "address:127.0.0.1"


def new_text_task(redis_client, *, prompt="a fox", style=None, texture=True, created_at=None) -> Task:
    task = Task.new(service=Service.TRIPO, kind=Kind.TEXT_TO_MODEL,
                    params={"prompt": prompt, "style": style, "texture": texture},
                    request_id="req-test", client=TEST_CLIENT)
    if created_at is not None:
        task = task.evolve(created_at=created_at)
    store_for(redis_client).create(task)
    return task


def completed_model(redis_client, *, kind: str = Kind.TEXT_TO_MODEL, provider_task_id: str = "tripo-draft-1",
                    **changes) -> Task:
    """A model task that Tripo has finished (an untextured draft unless ``changes`` say otherwise)."""
    model = Task.new(service=Service.TRIPO, kind=kind, params={"prompt": "a cat", "style": None, "texture": False},
                     request_id="r", client=TEST_CLIENT)
    completed = {"status": "completed", "progress": 100, "provider_task_id": provider_task_id,
                 "submission": "submitted", "outputs": {"model": "glb"}}
    model = model.evolve(**{**completed, **changes})
    store_for(redis_client).create(model)
    return model


# The worker steps, run in the test's thread with the runtime the test installed (the
# same one the actors of a running test worker use).
def submit(task_id: str) -> float | None:
    from workers import runtime, submission

    return submission.submit(runtime.current(), task_id)


def poll_cycle() -> None:
    from workers import polling, runtime

    polling.poll_cycle(runtime.current())


def reconcile_open_tasks() -> None:
    from workers import reconcile, runtime

    reconcile.reconcile_open_tasks(runtime.current())


def queued(redis_client, queue: str) -> int:
    """Messages waiting in a Dramatiq queue (the Redis broker keeps each queue in a list)."""
    return redis_client.llen(f"dramatiq:{queue}")


# The fewest settings a live (not sandbox) process starts with.
MINIMAL_LIVE_ENVIRON = {"REDIS_URL": "redis://127.0.0.1:6379/0", "TRIPO_API_KEY": "tsk_abc",
                        "OPENAI_API_KEY": "sk-abc", "BFF_ALLOW_ANONYMOUS": "true"}
