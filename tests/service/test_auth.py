"""Tests of ``fleetroute.service.auth``: API keys, JWTs, scopes, the FastAPI dependency
and the log redaction filter."""

from __future__ import annotations

import io
import logging
import re
import string
import warnings
from collections.abc import Iterator
from typing import Annotated, Any

import jwt
import pytest
from fastapi import Depends, FastAPI, WebSocket
from hypothesis import given
from hypothesis import strategies as st
from starlette.exceptions import StarletteDeprecationWarning
from starlette.requests import Request
from starlette.websockets import WebSocketDisconnect

from fleetroute.clock import ManualClock
from fleetroute.service.auth import (
    SCOPE_ADMIN,
    SCOPE_ROUTE,
    ApiKeyEntry,
    Authenticator,
    AuthError,
    Principal,
    RedactSecrets,
    generate_api_key,
    hash_api_key,
    principal_from_websocket,
    redact_secrets,
    require_scope,
)

# Starlette's TestClient prefers httpx2 and warns once, on import, when it falls back to
# httpx; the fallback works the same for these tests.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", "Using `httpx`", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

SECRET = "s3cret-for-tests-only-0123456789abcdef"  # 38 bytes: enough for HS256
OTHER_SECRET = "another-secret-for-tests-0123456789abcdef"
NOW = 1_700_000_000.0
ROUTE_KEY = "fr_route-key-for-tests-0123456789abcdef"
ADMIN_KEY = "fr_admin-key-for-tests-0123456789abcdef"


def make_auth(clock: ManualClock | None = None, **overrides: Any) -> Authenticator:
    options: dict[str, Any] = {
        "enabled": True,
        "api_keys": [
            ApiKeyEntry.from_key("router-client", ROUTE_KEY, {SCOPE_ROUTE}),
            ApiKeyEntry.from_key("ops", ADMIN_KEY, {SCOPE_ADMIN}),
        ],
        "jwt_secret": SECRET,
        "clock": clock or ManualClock(NOW),
    }
    options.update(overrides)
    return Authenticator(**options)


def token(
    claims: dict[str, Any] | None = None,
    *,
    secret: str = SECRET,
    algorithm: str = "HS256",
    drop: tuple[str, ...] = (),
) -> str:
    payload: dict[str, Any] = {"sub": "alice", "exp": int(NOW) + 600, "scope": "route"}
    payload.update(claims or {})
    for name in drop:
        payload.pop(name)
    return jwt.encode(payload, secret, algorithm=algorithm)


def bearer(value: str) -> str:
    return f"Bearer {value}"


def refused(auth: Authenticator, authorization: str | None, x_api_key: str | None) -> AuthError:
    with pytest.raises(AuthError) as info:
        auth.authenticate(authorization, x_api_key)
    return info.value


# Hashing and key entries


def test_hash_api_key_is_prefixed_hex_sha256() -> None:
    digest = hash_api_key("abc")
    assert digest == "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert hash_api_key("abc") == digest
    assert hash_api_key("abd") != digest
    with pytest.raises(ValueError, match="non-empty"):
        hash_api_key("")


def test_generate_api_key_is_prefixed_random_and_hashable() -> None:
    keys = {generate_api_key() for _ in range(50)}
    assert len(keys) == 50
    for key in keys:
        assert re.fullmatch(r"fr_[A-Za-z0-9_-]{43}", key)
        assert re.fullmatch(r"sha256:[0-9a-f]{64}", hash_api_key(key))


def test_api_key_entry_validates_hash_without_echoing_it() -> None:
    with pytest.raises(ValueError, match="key_hash") as info:
        ApiKeyEntry("ops", ROUTE_KEY, frozenset({SCOPE_ROUTE}))  # the plain key by mistake
    assert ROUTE_KEY not in str(info.value)
    upper = hash_api_key(ROUTE_KEY).upper().replace("SHA256", "sha256")
    with pytest.raises(ValueError, match="key_hash"):
        ApiKeyEntry("ops", upper, frozenset({SCOPE_ROUTE}))


def test_api_key_entry_validates_name_and_scopes() -> None:
    digest = hash_api_key(ROUTE_KEY)
    with pytest.raises(ValueError, match="name"):
        ApiKeyEntry(" ", digest, frozenset({SCOPE_ROUTE}))
    with pytest.raises(ValueError, match="'superuser'"):
        ApiKeyEntry("ops", digest, frozenset({"route", "superuser"}))
    with pytest.raises(ValueError, match="collection of scope names"):
        ApiKeyEntry("ops", digest, "admin")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least one"):
        ApiKeyEntry("ops", digest, frozenset())
    entry = ApiKeyEntry("ops", digest, {"admin"})  # type: ignore[arg-type]
    assert entry.scopes == frozenset({"admin"})
    assert digest not in repr(entry)


def test_principal_admin_implies_route_and_validates() -> None:
    principal = Principal("ops", frozenset({SCOPE_ADMIN}), "jwt")
    assert principal.scopes == {SCOPE_ADMIN, SCOPE_ROUTE}
    assert principal.has_scope(SCOPE_ROUTE)
    with pytest.raises(ValueError, match="method"):
        Principal("ops", frozenset(), "password")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="client_id"):
        Principal("", frozenset(), "jwt")


# API keys


def test_api_key_in_x_api_key_header() -> None:
    principal = make_auth().authenticate(None, ROUTE_KEY)
    assert principal == Principal("router-client", frozenset({SCOPE_ROUTE}), "api_key")


def test_api_key_as_bearer_token() -> None:
    principal = make_auth().authenticate(bearer(ADMIN_KEY), None)
    assert principal.client_id == "ops"
    assert principal.scopes == {SCOPE_ADMIN, SCOPE_ROUTE}
    assert principal.method == "api_key"
    # The scheme is case-insensitive and surrounding whitespace is ignored.
    assert make_auth().authenticate(f"  bearer   {ADMIN_KEY} ", None).client_id == "ops"


def test_wrong_api_key_is_401_without_echo() -> None:
    wrong = "fr_wrong-key-0123456789abcdefghij"
    for error in (refused(make_auth(), None, wrong), refused(make_auth(), bearer(wrong), None)):
        assert error.status_code == 401
        assert error.detail == "invalid API key"
        assert wrong not in str(error) and wrong not in repr(error)
        assert error.headers["WWW-Authenticate"].startswith("Bearer")
        assert 'error="invalid_token"' in error.headers["WWW-Authenticate"]


def test_missing_credentials_is_401_with_challenge() -> None:
    auth = make_auth()
    for authorization, x_api_key in ((None, None), ("", ""), ("  ", None)):
        error = refused(auth, authorization, x_api_key)
        assert error.status_code == 401
        assert "missing credentials" in error.detail
        assert error.headers == {"WWW-Authenticate": 'Bearer realm="fleetroute"'}


def test_malformed_authorization_is_401_without_echo() -> None:
    auth = make_auth()
    error = refused(auth, f"Basic {ROUTE_KEY}", None)
    assert error.status_code == 401
    assert "use 'Bearer <token>'" in error.detail
    error = refused(auth, ROUTE_KEY, None)  # no scheme: the key sits where the scheme goes
    assert "Bearer" in error.detail and ROUTE_KEY not in error.detail
    assert refused(auth, "Bearer", None).detail == "empty bearer token"
    error = refused(auth, bearer(ROUTE_KEY), ROUTE_KEY)
    assert error.status_code == 401 and "not both" in error.detail


# JWT


def test_jwt_valid_with_scope_string() -> None:
    principal = make_auth().authenticate(bearer(token({"scope": "openid route profile"})), None)
    assert principal == Principal("alice", frozenset({SCOPE_ROUTE}), "jwt")


def test_jwt_scopes_list_and_both_forms() -> None:
    auth = make_auth()
    listed = auth.authenticate(bearer(token({"scopes": ["admin"]}, drop=("scope",))), None)
    assert listed.scopes == {SCOPE_ADMIN, SCOPE_ROUTE}
    joined = auth.authenticate(bearer(token({"scope": "route", "scopes": ["admin"]})), None)
    assert joined.scopes == {SCOPE_ADMIN, SCOPE_ROUTE}
    bare = auth.authenticate(bearer(token(drop=("scope",))), None)
    assert bare.scopes == frozenset() and bare.client_id == "alice"


@pytest.mark.parametrize(
    ("claims", "message"),
    [
        ({"scope": ["route"]}, "invalid 'scope' claim"),
        ({"scopes": "route admin"}, "invalid 'scopes' claim"),
        ({"scopes": ["route", 3]}, "invalid 'scopes' claim"),
        ({"exp": "tomorrow"}, "invalid 'exp' claim"),
        ({"sub": ""}, "invalid 'sub' claim"),
    ],
)
def test_jwt_bad_claims_are_401(claims: dict[str, Any], message: str) -> None:
    error = refused(make_auth(), bearer(token(claims)), None)
    assert error.status_code == 401
    assert message in error.detail


def test_jwt_expiry_follows_the_injected_clock() -> None:
    clock = ManualClock(NOW)
    auth = make_auth(clock)
    valid = bearer(token({"exp": int(NOW) + 60}))
    assert auth.authenticate(valid, None).client_id == "alice"
    clock.advance(59.5)
    assert auth.authenticate(valid, None).client_id == "alice"
    clock.advance(0.5)
    error = refused(auth, valid, None)
    assert (error.status_code, error.detail) == (401, "expired token")
    assert valid.split()[1] not in str(error)


def test_jwt_not_before_follows_the_injected_clock() -> None:
    clock = ManualClock(NOW)
    auth = make_auth(clock)
    early = bearer(token({"nbf": int(NOW) + 30}))
    assert "not yet valid" in refused(auth, early, None).detail
    clock.advance(30)
    assert auth.authenticate(early, None).client_id == "alice"


def test_jwt_without_exp_is_refused() -> None:
    error = refused(make_auth(), bearer(token(drop=("exp",))), None)
    assert error.detail == "token is missing the 'exp' claim"


def test_jwt_wrong_signature_is_401() -> None:
    forged = token({"scope": "admin"}, secret=OTHER_SECRET)
    error = refused(make_auth(), bearer(forged), None)
    assert (error.status_code, error.detail) == (401, "invalid token signature")
    assert forged not in str(error)


def test_jwt_alg_none_is_rejected() -> None:
    unsigned = jwt.encode({"sub": "mallory", "exp": int(NOW) + 60, "scope": "admin"}, None, "none")
    assert unsigned.count(".") == 2
    error = refused(make_auth(), bearer(unsigned), None)
    assert error.status_code == 401
    assert error.detail == "token algorithm not allowed (accepted: HS256)"


def test_jwt_algorithm_outside_the_configured_list_is_rejected() -> None:
    long_secret = SECRET * 2  # 76 bytes, enough for HS512
    auth = make_auth(jwt_secret=long_secret)
    strong = token(secret=long_secret, algorithm="HS512")
    assert "algorithm not allowed" in refused(auth, bearer(strong), None).detail
    both = make_auth(jwt_secret=long_secret, jwt_algorithms=("HS256", "HS512"))
    assert both.authenticate(bearer(strong), None).client_id == "alice"


def test_jwt_audience_and_issuer() -> None:
    auth = make_auth(jwt_audience="fleetroute", jwt_issuer="https://id.example")
    good = {"aud": "fleetroute", "iss": "https://id.example"}
    assert auth.authenticate(bearer(token(good)), None).client_id == "alice"
    wrong_aud = refused(auth, bearer(token({**good, "aud": "billing"})), None)
    assert wrong_aud.detail == "invalid token audience"
    no_aud = refused(auth, bearer(token({"iss": "https://id.example"})), None)
    assert no_aud.detail == "token is missing the 'aud' claim"
    wrong_iss = refused(auth, bearer(token({**good, "iss": "https://evil.example"})), None)
    assert wrong_iss.detail == "invalid token issuer"
    # A token addressed to some audience is refused by a service that expects none.
    plain = make_auth()
    assert "audience" in refused(plain, bearer(token({"aud": "billing"})), None).detail


def test_malformed_jwt_and_jwt_without_secret() -> None:
    assert refused(make_auth(), bearer("abc.def.ghi"), None).detail == "malformed token"
    # Without a JWT secret a dotted token is just an (unknown) API key.
    keys_only = make_auth(jwt_secret=None)
    assert refused(keys_only, bearer(token()), None).detail == "invalid API key"


# Scopes


def test_authorize_route_only_principal_for_admin_is_403() -> None:
    auth = make_auth()
    principal = auth.authenticate(None, ROUTE_KEY)
    assert auth.authorize(principal, SCOPE_ROUTE) is principal
    with pytest.raises(AuthError) as info:
        auth.authorize(principal, SCOPE_ADMIN)
    assert info.value.status_code == 403
    assert "'admin' scope" in info.value.detail
    assert 'error="insufficient_scope"' in info.value.headers["WWW-Authenticate"]
    with pytest.raises(ValueError, match="unknown scope 'root'"):
        auth.authorize(principal, "root")


# Disabled mode and configuration errors


def test_disabled_warns_and_grants_admin(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="fleetroute.service"):
        auth = Authenticator(enabled=False, api_keys=[], jwt_secret=None)
    warnings = [r for r in caplog.records if r.name == "fleetroute.service"]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING
    assert "authentication is disabled" in warnings[0].getMessage()
    assert "admin" in warnings[0].getMessage()
    assert not auth.enabled
    expected = Principal("anonymous", frozenset({SCOPE_ROUTE, SCOPE_ADMIN}), "anonymous")
    assert auth.authenticate(None, None) == expected
    assert auth.authenticate("Bearer whatever", "junk") == expected


def test_enabled_with_nothing_configured_is_a_config_error() -> None:
    with pytest.raises(ValueError, match="no credentials") as info:
        Authenticator(enabled=True, api_keys=[], jwt_secret=None)
    assert "api_keys" in str(info.value) and "jwt_secret" in str(info.value)
    assert "enabled=False" in str(info.value)


def test_bad_jwt_settings_are_config_errors() -> None:
    with pytest.raises(ValueError, match="at least 32 bytes"):
        make_auth(jwt_secret="short")
    with pytest.raises(ValueError, match="at least 64 bytes"):
        make_auth(jwt_algorithms=("HS512",))
    for algorithms in (("none",), ("RS256",), ()):
        with pytest.raises(ValueError, match="jwt_algorithms"):
            make_auth(jwt_algorithms=algorithms)
    with pytest.raises(ValueError, match="jwt_audience"):
        make_auth(jwt_audience="")


def test_duplicate_key_hash_is_a_config_error() -> None:
    with pytest.raises(ValueError, match="'a' and 'b' have the same key_hash"):
        make_auth(
            api_keys=[
                ApiKeyEntry.from_key("a", ROUTE_KEY, {SCOPE_ROUTE}),
                ApiKeyEntry.from_key("b", ROUTE_KEY, {SCOPE_ADMIN}),
            ]
        )


def test_secret_is_not_echoed_in_config_error() -> None:
    secret = "tiny-secret-value"
    with pytest.raises(ValueError) as info:
        make_auth(jwt_secret=secret)
    assert secret not in str(info.value)


# FastAPI dependency and WebSocket helper


RouteCaller = Annotated[Principal, Depends(require_scope(SCOPE_ROUTE))]


def build_app(auth: Authenticator | None) -> FastAPI:
    app = FastAPI()
    if auth is not None:
        app.state.authenticator = auth

    @app.get("/route")
    async def route(principal: RouteCaller) -> dict[str, Any]:
        return {"client_id": principal.client_id, "scopes": sorted(principal.scopes)}

    @app.get("/admin", dependencies=[Depends(require_scope(SCOPE_ADMIN))])
    async def admin(request: Request) -> dict[str, Any]:
        principal: Principal = request.state.principal
        return {"client_id": principal.client_id, "method": principal.method}

    @app.websocket("/ws")
    async def ws(websocket: WebSocket) -> None:
        try:
            principal = principal_from_websocket(websocket, SCOPE_ADMIN)
        except AuthError as exc:
            await websocket.close(code=1008, reason=exc.detail)
            return
        await websocket.accept()
        await websocket.send_json({"client_id": principal.client_id})
        await websocket.close()

    return app


@pytest.fixture
def client() -> Iterator[TestClient]:
    with TestClient(build_app(make_auth(ManualClock(NOW)))) as test_client:
        yield test_client


def test_require_scope_admits_api_key_and_jwt(client: TestClient) -> None:
    response = client.get("/route", headers={"X-API-Key": ROUTE_KEY})
    assert response.status_code == 200
    assert response.json() == {"client_id": "router-client", "scopes": ["route"]}
    response = client.get("/admin", headers={"Authorization": bearer(ADMIN_KEY)})
    assert response.json() == {"client_id": "ops", "method": "api_key"}
    admin_jwt = token({"sub": "carol", "scopes": ["admin"]}, drop=("scope",))
    response = client.get("/admin", headers={"Authorization": bearer(admin_jwt)})
    assert response.json() == {"client_id": "carol", "method": "jwt"}


def test_require_scope_refusals(client: TestClient) -> None:
    missing = client.get("/route")
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == 'Bearer realm="fleetroute"'
    assert "missing credentials" in missing.json()["detail"]

    wrong = client.get("/route", headers={"X-API-Key": "fr_not-a-real-key-0123456789"})
    assert (wrong.status_code, wrong.json()) == (401, {"detail": "invalid API key"})
    assert wrong.headers["www-authenticate"].startswith("Bearer")

    expired = token({"exp": int(NOW) - 1})
    response = client.get("/route", headers={"Authorization": bearer(expired)})
    assert (response.status_code, response.json()["detail"]) == (401, "expired token")

    forbidden = client.get("/admin", headers={"X-API-Key": ROUTE_KEY})
    assert forbidden.status_code == 403
    assert "'admin' scope" in forbidden.json()["detail"]
    assert "insufficient_scope" in forbidden.headers["www-authenticate"]

    repeated = client.get("/route", headers=[("X-API-Key", ROUTE_KEY), ("X-API-Key", ROUTE_KEY)])
    assert repeated.status_code == 401


def test_require_scope_rejects_unknown_scope_and_missing_authenticator() -> None:
    with pytest.raises(ValueError, match="unknown scope 'root'"):
        require_scope("root")
    with TestClient(build_app(None)) as test_client, pytest.raises(RuntimeError, match="state"):
        test_client.get("/route", headers={"X-API-Key": ROUTE_KEY})


def test_require_scope_with_auth_disabled(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="fleetroute.service"):
        auth = Authenticator(enabled=False, api_keys=[], jwt_secret=None)
    with TestClient(build_app(auth)) as test_client:
        response = test_client.get("/admin")
    assert response.json() == {"client_id": "anonymous", "method": "anonymous"}


def test_websocket_token_query_and_headers(client: TestClient) -> None:
    with client.websocket_connect(f"/ws?token={ADMIN_KEY}") as ws:
        assert ws.receive_json() == {"client_id": "ops"}
    admin_jwt = token({"sub": "carol", "scope": "admin"})
    with client.websocket_connect(f"/ws?token={admin_jwt}") as ws:
        assert ws.receive_json() == {"client_id": "carol"}
    with client.websocket_connect("/ws", headers={"X-API-Key": ADMIN_KEY}) as ws:
        assert ws.receive_json() == {"client_id": "ops"}


@pytest.mark.parametrize(
    ("path", "headers", "reason"),
    [
        ("/ws", {}, "missing credentials"),
        ("/ws?token=fr_bogus-0123456789abcdef", {}, "invalid API key"),
        (f"/ws?token={ROUTE_KEY}", {}, "'admin' scope"),
        (f"/ws?token={ADMIN_KEY}", {"X-API-Key": ADMIN_KEY}, "not both"),
    ],
)
def test_websocket_refusals(
    client: TestClient, path: str, headers: dict[str, str], reason: str
) -> None:
    with (
        pytest.raises(WebSocketDisconnect) as info,
        client.websocket_connect(path, headers=headers),
    ):
        pass
    assert info.value.code == 1008
    assert reason in info.value.reason


# Log redaction


@pytest.fixture
def redacted_log() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.addFilter(RedactSecrets())
    log = logging.getLogger("fleetroute.tests.redaction")
    log.addHandler(handler)
    log.propagate = False
    log.setLevel(logging.DEBUG)
    try:
        yield log, stream
    finally:
        log.removeHandler(handler)
        log.propagate = True
        handler.close()


def test_redact_secrets_masks_every_credential_shape() -> None:
    admin_jwt = token({"scope": "admin"})
    generated = generate_api_key()
    samples = {
        f"Authorization: Bearer {admin_jwt}": admin_jwt,
        f"authorization: bearer {ROUTE_KEY}": ROUTE_KEY,
        f"key {generated} was used": generated,
        f"got token {admin_jwt}.": admin_jwt,
        f"cached_{admin_jwt}": admin_jwt,
        f"GET /ws/routing?token={ROUTE_KEY}&x=1 HTTP/1.1": ROUTE_KEY,
        "X-API-Key: plain-but-secret-value": "plain-but-secret-value",
        "[(b'x-api-key', b'plain-but-secret-value')]": "plain-but-secret-value",
        "Authorization: Basic dXNlcjpwYXNzd29yZA==": "dXNlcjpwYXNzd29yZA",
    }
    for text, secret in samples.items():
        masked = redact_secrets(text)
        assert secret not in masked, masked
        assert "[REDACTED]" in masked
    assert redact_secrets("routed 12 requests to svc-a") == "routed 12 requests to svc-a"
    assert redact_secrets("GET /ws/routing?x=1") == "GET /ws/routing?x=1"


@given(
    key=st.text(alphabet=string.ascii_letters + string.digits + "-_", min_size=16, max_size=60),
    before=st.sampled_from(["", "key=", "used ", "(", "'", "api_key_", "X-API-Key: ", "Bearer "]),
    after=st.sampled_from(["", " ok", ")", "'", ",", "\n", "&next=1"]),
)
def test_redact_secrets_masks_any_fr_key(key: str, before: str, after: str) -> None:
    secret = f"fr_{key}"
    assert secret not in redact_secrets(f"{before}{secret}{after}")


def test_redact_filter_masks_message_args_and_traceback(
    redacted_log: tuple[logging.Logger, io.StringIO],
) -> None:
    log, stream = redacted_log
    log.info("client sent %s with %d retries", bearer(ROUTE_KEY), 3)
    log.info("headers: %(headers)s", {"headers": {"x-api-key": ADMIN_KEY}})
    try:
        raise RuntimeError(f"bad key {ADMIN_KEY}")
    except RuntimeError:
        log.exception("request failed")
    log.warning("X-API-Key: %s", "plain-but-secret-value")  # credential split over template
    log.info(f"key {ADMIN_KEY} used %d times", 2)  # a credential baked into the template
    output = stream.getvalue()
    assert ROUTE_KEY not in output and ADMIN_KEY not in output
    assert "plain-but-secret-value" not in output
    assert "with 3 retries" in output and "used 2 times" in output
    assert "X-API-Key: [REDACTED]" in output
    assert "RuntimeError: bad key fr_[REDACTED]" in output


def test_redact_filter_passes_broken_and_clean_records_through() -> None:
    broken = logging.LogRecord("x", logging.INFO, __file__, 1, "%s and %s", ("one",), None)
    assert RedactSecrets().filter(broken)
    assert (broken.msg, broken.args) == ("%s and %s", ("one",))
    clean = logging.LogRecord("x", logging.INFO, __file__, 1, "routed %d", (5,), None)
    assert RedactSecrets().filter(clean)
    assert clean.getMessage() == "routed 5" and clean.args == (5,)


def test_redact_filter_keeps_uvicorn_access_log_working() -> None:
    from uvicorn.logging import AccessFormatter

    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", f"/ws/routing?token={ROUTE_KEY}", "1.1", 101),
        None,
    )
    assert RedactSecrets().filter(record)
    line = AccessFormatter("%(client_addr)s %(request_line)s %(status_code)s", use_colors=False)
    text = line.format(record)
    assert ROUTE_KEY not in text
    assert "GET /ws/routing?token=[REDACTED] HTTP/1.1" in text and "101" in text
