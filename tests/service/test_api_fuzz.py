"""Property-based tests of the whole HTTP API from its own OpenAPI document."""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from starlette.exceptions import StarletteDeprecationWarning

from fleetroute.service.app import create_app
from fleetroute.service.config import load_config

from .conftest import ADMIN, MakeConfig, base_settings

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", "Using `httpx`", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

PROXY_OPERATIONS = {"POST /v1/chat/completions", "POST /v1/completions"}
ALLOWED_SERVER_ERRORS = {op: {503} for op in PROXY_OPERATIONS}
CALLS: dict[str, list[int]] = {}


def _openapi_document() -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        config = load_config(environ={}, overrides=base_settings(Path(tmp) / "openapi.db"))
        with TestClient(create_app(config)) as client:
            document: dict[str, Any] = client.get("/openapi.json").json()
    return document


schema = schemathesis.openapi.from_dict(_openapi_document())


@pytest.fixture
def client(make_config: MakeConfig) -> Iterator[TestClient]:
    with TestClient(create_app(make_config(performance={"max_retries": 0}))) as client:
        yield client


def send(client: TestClient, case: schemathesis.Case) -> httpx.Response:
    kwargs = case.as_transport_kwargs(base_url=str(client.base_url), headers=ADMIN)
    assert not kwargs.get("cookies") and "files" not in kwargs, kwargs
    body: dict[str, Any] = {}
    if "json" in kwargs:
        body["json"] = kwargs["json"]
    elif kwargs.get("data") is not None:
        body["content"] = kwargs["data"]
    return client.request(
        kwargs["method"], kwargs["url"], headers=kwargs["headers"], params=kwargs["params"], **body
    )


@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
def test_api_conforms_to_its_openapi_document(client: TestClient, case: schemathesis.Case) -> None:
    response = send(client, case)
    label = f"{case.method.upper()} {case.path}"
    CALLS.setdefault(label, []).append(response.status_code)
    if response.status_code >= 500:
        allowed = ALLOWED_SERVER_ERRORS.get(label, set())
        assert response.status_code in allowed, (
            f"{label} answered {response.status_code}: {response.text[:500]}"
        )
    case.validate_response(
        response,
        checks=[status_code_conformance, content_type_conformance, response_schema_conformance],
        headers=ADMIN,
    )


def test_zz_report() -> None:
    import collections
    for k, v in sorted(CALLS.items()):
        print(k, len(v), collections.Counter(v))
