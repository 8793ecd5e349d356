"""Who is calling the routing service, and may they do this: API keys, JWTs and scopes.

A request proves who it is in one of two ways:

* an **API key**, sent as ``X-API-Key: <key>`` or ``Authorization: Bearer <key>``. The
  service only ever holds the key's SHA-256 hash (``"sha256:<hex>"``, see
  :func:`hash_api_key`), so a leaked configuration file or log line does not leak a
  usable key; a presented key is hashed and compared with every configured hash in
  constant time (:func:`hmac.compare_digest`). :func:`generate_api_key` makes new keys
  (``fr_`` and 256 random bits, URL-safe).
* an **OAuth2-style JWT** bearer token (``Authorization: Bearer <header.payload.sig>``),
  signed with a shared HMAC secret. Only the configured algorithms are accepted, never
  ``none``; ``exp`` is required, and ``exp``/``nbf`` are checked against the injected
  clock; ``aud`` and ``iss`` are checked when configured. The client is the ``sub``
  claim; its scopes come from ``scope`` (a space-separated string, as RFC 8693 and
  most identity providers write it) or ``scopes`` (a list of strings).

There are two scopes: ``route`` (make routing decisions) and ``admin`` (change the fleet
and read analytics). ``admin`` implies ``route``. Unknown scopes in a token (``openid``,
``profile``) are ignored rather than rejected, since identity providers add their own.

Failures are :class:`AuthError`: 401 for missing or bad credentials (with a
``WWW-Authenticate: Bearer`` header, as RFC 6750 asks) and 403 for a valid client that
lacks the scope. Messages say what is wrong (``"expired token"``, ``"invalid API key"``)
and never repeat the credential.

:func:`require_scope` turns this into a FastAPI dependency; :func:`principal_from_websocket`
does the same for WebSocket handshakes, where browsers cannot set headers and send
``?token=`` instead. :class:`RedactSecrets` is a logging filter that masks anything
that looks like a credential, since access logs would otherwise record ``?token=``.

Switching authentication off (``enabled=False``) makes every caller an ``admin``; the
:class:`Authenticator` says so with a warning when it is built.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import jwt
from fastapi import HTTPException
from starlette.datastructures import Headers
from starlette.requests import HTTPConnection, Request
from starlette.types import ASGIApp
from starlette.websockets import WebSocket

__all__ = [
    "SCOPES",
    "SCOPE_ADMIN",
    "SCOPE_ROUTE",
    "ApiKeyEntry",
    "AuthError",
    "Authenticator",
    "Principal",
    "RedactSecrets",
    "generate_api_key",
    "hash_api_key",
    "principal_from_websocket",
    "redact_secrets",
    "require_scope",
]

logger = logging.getLogger("fleetroute.service")

#: May ask for routing decisions.
SCOPE_ROUTE = "route"
#: May change the fleet and read analytics; implies :data:`SCOPE_ROUTE`.
SCOPE_ADMIN = "admin"
#: Every scope the service knows.
SCOPES: frozenset[str] = frozenset({SCOPE_ROUTE, SCOPE_ADMIN})

#: Prefix of keys made by :func:`generate_api_key`, so that they are recognisable in
#: secret scanners and can be masked in logs.
_KEY_PREFIX = "fr_"
_HASH_PREFIX = "sha256:"
_HASH_RE = re.compile(r"sha256:[0-9a-f]{64}")
_REALM = 'Bearer realm="fleetroute"'

#: HMAC algorithms and the shortest secret each is safe with (RFC 7518 section 3.2: a
#: key at least as long as the hash output). Asymmetric algorithms are left out on
#: purpose: the service is configured with one shared secret, and accepting RS256 next
#: to HS256 with the same key material is the classic algorithm-confusion hole.
_HMAC_MIN_SECRET_BYTES: dict[str, int] = {"HS256": 32, "HS384": 48, "HS512": 64}


def hash_api_key(key: str) -> str:
    """The stored form of an API key: ``"sha256:"`` and the hex SHA-256 of its UTF-8 bytes."""
    if not isinstance(key, str) or not key:
        raise ValueError("key must be a non-empty string")
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
    return _HASH_PREFIX + digest


def generate_api_key() -> str:
    """A new random API key: ``"fr_"`` and 32 random bytes, URL-safe base64 (43 characters)."""
    return _KEY_PREFIX + secrets.token_urlsafe(32)


def _effective_scopes(scopes: Iterable[str]) -> frozenset[str]:
    """``scopes`` with what they imply added (admin implies route)."""
    result = frozenset(scopes)
    if SCOPE_ADMIN in result:
        result |= {SCOPE_ROUTE}
    return result


def _check_scope_set(owner: str, scopes: object) -> frozenset[str]:
    """``scopes`` as a frozenset if it is a collection of known scope names."""
    if isinstance(scopes, str | bytes) or not isinstance(scopes, Iterable):
        raise ValueError(
            f"{owner}: scopes must be a collection of scope names such as "
            f"{{'route'}}, not {scopes!r}"
        )
    result = frozenset(scopes)
    unknown = sorted(repr(s) for s in result if s not in SCOPES)
    if unknown:
        raise ValueError(
            f"{owner}: unknown scope(s) {', '.join(unknown)}; known scopes are 'admin', 'route'"
        )
    return result


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller: who it is, what it may do, and how it proved it.

    ``scopes`` always includes what the granted scopes imply: a principal built with
    ``{"admin"}`` has ``{"admin", "route"}``.
    """

    client_id: str
    scopes: frozenset[str]
    method: Literal["api_key", "jwt", "anonymous"]

    def __post_init__(self) -> None:
        if not isinstance(self.client_id, str) or not self.client_id:
            raise ValueError(f"client_id must be a non-empty string (got {self.client_id!r})")
        if self.method not in ("api_key", "jwt", "anonymous"):
            raise ValueError(
                f"method must be 'api_key', 'jwt' or 'anonymous' (got {self.method!r})"
            )
        scopes = _check_scope_set(f"principal {self.client_id!r}", self.scopes)
        object.__setattr__(self, "scopes", _effective_scopes(scopes))

    def has_scope(self, scope: str) -> bool:
        """Whether this principal may do what ``scope`` guards."""
        return scope in self.scopes


@dataclass(frozen=True, slots=True)
class ApiKeyEntry:
    """One configured API key: the client's name, the key's hash, and its scopes.

    ``key_hash`` is what :func:`hash_api_key` returns for the key; the plain key is never
    stored. ``scopes`` must be a non-empty subset of ``{"route", "admin"}`` (a key that
    may do nothing is a configuration mistake). Several entries may share a name, which
    is how a client's key is rotated: add the new key, move the client, drop the old.
    """

    name: str
    key_hash: str = field(repr=False)
    scopes: frozenset[str]

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValueError(f"API key name must be a non-empty string (got {self.name!r})")
        owner = f"API key {self.name!r}"
        # The hash is not echoed: a wrong value here is often the plain key pasted by
        # mistake, which must not end up in an error message or a log.
        if not isinstance(self.key_hash, str) or _HASH_RE.fullmatch(self.key_hash) is None:
            raise ValueError(
                f"{owner}: key_hash must be 'sha256:' followed by 64 lowercase hex digits, "
                "as hash_api_key() returns (store the hash, not the key)"
            )
        scopes = _check_scope_set(owner, self.scopes)
        if not scopes:
            raise ValueError(f"{owner}: scopes must name at least one of 'admin', 'route'")
        object.__setattr__(self, "scopes", scopes)

    @classmethod
    def from_key(cls, name: str, key: str, scopes: Iterable[str]) -> ApiKeyEntry:
        """An entry for the plain ``key``, hashed here; the key itself is not kept."""
        return cls(name, hash_api_key(key), frozenset(scopes))


class AuthError(Exception):
    """A request that may not proceed: 401 (who are you?) or 403 (not allowed).

    ``detail`` is safe to return to the client (it never contains the credential);
    ``headers`` are the response headers to send with it (``WWW-Authenticate``).
    """

    def __init__(
        self, status_code: int, detail: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(detail)
        self.status_code = status_code
        self.detail = detail
        self.headers: dict[str, str] = dict(headers or {})

    def __repr__(self) -> str:
        return f"AuthError({self.status_code}, {self.detail!r})"


def _unauthorized(detail: str, error: str | None = "invalid_token") -> AuthError:
    """A 401 whose ``WWW-Authenticate`` names the RFC 6750 error code, if any."""
    challenge = _REALM if error is None else f'{_REALM}, error="{error}"'
    return AuthError(401, detail, {"WWW-Authenticate": challenge})


_MISSING = "missing credentials: send 'Authorization: Bearer <token>' or 'X-API-Key: <key>'"
_CONFLICT = "send one credential, in the Authorization header or in X-API-Key, not both"
_WS_CONFLICT = "send one credential, in the token query parameter or in a header, not both"


class Authenticator:
    """Turns request credentials into a :class:`Principal`, or refuses them.

    ``api_keys`` are :class:`ApiKeyEntry` (hashes only). ``jwt_secret`` enables JWT
    bearer tokens signed with one of ``jwt_algorithms`` (HMAC only; the secret must be
    at least as long as the hash, 32 bytes for HS256). ``jwt_audience`` and
    ``jwt_issuer``, when set, must match the token's ``aud`` and ``iss``. ``clock``
    returns epoch seconds (it is compared with ``exp``), so tests can pass a
    :class:`~fleetroute.clock.ManualClock` started at an epoch time.

    With ``enabled=False`` every request is the anonymous admin and a warning is
    logged. With ``enabled=True`` at least one API key or a JWT secret is required.
    """

    def __init__(
        self,
        *,
        enabled: bool,
        api_keys: Sequence[ApiKeyEntry],
        jwt_secret: str | None,
        jwt_algorithms: Sequence[str] = ("HS256",),
        jwt_audience: str | None = None,
        jwt_issuer: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not isinstance(enabled, bool):
            raise ValueError(f"enabled must be True or False (got {enabled!r})")
        if isinstance(api_keys, str | bytes) or not isinstance(api_keys, Sequence):
            raise ValueError(f"api_keys must be a sequence of ApiKeyEntry (got {api_keys!r})")
        by_hash: dict[str, ApiKeyEntry] = {}
        for entry in api_keys:
            if not isinstance(entry, ApiKeyEntry):
                raise ValueError(
                    f"api_keys must hold ApiKeyEntry values (got {type(entry).__name__})"
                )
            other = by_hash.get(entry.key_hash)
            if other is not None:
                raise ValueError(
                    f"API keys {other.name!r} and {entry.name!r} have the same key_hash; "
                    "each key must be distinct"
                )
            by_hash[entry.key_hash] = entry
        algorithms = self._check_algorithms(jwt_algorithms)
        if jwt_secret is not None:
            self._check_secret(jwt_secret, algorithms)
        for name, value in (("jwt_audience", jwt_audience), ("jwt_issuer", jwt_issuer)):
            if value is not None and (not isinstance(value, str) or not value):
                raise ValueError(f"{name} must be a non-empty string or None (got {value!r})")
        if not callable(clock):
            raise ValueError(f"clock must be a callable returning seconds (got {clock!r})")
        if enabled and not by_hash and jwt_secret is None:
            raise ValueError(
                "authentication is enabled but no credentials are configured: set api_keys "
                "(hashes from hash_api_key) and/or jwt_secret, or set enabled=False to run "
                "without authentication (every client is then admin)"
            )

        self._enabled = enabled
        self._keys: tuple[ApiKeyEntry, ...] = tuple(by_hash.values())
        self._jwt_secret = jwt_secret
        self._jwt_algorithms = algorithms
        self._jwt_audience = jwt_audience
        self._jwt_issuer = jwt_issuer
        self._clock = clock
        self._anonymous = Principal("anonymous", SCOPES, "anonymous")
        if not enabled:
            logger.warning(
                "authentication is disabled: every client is treated as admin "
                "(set enabled=True with api_keys or jwt_secret to protect the service)"
            )

    @staticmethod
    def _check_algorithms(jwt_algorithms: Sequence[str]) -> tuple[str, ...]:
        if isinstance(jwt_algorithms, str) or not isinstance(jwt_algorithms, Sequence):
            raise ValueError(
                f"jwt_algorithms must be a sequence such as ('HS256',) (got {jwt_algorithms!r})"
            )
        algorithms = tuple(jwt_algorithms)
        if not algorithms:
            raise ValueError("jwt_algorithms must name at least one algorithm, such as 'HS256'")
        for alg in algorithms:
            if alg not in _HMAC_MIN_SECRET_BYTES:
                raise ValueError(
                    f"jwt_algorithms: {alg!r} is not accepted; use HS256, HS384 or HS512 "
                    "(the service verifies tokens with a shared secret, never 'none')"
                )
        return algorithms

    @staticmethod
    def _check_secret(jwt_secret: str, algorithms: tuple[str, ...]) -> None:
        # The secret is never echoed, only its length.
        if not isinstance(jwt_secret, str):
            raise ValueError(f"jwt_secret must be a string or None (got {type(jwt_secret)})")
        need = max(_HMAC_MIN_SECRET_BYTES[alg] for alg in algorithms)
        size = len(jwt_secret.encode("utf-8", "surrogatepass"))
        if size < need:
            raise ValueError(
                f"jwt_secret is {size} bytes; {', '.join(algorithms)} needs at least "
                f"{need} bytes (RFC 7518 section 3.2)"
            )

    @property
    def enabled(self) -> bool:
        """Whether credentials are checked (False: everyone is the anonymous admin)."""
        return self._enabled

    def authenticate(self, authorization: str | None, x_api_key: str | None) -> Principal:
        """The principal behind an ``Authorization`` and/or ``X-API-Key`` header value.

        Raises :class:`AuthError` (401) when the credentials are missing, malformed,
        unknown, expired or badly signed. Scopes are not checked here; see
        :meth:`authorize`.
        """
        if not self._enabled:
            return self._anonymous
        authorization = (authorization or "").strip() or None
        x_api_key = (x_api_key or "").strip() or None
        if authorization is None and x_api_key is None:
            raise _unauthorized(_MISSING, error=None)
        if authorization is not None and x_api_key is not None:
            raise _unauthorized(_CONFLICT, error="invalid_request")
        if x_api_key is not None:
            return self._from_api_key(x_api_key)
        assert authorization is not None
        scheme, *rest = authorization.split(None, 1)
        # The "scheme" is not echoed: a client that sends the bare key puts it there.
        if scheme.lower() != "bearer":
            raise _unauthorized(
                "unsupported Authorization scheme: use 'Bearer <token>'", error="invalid_request"
            )
        if not rest:
            raise _unauthorized("empty bearer token", error="invalid_request")
        token = rest[0].strip()
        if self._jwt_secret is not None and token.count(".") == 2:
            return self._from_jwt(token, self._jwt_secret)
        return self._from_api_key(token)

    def authorize(self, principal: Principal, scope: str) -> Principal:
        """``principal`` if it holds ``scope``; otherwise :class:`AuthError` (403)."""
        if scope not in SCOPES:
            raise ValueError(f"unknown scope {scope!r}; known scopes are 'admin', 'route'")
        if principal.has_scope(scope):
            return principal
        held = ", ".join(sorted(principal.scopes)) or "none"
        raise AuthError(
            403,
            f"insufficient scope: this needs the {scope!r} scope "
            f"(client {principal.client_id!r} has: {held})",
            {"WWW-Authenticate": f'{_REALM}, error="insufficient_scope", scope="{scope}"'},
        )

    def _from_api_key(self, key: str) -> Principal:
        presented = hash_api_key(key).encode("ascii")
        found: ApiKeyEntry | None = None
        # Every entry is compared, so the time taken does not say which one matched.
        for entry in self._keys:
            if hmac.compare_digest(presented, entry.key_hash.encode("ascii")):
                found = entry
        if found is None:
            logger.debug("authentication failed: invalid API key")
            raise _unauthorized("invalid API key")
        return Principal(found.name, found.scopes, "api_key")

    def _from_jwt(self, token: str, secret: str) -> Principal:
        try:
            claims = jwt.decode(
                token,
                secret,
                algorithms=list(self._jwt_algorithms),
                audience=self._jwt_audience,
                issuer=self._jwt_issuer,
                leeway=0,
                # Time claims are checked below against the injected clock; PyJWT would
                # read the wall clock.
                options={
                    "verify_signature": True,
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                    "verify_aud": True,
                    "verify_iss": True,
                    "require": ["exp", "sub"],
                    "enforce_minimum_key_length": True,
                },
            )
        except jwt.PyJWTError as exc:
            detail = self._jwt_failure(exc)
            logger.debug("authentication failed: %s", detail)
            raise _unauthorized(detail) from None
        now = self._clock()
        exp = _numeric_claim(claims, "exp")
        assert exp is not None  # required above
        if now >= exp:
            raise _unauthorized("expired token")
        nbf = _numeric_claim(claims, "nbf")
        if nbf is not None and now < nbf:
            raise _unauthorized("token not yet valid (nbf is in the future)")
        _numeric_claim(claims, "iat")
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub:
            raise _unauthorized("invalid 'sub' claim: expected a non-empty string")
        return Principal(sub, _scopes_from_claims(claims), "jwt")

    def _jwt_failure(self, exc: jwt.PyJWTError) -> str:
        """A client-safe reason for a PyJWT error (PyJWT's own texts are not relied on)."""
        if isinstance(exc, jwt.InvalidSignatureError):
            return "invalid token signature"
        if isinstance(exc, jwt.InvalidAlgorithmError):
            return f"token algorithm not allowed (accepted: {', '.join(self._jwt_algorithms)})"
        if isinstance(exc, jwt.MissingRequiredClaimError):
            return f"token is missing the {exc.claim!r} claim"
        if isinstance(exc, jwt.InvalidAudienceError):
            if self._jwt_audience is None:
                return "token has an audience ('aud') but the service expects none"
            return "invalid token audience"
        if isinstance(exc, jwt.InvalidIssuerError):
            return "invalid token issuer"
        if isinstance(exc, jwt.exceptions.InvalidSubjectError):
            return "invalid 'sub' claim: expected a non-empty string"
        if isinstance(exc, jwt.DecodeError):
            return "malformed token"
        return "invalid token"


def _numeric_claim(claims: Mapping[str, Any], name: str) -> float | None:
    """A NumericDate claim (RFC 7519 section 2) as a float; None when absent."""
    if name not in claims:
        return None
    value = claims[name]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _unauthorized(f"invalid {name!r} claim: expected seconds since the epoch")
    return float(value)


def _scopes_from_claims(claims: Mapping[str, Any]) -> frozenset[str]:
    """The known scopes in ``scope`` (space-separated) and ``scopes`` (list), joined."""
    granted: set[str] = set()
    if "scope" in claims:
        scope = claims["scope"]
        if not isinstance(scope, str):
            raise _unauthorized("invalid 'scope' claim: expected a space-separated string")
        granted.update(scope.split())
    if "scopes" in claims:
        scopes = claims["scopes"]
        if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
            raise _unauthorized("invalid 'scopes' claim: expected a list of strings")
        granted.update(scopes)
    # Identity providers add scopes of their own (openid, profile); they mean nothing here.
    return _effective_scopes(granted & SCOPES)


def _credentials(headers: Headers) -> tuple[str | None, str | None]:
    """The ``Authorization`` and ``X-API-Key`` values; a repeated header is refused."""
    values: list[str | None] = []
    for name in ("authorization", "x-api-key"):
        found = headers.getlist(name)
        if len(found) > 1:
            raise _unauthorized(f"send one {name} header, not {len(found)}", "invalid_request")
        values.append(found[0] if found else None)
    return values[0], values[1]


def _authenticator_of(app: ASGIApp) -> Authenticator:
    state = getattr(app, "state", None)
    authenticator = getattr(state, "authenticator", None)
    if not isinstance(authenticator, Authenticator):
        # Failing closed: a route that asks for a scope is never served unprotected.
        raise RuntimeError(
            "app.state.authenticator must be an Authenticator for require_scope() and "
            f"principal_from_websocket() (got {type(authenticator).__name__})"
        )
    return authenticator


def _authenticate_connection(connection: HTTPConnection, scope: str | None) -> Principal:
    authenticator = _authenticator_of(connection.app)
    authorization, x_api_key = _credentials(connection.headers)
    principal = authenticator.authenticate(authorization, x_api_key)
    if scope is not None:
        authenticator.authorize(principal, scope)
    return principal


def require_scope(scope: str) -> Callable[..., Awaitable[Principal]]:
    """A FastAPI dependency admitting only callers that hold ``scope``.

    It authenticates the request with ``request.app.state.authenticator``, stores the
    principal on ``request.state.principal`` and returns it; refusals become
    :class:`fastapi.HTTPException` with the 401/403 status, detail and headers of the
    :class:`AuthError`. Use it as ``Depends(require_scope(SCOPE_ADMIN))``.
    """
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}; known scopes are 'admin', 'route'")

    async def dependency(request: Request) -> Principal:
        try:
            principal = _authenticate_connection(request, scope)
        except AuthError as exc:
            raise HTTPException(exc.status_code, exc.detail, headers=exc.headers) from None
        request.state.principal = principal
        return principal

    dependency.__name__ = f"require_{scope}_scope"
    dependency.__qualname__ = dependency.__name__
    return dependency


def principal_from_websocket(websocket: WebSocket, scope: str | None = None) -> Principal:
    """The principal behind a WebSocket handshake, checked for ``scope`` when given.

    Browsers cannot set headers on a WebSocket, so a ``token`` query parameter (an API
    key or a JWT) is accepted as well as the ``Authorization``/``X-API-Key`` headers,
    but not together with them. Raises :class:`AuthError`; the handler decides how to
    close (typically code 1008, policy violation). The principal is also stored on
    ``websocket.state.principal``.
    """
    if scope is not None and scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}; known scopes are 'admin', 'route'")
    authenticator = _authenticator_of(websocket.app)
    authorization, x_api_key = _credentials(websocket.headers)
    tokens = websocket.query_params.getlist("token")
    if tokens and authenticator.enabled:
        if len(tokens) > 1:
            raise _unauthorized("send one token query parameter", "invalid_request")
        if authorization is not None or x_api_key is not None:
            raise _unauthorized(_WS_CONFLICT, "invalid_request")
        authorization = f"Bearer {tokens[0]}"
    principal = authenticator.authenticate(authorization, x_api_key)
    if scope is not None:
        authenticator.authorize(principal, scope)
    websocket.state.principal = principal
    return principal


_REDACTED = "[REDACTED]"
# Order matters: header-shaped matches first, so a whole "Authorization: Basic ..."
# value is masked, then free-standing tokens wherever they appear.
_SECRET_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(
            r"""(?i)\b(authorization|x-api-key)(["']?\s*[:=,]\s*b?["']?)"""
            r"""(?:[A-Za-z]+\s+)?[^\s"',;)\]}]+"""
        ),
        rf"\1\2{_REDACTED}",
    ),
    (re.compile(r"(?i)\b(bearer|basic)(\s+)[A-Za-z0-9\-._~+/]+=*"), rf"\1\2{_REDACTED}"),
    (
        re.compile(r"""(?i)([?&](?:token|access_token|api_key|apikey|key)=)[^&\s"'#]+"""),
        rf"\1{_REDACTED}",
    ),
    # A JWT's header is base64 of '{"', hence "eyJ"; "none" tokens have no signature.
    (re.compile(r"(?<![A-Za-z0-9])eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"), _REDACTED),
    (re.compile(r"(?<![A-Za-z0-9])fr_[A-Za-z0-9_-]{16,}"), f"fr_{_REDACTED}"),
)


def redact_secrets(text: str) -> str:
    """``text`` with bearer tokens, ``fr_`` API keys, JWTs and ``?token=`` values masked."""
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def _redact_arg(arg: object) -> object:
    # Numbers cannot hold a credential and must stay numbers for %d / %f.
    if arg is None or isinstance(arg, int | float):
        return arg
    try:
        text = str(arg)
    except Exception:
        return arg
    redacted = redact_secrets(text)
    return arg if redacted == text else redacted


class RedactSecrets(logging.Filter):
    """A logging filter that masks credentials in a record's message and traceback.

    Install it on handlers (``handler.addFilter(RedactSecrets())``): filters on a logger
    do not see records that propagate from its children. The formatted message is
    checked; when it holds a credential the arguments are masked one by one, keeping
    their shape so that formatters reading ``record.args`` themselves (uvicorn's access
    log) still work, and when that is not enough (``"X-API-Key: %s"``) the record is
    replaced by its masked message. It never drops a record.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:
            # A broken record is reported by the handler as usual; nothing to mask.
            return True
        masked = redact_secrets(message)
        if masked != message:
            self._mask_message(record, masked)
        if record.exc_info and not record.exc_text:
            # Formatters reuse exc_text when it is set, so the masked text is what prints.
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_secrets(record.exc_text)
        if record.stack_info:
            record.stack_info = redact_secrets(record.stack_info)
        return True

    @staticmethod
    def _mask_message(record: logging.LogRecord, masked: str) -> None:
        args = record.args
        if isinstance(args, tuple) and args:
            new_args: tuple[object, ...] | Mapping[str, object] = tuple(
                _redact_arg(a) for a in args
            )
        elif isinstance(args, Mapping) and args:
            new_args = {k: _redact_arg(v) for k, v in args.items()}
        else:
            new_args = ()
        if new_args:
            try:
                rebuilt = str(record.msg) % new_args
            except Exception:
                rebuilt = None
            if rebuilt is not None and redact_secrets(rebuilt) == rebuilt:
                record.args = new_args
                return
        # The credential spans the template and its arguments: keep only the masked text.
        record.msg = masked
        record.args = ()
