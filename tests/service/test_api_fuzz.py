"""Property-based tests of the whole HTTP API, generated from its own OpenAPI document.

Schemathesis reads ``/openapi.json`` and, for every operation in it, generates requests:
valid ones, invalid ones, and the edge cases of each parameter (its coverage phase). They
are sent with the admin key, so every operation is reached past authentication, and
every answer must

* not be a server error (5xx), except where a status is explicitly allowed below, and
* conform to the document: a documented status code, the documented content type, and
  a body that matches the documented schema.

Each operation gets a fresh service, so what one operation's examples did (services
deleted, budget spent) does not change what another's see. The examples per operation
are bounded and derandomised, so a run is reproducible and takes seconds.

Nothing in the document is left out. Two parts of the service are not in it and are
covered by test_api.py instead: the WebSocket ``/ws/routing`` (OpenAPI cannot describe
a WebSocket) and the ``/dashboard`` page (HTML for people, not an API operation).
"""

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

# Starlette's TestClient prefers httpx2 and warns once, on import, when it falls back to
# httpx; the fallback behaves the same for these tests.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", "Using `httpx`", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

# The OpenAI-compatible proxy forwards to a model instance. The test fleet's instances
# point at loopback ports where nothing listens (no backend is started here), so a
# well-formed proxied request is answered 502 (the upstream is unreachable) or 503 (no
# instance can take it). That is the proxy working as designed without a backend; these
# statuses, on these operations only, are the server errors allowed.
ALLOWED_SERVER_ERRORS: dict[str, set[int]] = {
    "POST /v1/chat/completions": {502, 503},
    "POST /v1/completions": {502, 503},
}


def _openapi_document() -> dict[str, Any]:
    """The document as a client gets it, from a service with the test settings."""
    with tempfile.TemporaryDirectory() as tmp:
        config = load_config(environ={}, overrides=base_settings(Path(tmp) / "analytics.db"))
        with TestClient(create_app(config)) as client:
            response = client.get("/openapi.json")
    assert response.status_code == 200, response.text
    document: dict[str, Any] = response.json()
    return document


# The document is loaded once, at collection; requests go to a fresh service per
# operation (the `client` fixture) through Starlette's TestClient, so the service's
# lifespan starts and stops with each test.
schema = schemathesis.openapi.from_dict(_openapi_document())


@pytest.fixture
def client(make_config: MakeConfig) -> Iterator[TestClient]:
    # No retries: against the unreachable test backends the proxy would otherwise back
    # off between attempts, which only makes the run slower.
    with TestClient(create_app(make_config(performance={"max_retries": 0}))) as client:
        yield client


def send(client: TestClient, case: schemathesis.Case) -> httpx.Response:
    """Sends ``case`` through ``client``: Schemathesis serialises the request (in the
    keyword arguments of ``requests``), which is mapped onto httpx's here."""
    kwargs = case.as_transport_kwargs(base_url=str(client.base_url), headers=ADMIN)
    # The API has no cookie or multipart parameters, so neither can be generated.
    assert not kwargs.get("cookies"), kwargs
    assert "files" not in kwargs, kwargs
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
    database=None,
    # A fresh service per operation is the point of the function-scoped fixture.
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
def test_api_conforms_to_its_openapi_document(client: TestClient, case: schemathesis.Case) -> None:
    response = send(client, case)
    operation = f"{case.operation.method.upper()} {case.operation.path}"
    if response.status_code >= 500:
        allowed = ALLOWED_SERVER_ERRORS.get(operation, set())
        assert response.status_code in allowed, (
            f"{case.method.upper()} {case.formatted_path} answered {response.status_code}: "
            f"{response.text[:500]}"
        )
    case.validate_response(
        response,
        checks=[status_code_conformance, content_type_conformance, response_schema_conformance],
        headers=ADMIN,
    )


def test_every_operation_is_generated() -> None:
    # A document that lost its operations would make the test above pass vacuously.
    operations = {
        f"{result.ok().method.upper()} {result.ok().path}" for result in schema.get_all_operations()
    }
    assert len(operations) == 24, sorted(operations)
    assert set(ALLOWED_SERVER_ERRORS) <= operations
