"""Configs from YAML recipes with command-line overrides, the way TRL scripts read them.

`univg train grpo --config recipes/grpo/demo.yaml --learning_rate 1e-5` sets every field of the config
dataclass from the recipe, then lets each `--field value` on the command line win.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NoReturn, TypeVar

import yaml
from trl import TrlParser

from univg.core.errors import UsageError
from univg.data.files import check_input

ConfigT = TypeVar("ConfigT")


class _RecipeParser(TrlParser):
    """TRL's parser, whose errors (a value of the wrong type, a missing one) are `UsageError`s: one
    line, rendered by the command line, instead of argparse's usage text and exit."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def parse_config(config_class: type[ConfigT], argv: Sequence[str]) -> ConfigT:
    """Build `config_class` from `--config FILE.yaml` (optional) and `--field value` overrides.

    Whatever is wrong with the recipe or an override (a missing or unparsable file, an unknown field,
    a value a field's own checks refuse) is a `UsageError` naming it.
    """
    args = list(argv)
    recipe = args[args.index("--config") + 1] if "--config" in args[:-1] else None
    if recipe is not None:
        check_input(recipe, option="config")
    try:
        (config,) = _RecipeParser((config_class,)).parse_args_and_config(args=args)
    except yaml.YAMLError as exc:
        reason = " ".join(str(exc).split())
        raise UsageError(f"not a YAML recipe: {reason}", path=recipe, option="config") from None
    except ValueError as exc:  # an unknown field, or a value the config's own checks refuse
        if isinstance(exc, UsageError):
            raise
        reason = " ".join(str(exc).split())
        unused = reason.partition("not used by the HfArgumentParser: ")[2]
        if unused:
            reason = f"unknown option(s) {unused}: not fields of {config_class.__name__}"
        raise UsageError(reason, path=recipe) from None
    return config
