"""Handing parsed options to the library by name, so no command copies fields by hand."""

from __future__ import annotations

import argparse
import inspect
from collections.abc import Callable
from typing import Any


def options_for(target: Callable[..., Any], args: argparse.Namespace) -> dict[str, Any]:
    """The parsed options named like a parameter of `target` (a function, or a config dataclass).

    Each option's `dest` is the name of the parameter it sets; options that steer the command itself
    (`--json`, the subcommand) match no parameter and stay behind.
    """
    parameters = inspect.signature(target).parameters
    return {name: value for name, value in vars(args).items() if name in parameters}
