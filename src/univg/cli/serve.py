"""`univg serve`: a grounding model behind HTTP (OpenAI-compatible chat completions, /v1/ground, a web page)."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from pathlib import Path

from univg.cli.options import (
    add_command,
    add_defaulted,
    add_loading_options,
    non_negative_number,
    options_for,
    port,
    positive,
    positive_number,
)
from univg.core.errors import UsageError

logger = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    from univg.serving.config import Limits

    defaults = Limits()
    parser = add_command(subparsers, "serve", run)
    parser.add_argument(
        "--model", required=True, help="checkpoint directory, LoRA adapter directory or hub id"
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    parser.add_argument("--port", type=port, default=8000, help="default: %(default)s")
    parser.add_argument(
        "--served-model-name",
        help="the name clients send as 'model' (default: a directory's name, or the hub id)",
    )
    parser.add_argument(
        "--max-batch", type=positive, default=8, help="requests generated together (default: %(default)s)"
    )
    parser.add_argument(
        "--max-wait-ms",
        type=non_negative_number,
        default=10.0,
        help="how long a request waits for others to batch with (default: %(default)s)",
    )
    parser.add_argument(
        "--max-queue",
        type=positive,
        default=64,
        help="requests waiting beyond the running batch; more get 503 with Retry-After (default: %(default)s)",
    )
    parser.add_argument(
        "--api-key-env",
        metavar="VAR",
        help="require 'Authorization: Bearer KEY' where KEY is this environment variable's value",
    )
    parser.add_argument(
        "--allow-url-fetch",
        action="store_true",
        help="fetch http(s) image URLs (public addresses only, with size and time limits); off by default",
    )
    add_defaulted(parser, defaults, "--max-images", positive, "per request")
    add_defaulted(parser, defaults, "--max-image-pixels", positive, "largest image accepted, width x height")
    add_defaulted(parser, defaults, "--max-text-chars", positive, "text of one request")
    add_defaulted(parser, defaults, "--max-tokens", positive, "most tokens a request may ask for")
    parser.add_argument(
        "--max-body-mb",
        type=positive_number,
        default=defaults.max_body_bytes / 2**20,
        help="largest request body in MiB (default: %(default)s)",
    )
    add_loading_options(parser, device_map_default="load on the CPU")
    parser.add_argument(
        "--threads",
        type=positive,
        help="CPU threads for generation (default: torch's, one per core); 1 or 2 on a shared machine",
    )
    parser.add_argument(
        "--log-level",
        default="info",
        choices=("debug", "info", "warning", "error"),
        help="uvicorn's log level; info logs every request (default: %(default)s)",
    )


def _api_key(variable: str | None) -> str | None:
    if variable is None:
        return None
    key = os.environ.get(variable, "")
    if not key:
        raise UsageError(
            f"{{option}} {variable}: the environment variable {variable} is not set or empty",
            option="api_key_env",
        )
    return key


def run(args: argparse.Namespace) -> int:
    """Serve a model over HTTP: OpenAI-compatible API, /v1/ground and a web page.

    Serve a grounding model: POST /v1/chat/completions (OpenAI format, images as data URLs), POST
    /v1/ground (images + question -> box), GET /v1/models, /healthz, /metrics (Prometheus) and a web page
    at /. Requests arriving together are batched. Local paths are never read and URLs are not fetched
    unless --allow-url-fetch."""
    import uvicorn

    from univg.inference.predictor import Predictor
    from univg.models.loading import load_model_and_processor
    from univg.serving.app import base_url, create_app, listen_socket
    from univg.serving.config import Limits, ServeConfig

    try:
        config = ServeConfig(
            model_name=args.served_model_name
            or (Path(args.model).name if Path(args.model).exists() else args.model),
            max_batch=args.max_batch,
            max_wait_ms=args.max_wait_ms,
            max_queue=args.max_queue,
            api_key=_api_key(args.api_key_env),
            allow_url_fetch=args.allow_url_fetch,
            limits=Limits(
                max_body_bytes=int(args.max_body_mb * 2**20),
                max_images=args.max_images,
                max_image_pixels=args.max_image_pixels,
                max_text_chars=args.max_text_chars,
                max_tokens=args.max_tokens,
                default_max_tokens=min(Limits().default_max_tokens, args.max_tokens),
            ),
        )
    except UsageError:
        raise
    except ValueError as exc:  # a limit the server's config refuses
        raise UsageError(str(exc)) from None
    try:
        sock = listen_socket(args.host, args.port)
    except OSError as exc:
        print(
            f"univg serve: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}", file=sys.stderr
        )
        return 1
    try:
        loaded = load_model_and_processor(args.model, **options_for(load_model_and_processor, args))
    except BaseException:  # cli.main says what went wrong; the port is free again first
        sock.close()
        raise
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    app = create_app(Predictor(loaded, batch_size=config.max_batch), config)
    if config.api_key is None and args.host not in ("127.0.0.1", "localhost", "::1"):
        logger.warning("listening on %s without an API key: anyone who can reach it can use it", args.host)
    url = base_url(args.host, sock.getsockname()[1])
    print(f"serving {config.model_name} on {url} (page at /, OpenAI base URL {url}/v1)", file=sys.stderr)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            log_level=args.log_level,
            timeout_keep_alive=5,
            limit_concurrency=max(256, 4 * config.max_queue),
        )
    )
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C: uvicorn shut down gracefully, then re-raised it
        server.run(sockets=[sock])
    print("univg serve: stopped", file=sys.stderr)
    return 0
