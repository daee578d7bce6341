"""`create_app`: the FastAPI application around a Predictor, with its safety nets.

Layers, outermost first: metrics (every response counted by route and status, 4xx included), the
API key check, the body-size limit (413 before a large body is read), then the routes. Every
error a client can cause becomes a JSON error in OpenAI's shape with a 4xx; anything else is a 500
that says only "internal error" (the traceback goes to the server's log, never to the client).
"""

from __future__ import annotations

import hmac
import logging
import socket
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

from fastapi import FastAPI
from fastapi import Request as HttpRequest
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from univg.inference.predictor import Predictor
from univg.serving.config import ServeConfig
from univg.serving.metrics import ServerMetrics, route_label
from univg.serving.protocol import validation_message
from univg.serving.routes import SafeJSONResponse, ServerState, page_html, router
from univg.serving.safety import ApiError, ImagePolicy, special_tokens
from univg.serving.scheduler import BatchScheduler

logger = logging.getLogger(__name__)

PUBLIC_PATHS = frozenset({"/", "/healthz"})


def _error(
    status: int, message: str, kind: str = "invalid_request_error", **headers: str
) -> SafeJSONResponse:
    return SafeJSONResponse(
        ApiError(status, message, kind=kind).body(), status_code=status, headers=headers or None
    )


class _MetricsMiddleware:
    """Counts every response by route and status and times it to its last byte."""

    def __init__(self, app: ASGIApp, metrics: ServerMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        route = route_label(scope["path"])
        started = time.perf_counter()
        status = 500

        async def counting_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, counting_send)
        finally:
            self.metrics.requests.labels(route=route, status=str(status)).inc()
            self.metrics.latency.labels(route=route).observe(time.perf_counter() - started)


class _BodyTooLargeError(HTTPException):
    def __init__(self) -> None:
        super().__init__(413)


class _BodyLimitMiddleware:
    """Refuses a body over the limit: at once when Content-Length says so, else when it grows past it."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await _error(413, _too_large_message(self.max_bytes))(scope, receive, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _BodyTooLargeError  # an HTTPException: the routes' error handler answers 413
            return message

        await self.app(scope, limited_receive, send)


def _too_large_message(max_bytes: int) -> str:
    return f"request body larger than {max_bytes} bytes; send fewer or smaller images"


class _ApiKeyMiddleware:
    """With an API key set, every route but the page and /healthz needs ``Authorization: Bearer KEY``."""

    def __init__(self, app: ASGIApp, api_key: str | None) -> None:
        self.app = app
        self.expected = f"Bearer {api_key}".encode() if api_key else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.expected is None or scope["type"] != "http" or scope["path"] in PUBLIC_PATHS:
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(b"authorization", b"")
        if hmac.compare_digest(given, self.expected):
            await self.app(scope, receive, send)
            return
        message = "missing API key: send Authorization: Bearer KEY" if not given else "wrong API key"
        response = _error(401, message, "authentication_error", **{"WWW-Authenticate": "Bearer"})
        await response(scope, receive, send)


def create_app(predictor: Predictor, config: ServeConfig) -> FastAPI:
    """The application serving `predictor` under `config` (start it with uvicorn)."""
    metrics = ServerMetrics()
    scheduler = BatchScheduler(
        predictor,
        metrics,
        max_batch=config.max_batch,
        max_wait_s=config.max_wait_ms / 1000,
        max_queue=config.max_queue,
    )
    limits = config.limits
    state = ServerState(
        config=config,
        predictor=predictor,
        scheduler=scheduler,
        metrics=metrics,
        forbidden_tokens=special_tokens(predictor.processor.tokenizer),
        image_policy=ImagePolicy(
            max_image_pixels=limits.max_image_pixels,
            allow_url_fetch=config.allow_url_fetch,
            fetch_max_bytes=limits.url_fetch_max_bytes,
            fetch_timeout_s=limits.url_fetch_timeout_s,
            fetch_max_redirects=limits.url_fetch_max_redirects,
            min_pixels=predictor.min_pixels,
            max_pixels=predictor.max_pixels,
        ),
        page=page_html(),
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        scheduler.start()
        try:
            yield
        finally:
            await scheduler.stop()

    app = FastAPI(
        title="univg",
        summary="Visual grounding over HTTP: OpenAI-compatible chat completions and /v1/ground",
        docs_url=None,  # the docs pages load their scripts from a CDN; the server works offline
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.univg = state
    app.include_router(router)
    _install_error_handlers(app, limits.max_body_bytes)
    app.add_middleware(_BodyLimitMiddleware, max_bytes=limits.max_body_bytes)
    app.add_middleware(_ApiKeyMiddleware, api_key=config.api_key)
    app.add_middleware(_MetricsMiddleware, metrics=metrics)
    return app


def _install_error_handlers(app: FastAPI, max_body_bytes: int) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_request: HttpRequest, exc: ApiError) -> Response:
        return SafeJSONResponse(exc.body(), status_code=exc.status, headers=exc.headers or None)

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: HttpRequest, exc: RequestValidationError) -> Response:
        return _error(400, validation_message(exc.errors()))

    @app.exception_handler(HTTPException)
    async def http_error(request: HttpRequest, exc: HTTPException) -> Response:
        messages: dict[int, str] = {
            404: f"no route {request.url.path}",
            405: f"{request.method} is not allowed on {request.url.path}",
            413: _too_large_message(max_body_bytes),
        }
        message = messages.get(exc.status_code) or str(exc.detail)
        return _error(exc.status_code, message, **(exc.headers or {}))

    @app.exception_handler(Exception)
    async def internal(request: HttpRequest, exc: Exception) -> Response:
        logger.error("internal error on %s %s", request.method, request.url.path, exc_info=exc)
        return _error(500, "internal error (logged by the server)", "server_error")


@contextmanager
def serve_in_background(app: FastAPI, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Run `app` under uvicorn in a thread until the block ends (notebooks, tests, benchmarks).

    Port 0 takes a free port; yields the server's base URL once it accepts connections.
    """
    import threading

    import uvicorn

    sock = listen_socket(host, port)
    bound = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="univg-serve", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            sock.close()
            raise RuntimeError(f"the server on {host}:{bound} did not start")
        time.sleep(0.02)
    try:
        yield base_url(host, bound)
    finally:
        server.should_exit = True
        thread.join(timeout=60)
        sock.close()


def listen_socket(host: str, port: int) -> socket.socket:
    """A bound socket for uvicorn: binding before the model loads makes a taken port fail at once."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def base_url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
