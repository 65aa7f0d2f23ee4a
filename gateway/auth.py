"""Bearer-token authentication of the gateway, as a ``grpc.aio`` server interceptor.

Enabled when ``gateway.auth_token_env`` names an environment variable; that variable
holds the accepted token, or several separated by commas (to rotate: add the new token,
roll the clients, remove the old one). Every call must then carry the metadata
``authorization: Bearer <token>``; a call without it, or with a token that is not
accepted, ends with ``UNAUTHENTICATED`` before any handler runs.

Decisions:

* The gRPC health service (``grpc.health.v1.Health``) stays open: load balancers,
  ``docker compose`` health checks and Kubernetes probes cannot send a token, and its
  answer (SERVING / NOT_SERVING) reveals nothing. Reflection is *not* open: it
  describes the API, which is for authenticated clients only.
* Tokens are compared in constant time (:func:`hmac.compare_digest`, against every
  accepted token, without an early exit), so timing does not leak a prefix.
* A configured but unset or empty variable stops the gateway at start-up
  (:class:`AuthConfigError`) rather than silently serving without authentication.
* The token is never logged; a rejection counts in
  ``usr_gateway_errors_total{kind="unauthenticated"}``.
"""
from __future__ import annotations

import hmac
import logging
import os
from collections.abc import Awaitable, Callable, Mapping, Sequence

import grpc

LOG = logging.getLogger("gateway.auth")

# methods that answer without a token (full method names, "/package.Service/Method")
OPEN_METHODS: frozenset[str] = frozenset({
    "/grpc.health.v1.Health/Check",
    "/grpc.health.v1.Health/Watch",
})
METADATA_KEY = "authorization"
SCHEME = "bearer"


class AuthConfigError(RuntimeError):
    """Authentication is configured but its token cannot be read."""


def read_tokens(env_name: str, environ: Mapping[str, str] | None = None) -> list[str]:
    """The accepted tokens from ``$env_name`` (comma separated, blanks dropped)."""
    environ = os.environ if environ is None else environ
    raw = environ.get(env_name)
    if raw is None:
        raise AuthConfigError(f"gateway.auth_token_env names {env_name}, which is not set")
    tokens = [t.strip() for t in raw.split(",") if t.strip()]
    if not tokens:
        raise AuthConfigError(f"gateway.auth_token_env names {env_name}, which is empty")
    return tokens


def bearer_token(metadata: Sequence[tuple[str, str | bytes]] | None) -> str | None:
    """The token of the first ``authorization: Bearer <token>`` entry, if any."""
    for key, value in metadata or ():
        if key.lower() != METADATA_KEY:
            continue
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        scheme, _, token = value.strip().partition(" ")
        if scheme.lower() == SCHEME and token.strip():
            return token.strip()
        return None
    return None


def token_matches(token: str | None, accepted: Sequence[str]) -> bool:
    """Constant-time check of ``token`` against every accepted token."""
    if token is None:
        return False
    given = token.encode()
    ok = False
    for candidate in accepted:
        ok |= hmac.compare_digest(given, candidate.encode())
    return ok


def _rejecting_handler(handler: grpc.RpcMethodHandler, details: str) -> grpc.RpcMethodHandler:
    """A handler of the same shape as ``handler`` whose only act is UNAUTHENTICATED."""

    async def abort_unary(request_or_iterator, context: grpc.aio.ServicerContext):
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, details)

    async def abort_stream(request_or_iterator, context: grpc.aio.ServicerContext):
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, details)
        yield  # pragma: no cover - makes this an async generator; abort raises first

    des, ser = handler.request_deserializer, handler.response_serializer
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(abort_unary, des, ser)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(abort_stream, des, ser)
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(abort_unary, des, ser)
    return grpc.stream_stream_rpc_method_handler(abort_stream, des, ser)


class BearerTokenInterceptor(grpc.aio.ServerInterceptor):
    """Rejects every call outside :data:`OPEN_METHODS` that lacks an accepted bearer token."""

    def __init__(self, tokens: Sequence[str], open_methods: frozenset[str] = OPEN_METHODS) -> None:
        if not tokens or any(not t for t in tokens):
            raise AuthConfigError("at least one non-empty token is required")
        self._tokens = list(tokens)
        self._open = open_methods

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        method = handler_call_details.method
        if method in self._open:
            return await continuation(handler_call_details)
        token = bearer_token(handler_call_details.invocation_metadata)
        if token_matches(token, self._tokens):
            return await continuation(handler_call_details)
        handler = await continuation(handler_call_details)
        if handler is None:  # unknown method: let gRPC answer UNIMPLEMENTED as usual
            return None
        _count_rejection()
        reason = "missing bearer token" if token is None else "invalid bearer token"
        LOG.info("rejected %s: %s", method, reason)
        return _rejecting_handler(handler, f"{reason} (send metadata 'authorization: Bearer <token>')")


def _count_rejection() -> None:
    try:
        from gateway import metrics

        metrics.ERRORS.labels(kind="unauthenticated").inc()
    except Exception:  # noqa: BLE001 - metrics must never break authentication
        pass


def server_interceptors(gateway_config, environ: Mapping[str, str] | None = None) -> list[grpc.aio.ServerInterceptor]:
    """The interceptors ``gateway.server.serve`` installs: token auth when configured, else none."""
    env_name = getattr(gateway_config, "auth_token_env", None)
    if not env_name:
        return []
    return [BearerTokenInterceptor(read_tokens(env_name, environ))]
