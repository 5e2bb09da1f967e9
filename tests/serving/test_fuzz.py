"""A schema fuzzer against the real app: every answer is a status its route documents, and none is a 500.

Schemathesis generates requests from the app's own OpenAPI page (valid and invalid ones: wrong types, huge and
odd strings, missing fields), with and without the API key. A bounded number of examples per route keeps it to
seconds; the app serves a classic model with the hashing encoder, so no sentence model is loaded.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import status_code_conformance

from shoprec.serving.app import create_app
from shoprec.serving.settings import ServingSettings

KEY = "fuzz-key"
EXAMPLES = 25  # per route and method


@pytest.fixture(scope="module")
def fuzzed_app(
    classic_dir: Callable[[str], Path], seed_sqlite: Callable[[Path], str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FastAPI]:
    directory = tmp_path_factory.mktemp("fuzz")
    settings_ = ServingSettings(
        model_dir=classic_dir("itemknn"),
        database_url=seed_sqlite(directory),
        api_key=KEY,
        search_encoder="hashing",
        cache_dir=directory / "cache",
        max_batch=50,
    )
    app = create_app(settings_)
    with TestClient(app):  # runs the lifespan: store and model are loaded for the whole module
        yield app


FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)


def no_internal_error(_ctx: object, response: schemathesis.Response, _case: schemathesis.Case) -> bool:
    """A 500 is a bug; a documented 503 (no LLM for the assistant in this app, a busy store) is an answer."""
    assert response.status_code != 500, f"500: {response.text[:300]}"
    return True


CHECKS = [no_internal_error, status_code_conformance]


@pytest.mark.parametrize("headers", [{"X-API-Key": KEY}, {}], ids=["with key", "without key"])
def test_no_undocumented_status_and_no_server_error(fuzzed_app: FastAPI, headers: dict[str, str]) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", fuzzed_app)
    operations = [result.ok() for result in schema.get_all_operations()]
    fuzzed = [operation for operation in operations if operation.path != "/v1/admin/reload"]  # reloads a model
    assert len(fuzzed) >= 8

    for operation in fuzzed:

        @given(case=operation.as_strategy())
        @FUZZ
        def answers_as_documented(case: schemathesis.Case) -> None:
            case.call_and_validate(headers=headers, checks=CHECKS)

        answers_as_documented()
