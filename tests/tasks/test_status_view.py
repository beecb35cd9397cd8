"""The status body rendered when a task changes: links left for each request's host, and
nothing a provider says can pass for one."""

from __future__ import annotations

import json

from bff.tasks import status_view
from bff.tasks.record import Kind, Service, Task, TaskError


def completed_model(**changes) -> Task:
    task = Task.new(service=Service.TRIPO, kind=Kind.TEXT_TO_MODEL, params={}, request_id="r", client="c")
    return task.evolve(status="completed", progress=100, outputs={"model": "glb", "preview": "png"}, **changes)


def test_links_take_the_base_of_each_request():
    task = completed_model()
    body = status_view.view_fields(task, None)["body"]

    for base in ("http://localhost", "https://api.makeit3d.app"):
        rendered = json.loads(status_view.absolute(body, base))
        assert rendered["result_url"] == f"{base}/tasks/{task.id}/result"
        assert rendered["preview_url"] == f"{base}/tasks/{task.id}/preview"


def test_provider_text_cannot_pass_for_a_link():
    message = 'odd "text" with \x00 a mark, \\u0000 its escape and "\x00/tasks'
    task = completed_model().evolve(status="failed", error=TaskError("provider_failed", message))

    rendered = json.loads(status_view.absolute(status_view.view_fields(task, None)["body"], "https://h"))

    assert rendered["error"]["message"] == message


def test_fields_of_an_earlier_state_are_not_rendered():
    waiting = status_view.view_fields(completed_model().evolve(status="pending", outputs={}), "queue-key")
    done = status_view.view_fields(completed_model(), None)

    assert waiting["waiting"] == "queue-key" and "lists_conversions" not in waiting
    assert "waiting" not in done and done["lists_conversions"] == "1"


def test_extras_join_the_object():
    body = status_view.with_extras('{"a":1}', {"queue_position": "3", "conversions": "[]"})

    assert json.loads(body) == {"a": 1, "queue_position": 3, "conversions": []}
