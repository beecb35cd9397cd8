"""The stable error codes a failed task can carry, with what they mean to the app.

This is the one catalogue: workers pick a code from here and the README's table lists
the same codes. Codes never change meaning; the message may add detail.
"""

from __future__ import annotations

from bff.tasks.record import TaskError

# code -> (default message, what the client should do)
TASK_ERROR_CODES: dict[str, tuple[str, str]] = {
    "timeout": (
        "The task did not finish before its deadline.",
        "Submit the request again.",
    ),
    "provider_failed": (
        "The provider could not generate a result for this request.",
        "Submit again, perhaps with a different prompt or image.",
    ),
    "provider_cancelled": (
        "The provider cancelled the task.",
        "Submit the request again.",
    ),
    "provider_expired": (
        "The provider expired the task before it finished.",
        "Submit the request again.",
    ),
    "content_policy": (
        "The provider refused the prompt or image under its content policy.",
        "Change the prompt or image; resubmitting the same input fails again.",
    ),
    "invalid_request": (
        "The provider rejected the request as invalid.",
        "Check the input (image URL reachable, image format); report it if the input looks right.",
    ),
    "provider_outcome_unknown": (
        "The provider did not confirm the request; it may or may not have started. "
        "It was not re-sent, to avoid paying twice.",
        "You may submit again.",
    ),
    "provider_unavailable": (
        "The provider stayed unavailable after several attempts.",
        "Try again later.",
    ),
    "provider_task_lost": (
        "The provider no longer knows this task.",
        "Submit the request again.",
    ),
    "provider_auth_failed": (
        "The service's provider key was rejected.",
        "Operator: check the provider API key.",
    ),
    "provider_access_denied": (
        "The provider refused this service's account (for example, its region is not supported).",
        "Operator: check the provider account and where the service runs.",
    ),
    "provider_insufficient_credit": (
        "The service's provider account has run out of credit.",
        "Operator: top up the provider account.",
    ),
    "provider_model_invalid": (
        "The configured provider model version was rejected.",
        "Operator: check the model version settings.",
    ),
    "provider_error": (
        "The provider answered with an unexpected error.",
        "Try again; report it with the task id if it persists.",
    ),
    "request_not_accepted": (
        "The request that made this task was answered with an error, so the task was never started.",
        "Nothing to do: the app was told the request failed and may send it again.",
    ),
    "result_not_kept": (
        "The provider made the result (and billed it), but the service could not store it before the "
        "task's deadline.",
        "Submit again; report the provider request id if it persists.",
    ),
    "internal_error": (
        "The service failed while handling this task.",
        "Try again; report it with the task id if it persists.",
    ),
    # Results in object storage (bff/results): the provider finished, its files were not kept.
    "result_storage_failed": (
        "The model was generated but could not be stored: the file storage stayed unavailable until the deadline.",
        "Submit again; operator: check the file storage.",
    ),
    "result_too_large": (
        "The generated model is larger than this service keeps.",
        "Submit again, perhaps with a simpler model; operator: see BFF_MAX_MODEL_MB.",
    ),
    "result_invalid": (
        "The provider's file was damaged or not of the expected type, so it was not kept.",
        "Submit again; report it with the task id if it persists.",
    ),
    "result_unavailable": (
        "The provider finished the task but refused to hand over its file.",
        "Submit again.",
    ),
}


# Codes about the service's own provider account: the provider's words (which may quote
# the key or the account) are for the operator's logs, not for the app.
_OPERATOR_CODES = frozenset({
    "provider_auth_failed", "provider_access_denied", "provider_insufficient_credit", "provider_model_invalid",
})


def task_error(code: str, detail: str | None = None, *, provider_request_id: str | None = None) -> TaskError:
    """A TaskError whose message says what happened and what to do, with the provider's
    detail when it helps the app, and the provider's request id when support needs it."""
    what, advice = TASK_ERROR_CODES[code]
    detail_text = f" Provider said: {detail}." if detail and code not in _OPERATOR_CODES else ""
    reference = f" Provider request id: {provider_request_id}." if provider_request_id else ""
    return TaskError(code=code, message=f"{what}{detail_text}{reference} {advice}")
