"""The one table of who pays for which ending covers every error code there is."""

from __future__ import annotations

from bff.credits.settlement import FAILURE_BILLING, release_for
from bff.tasks.error_codes import TASK_ERROR_CODES, task_error
from tests.credits.building import text_task


def test_every_error_code_has_a_billing_decision():
    assert set(FAILURE_BILLING) == set(TASK_ERROR_CODES)


def test_a_failure_without_an_error_is_treated_as_an_internal_error_after_sending():
    ended = text_task().evolve(status="failed", sending_at=1.0)

    assert release_for(ended, 20) == release_for(ended.evolve(error=task_error("internal_error")), 20)
