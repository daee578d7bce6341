"""What several commands share: option types, the model-loading options, and handing parsed options to
the library by name, so no command copies fields by hand."""

from __future__ import annotations

import argparse
import inspect
from collections.abc import Callable
from typing import Any

from univg.core.resize import DEFAULT_MAX_PIXELS

# As univg.models.loading.DTYPES (not imported here: that module loads transformers, and --help must not).
DTYPES = ("auto", "float32", "bfloat16", "float16")


def positive(text: str) -> int:
    """An argparse type: an integer of at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def add_loading_options(parser: argparse.ArgumentParser | Any, *, device_map_default: str) -> None:
    """How a local --model is loaded (dests named as `load_model_and_processor`'s parameters)."""
    parser.add_argument("--adapter", help="a LoRA adapter to apply on top of --model")
    parser.add_argument("--dtype", default="auto", choices=DTYPES)
    parser.add_argument("--device-map", help=f"e.g. auto, cpu, cuda (default: {device_map_default})")
    parser.add_argument("--attn-implementation", help="e.g. sdpa, eager, flash_attention_2")
    parser.add_argument(
        "--max-pixels",
        type=positive,
        default=DEFAULT_MAX_PIXELS,
        help="image pixel budget (default: %(default)s, the paper's training setting)",
    )


def options_for(target: Callable[..., Any], args: argparse.Namespace) -> dict[str, Any]:
    """The parsed options named like a parameter of `target` (a function, or a config dataclass).

    Each option's `dest` is the name of the parameter it sets; options that steer the command itself
    (`--json`, the subcommand) match no parameter and stay behind.
    """
    parameters = inspect.signature(target).parameters
    return {name: value for name, value in vars(args).items() if name in parameters}
