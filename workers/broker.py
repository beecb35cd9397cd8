"""Worker process set-up: settings, logging, the Redis broker, the poll scheduler.

Imported by ``workers.actors`` before any actor is declared, because Dramatiq actors
bind to the broker that is current when their module is imported.
"""

from __future__ import annotations

import dramatiq
from dramatiq.brokers.redis import RedisBroker

from bff.launcher import WORKER_DRAIN_SECONDS
from bff.logs import configure_logging, log_mode
from bff.settings import load_settings_or_exit

from . import runtime
from .scheduler import PollScheduler
from .shutdown import DrainOnce

settings = load_settings_or_exit()
configure_logging(settings.bff_log_level, settings.secrets())
log_mode(settings)
worker_runtime = runtime.WorkerRuntime.build(settings)
runtime.install(worker_runtime)

broker = RedisBroker(client=worker_runtime.services.redis)
broker.add_middleware(worker_runtime.heartbeat)
broker.add_middleware(DrainOnce(WORKER_DRAIN_SECONDS))
broker.add_middleware(
    PollScheduler(
        worker_runtime.services.redis,
        settings.bff_poll_interval_seconds,
        worker_runtime.services.queue.poll,
    )
)
dramatiq.set_broker(broker)
