"""The makeit3d BFF.

- ``bff.tasks``: the task and its rules (record, store, lifecycle, capacity, error codes),
  shared by both roles; no Flask, no provider HTTP.
- ``bff.providers``: the Tripo and OpenAI wire clients, what each task kind sends, how a
  Tripo read is understood, and the one error classifier.
- ``bff.web``: the Flask app (the web role).
- Process start-up: ``settings``, ``logs``, ``redis_client``, ``launcher``, ``gunicorn_config``.

The worker role lives in the top-level ``workers`` package.
"""
