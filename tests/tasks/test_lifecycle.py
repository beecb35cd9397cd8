"""The submission lifecycle's transitions, as pure functions: no Redis, no worker."""

from __future__ import annotations

import dataclasses

import pytest

from bff.providers.tripo_status import snapshot_from_tripo
from bff.tasks import lifecycle
from bff.tasks.error_codes import task_error
from bff.tasks.record import (
    CLAIMED,
    COMPLETED,
    FAILED,
    IMAGES,
    MODEL,
    NOT_SUBMITTED,
    PENDING,
    PREVIEW,
    PROCESSING,
    STORING,
    SUBMITTED,
    UPLOAD,
    WAITING,
    Kind,
    Service,
    Task,
)

DEADLINE = 1800.0
T0 = 1_800_000_000.0


def new_task(**changes) -> Task:
    task = Task.new(service=Service.TRIPO, kind=Kind.TEXT_TO_MODEL, params={"prompt": "a fox"}, request_id="r")
    return dataclasses.replace(task, created_at=T0, updated_at=T0, **changes)


def claimed(now: float = T0 + 1) -> Task:
    task = lifecycle.claim_or_wait(new_task(), admitted=True, now=now, deadline_seconds=DEADLINE)
    assert task is not None
    return task


def test_a_new_task_with_room_is_claimed():
    task = claimed(T0 + 1)
    assert task.submission == CLAIMED and task.claimed_at == T0 + 1 and task.deadline_from is None


def test_a_new_task_without_room_waits_and_a_waiting_task_is_not_rewritten():
    waiting = lifecycle.claim_or_wait(new_task(), admitted=False, now=T0 + 1, deadline_seconds=DEADLINE)
    assert waiting is not None and waiting.submission == WAITING
    assert lifecycle.claim_or_wait(waiting, admitted=False, now=T0 + 2, deadline_seconds=DEADLINE) is None


def test_time_in_the_capacity_queue_does_not_count_against_the_deadline():
    waiting = new_task(submission=WAITING)
    late = T0 + DEADLINE + 100
    assert not lifecycle.past_deadline(waiting, late, DEADLINE)
    task = lifecycle.claim_or_wait(waiting, admitted=True, now=late, deadline_seconds=DEADLINE)
    assert task is not None and task.submission == CLAIMED and task.deadline_from == late
    assert not lifecycle.past_deadline(task, late + DEADLINE - 1, DEADLINE)
    assert lifecycle.past_deadline(task, late + DEADLINE + 1, DEADLINE)


def test_a_task_past_its_deadline_fails_instead_of_being_claimed():
    task = lifecycle.claim_or_wait(new_task(), admitted=True, now=T0 + DEADLINE + 1, deadline_seconds=DEADLINE)
    assert task is not None and task.status == FAILED and task.error.code == "timeout"


@pytest.mark.parametrize("submission", [CLAIMED, SUBMITTED])
def test_a_claimed_or_submitted_task_is_never_claimed_again(submission):
    task = new_task(submission=submission, claimed_at=T0)
    assert lifecycle.claim_or_wait(task, admitted=True, now=T0 + 1, deadline_seconds=DEADLINE) is None


def test_mark_sending_happens_once_and_only_for_the_claimant():
    seen = claimed()
    sending = lifecycle.mark_sending(seen, seen, T0 + 2, status=PROCESSING)
    assert sending is not None and sending.sending_at == T0 + 2 and sending.status == PROCESSING
    assert lifecycle.mark_sending(sending, seen, T0 + 3) is None  # already sending
    reclaimed = dataclasses.replace(seen, claimed_at=T0 + 50)  # reconciliation gave it to another worker
    assert lifecycle.mark_sending(reclaimed, seen, T0 + 51) is None


def test_every_claimant_transition_refuses_a_claim_that_was_lost():
    seen = claimed()
    lost = dataclasses.replace(seen, submission=NOT_SUBMITTED, claimed_at=None)
    error = task_error("provider_failed")
    assert lifecycle.sent(lost, seen, provider_task_id="p-1", now=T0) is None
    assert lifecycle.completed_by_provider(lost, seen, outputs={}, provider_request_id=None, now=T0) is None
    assert lifecycle.storing_after_call(lost, seen, outputs={}, provider_request_id=None, now=T0, object_keys={},
                                        next_attempt_at=T0) is None
    assert lifecycle.retry_later(lost, seen, rate_limited=True, next_attempt_at=T0) is None
    assert lifecycle.fail(lost, seen, error) is None
    assert lifecycle.release_unsent_claim(lost, seen, T0) is None


def test_sent_records_the_provider_task():
    seen = claimed()
    task = lifecycle.sent(seen, seen, provider_task_id="p-1", now=T0 + 3)
    assert task is not None and task.submission == SUBMITTED and task.provider_task_id == "p-1"
    assert task.submitted_at == T0 + 3 and task.status == PENDING


def test_a_provider_that_answers_with_the_result_completes_the_task_in_one_step():
    seen = claimed()
    task = lifecycle.completed_by_provider(seen, seen, outputs={"images": 2}, provider_request_id="req", now=T0 + 3)
    assert task is not None and task.status == COMPLETED and task.progress == 100 and task.outputs == {"images": 2}


def test_retry_later_counts_faults_but_not_rate_limits():
    seen = claimed()
    after_429 = lifecycle.retry_later(seen, seen, rate_limited=True, next_attempt_at=T0 + 10)
    assert after_429 is not None
    assert (after_429.submission, after_429.submit_faults, after_429.submit_tries) == (NOT_SUBMITTED, 0, 1)
    assert after_429.claimed_at is None and after_429.sending_at is None and after_429.next_attempt_at == T0 + 10
    again = claimed()
    after_fault = lifecycle.retry_later(again, again, rate_limited=False, next_attempt_at=T0 + 10)
    assert after_fault is not None and after_fault.submit_faults == 1


def test_an_unsent_claim_is_released_but_a_sending_one_is_not():
    seen = claimed()
    released = lifecycle.release_unsent_claim(seen, seen, T0 + 40)
    assert released is not None and released.submission == NOT_SUBMITTED and released.next_attempt_at == T0 + 40
    sending = lifecycle.mark_sending(seen, seen, T0 + 2)
    assert sending is not None
    assert lifecycle.release_unsent_claim(sending, sending, T0 + 40) is None  # it may have been billed


def test_a_nudge_applies_only_to_a_task_not_yet_sent():
    assert lifecycle.nudge(new_task(), T0 + 60).next_attempt_at == T0 + 60
    assert lifecycle.nudge(claimed(), T0 + 60) is None


def submitted(progress: int = 0) -> Task:
    return new_task(submission=SUBMITTED, provider_task_id="p-1", submitted_at=T0, progress=progress)


def test_a_read_moves_progress_forward_only():
    read = snapshot_from_tripo({"status": "running", "progress": 30})
    task = lifecycle.settle_from_read(submitted(progress=50), read, now=T0)
    assert task is not None and task.status == PROCESSING and task.progress == 50


def test_a_read_that_changes_nothing_writes_nothing():
    task = submitted(progress=0)
    assert lifecycle.settle_from_read(task, snapshot_from_tripo({"status": "queued"}), now=T0) is None


def test_a_successful_read_completes_the_task_with_its_outputs():
    read = {"status": "success", "progress": 100, "output": {"model_url": "https://t.test/m.glb"}}
    task = lifecycle.settle_from_read(submitted(), snapshot_from_tripo(read), now=T0)
    assert task is not None and task.status == COMPLETED and task.outputs == {MODEL: "glb"}


@pytest.mark.parametrize("object_keys", [None, {MODEL: "results/k/model.glb"}], ids=["kept at Tripo", "storing"])
def test_a_successful_read_keeps_what_tripo_charged_for_settling(object_keys):
    read = {"status": "success", "credits_consumed": 27.5, "output": {"model_url": "https://t.test/m.glb"}}
    task = lifecycle.settle_from_read(submitted(), snapshot_from_tripo(read), now=T0, object_keys=object_keys)
    assert task is not None and task.credits_consumed == 27.5


def test_a_read_never_settles_a_task_that_was_not_submitted():
    read = {"status": "success", "output": {"model_url": "https://t.test/m.glb"}}
    assert lifecycle.settle_from_read(claimed(), snapshot_from_tripo(read), now=T0) is None


def test_a_task_the_provider_lost_fails_only_once_submitted():
    lost = lifecycle.provider_lost(submitted())
    assert lost is not None and lost.error.code == "provider_task_lost"
    assert lifecycle.provider_lost(claimed()) is None


# --- storing the files (object storage configured) ---------------------------------------------

SUCCESS = {"status": "success", "progress": 100,
           "output": {"model_url": "https://t.test/m.glb", "rendered_image_url": "https://t.test/p.png"}}
MODEL_KEYS = {MODEL: "results/t/secret/model.glb", PREVIEW: "results/t/secret/preview"}


def storing(now: float = T0 + 100) -> Task:
    task = lifecycle.settle_from_read(submitted(progress=60), snapshot_from_tripo(SUCCESS), now=now,
                                      object_keys=MODEL_KEYS)
    assert task is not None
    return task


def test_with_storage_a_successful_read_stores_before_it_completes():
    task = storing(T0 + 100)
    assert (task.status, task.progress, task.submission) == (PROCESSING, 99, STORING)
    assert task.object_keys == MODEL_KEYS and task.outputs == {MODEL: "glb", PREVIEW: "png"}
    # Its own deadline: the provider's time does not eat the time to keep a paid result.
    assert task.deadline_from == T0 + 100 and task.next_attempt_at == T0 + 100
    assert lifecycle.settle_from_read(task, snapshot_from_tripo(SUCCESS), now=T0 + 101) is None  # read once


def test_a_stored_task_completes_with_its_outputs_as_stored_and_only_from_storing():
    done = lifecycle.files_stored(storing(), {MODEL: "glb", PREVIEW: "webp"})
    assert done is not None and (done.status, done.progress) == (COMPLETED, 100) and done.outputs[PREVIEW] == "webp"
    assert lifecycle.files_stored(submitted(), {}) is None
    assert lifecycle.store_again_at(submitted(), T0) is None
    assert lifecycle.storing_failed(submitted(), task_error("result_invalid")) is None


def test_storing_again_counts_its_tries_and_a_nudge_applies_to_it():
    again = lifecycle.store_again_at(storing(), T0 + 200)
    assert again is not None and again.store_tries == 1 and again.next_attempt_at == T0 + 200
    assert lifecycle.nudge(again, T0 + 300).next_attempt_at == T0 + 300


def test_paid_images_storage_could_not_take_yet_wait_in_storing():
    seen = lifecycle.mark_sending(claimed(), claimed(), T0 + 2, status=PROCESSING)
    keys = {IMAGES: ["results/t/s/image-0.png", "results/t/s/image-1.png"]}
    task = lifecycle.storing_after_call(dataclasses.replace(seen, object_keys={UPLOAD: "uploads/t/s/image.png"}),
                                        seen, outputs={IMAGES: 2}, provider_request_id="req_1", now=T0 + 50,
                                        object_keys=keys, next_attempt_at=T0 + 52)
    assert task is not None and (task.status, task.progress, task.submission) == (PROCESSING, 99, STORING)
    assert task.provider_request_id == "req_1" and task.next_attempt_at == T0 + 52
    assert task.object_keys == {UPLOAD: "uploads/t/s/image.png", **keys}  # the input stays known, to be deleted


def test_past_its_deadline_a_storing_task_fails_with_a_storage_code():
    assert lifecycle.deadline_error(claimed()).code == "timeout"
    model = lifecycle.deadline_error(storing())
    assert model.code == "result_storage_failed"
    images = lifecycle.deadline_error(storing().evolve(object_keys={IMAGES: ["k"]}, provider_request_id="req_7"))
    assert images.code == "result_not_kept" and "req_7" in images.message  # paid: OpenAI's request is named
