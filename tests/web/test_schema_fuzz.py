"""Schemathesis over the OpenAPI spec: no input makes the service answer 500, and every
answer matches what the spec says (status codes, content types, bodies, headers).

A fixed seed and a bounded number of examples per operation keep it repeatable and fast.
Every check runs but one: a schema-valid request may still be refused for what a schema
cannot say (a private host in an image URL, an Idempotency-Key reused for another
request, a draft that is not a completed model), with a 4xx the spec documents.
"""

from __future__ import annotations

import dataclasses

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import positive_data_acceptance

from bff.web import create_app


@pytest.fixture
def api_schema(settings_for_fuzz):
    app = create_app(settings_for_fuzz)
    return schemathesis.openapi.from_wsgi("/openapi.json", app)


@pytest.fixture
def settings_for_fuzz(settings):
    # Limits high enough that the fuzzer reaches the validation behind them.
    return dataclasses.replace(settings, bff_tripo_other_requests_per_minute=100_000,
                               bff_tripo_refine_requests_per_minute=100_000,
                               bff_openai_requests_per_minute=100_000, bff_status_requests_per_minute=100_000)


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=50, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_input_makes_the_service_fail_or_contradict_its_spec(case):
    case.call_and_validate(excluded_checks=[positive_data_acceptance])
