"""Configs from YAML recipes with command-line overrides, the way TRL scripts read them.

`univg train grpo --config recipes/grpo/demo.yaml --learning_rate 1e-5` sets every field of the config
dataclass from the recipe, then lets each `--field value` on the command line win.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from trl import TrlParser

ConfigT = TypeVar("ConfigT")


def parse_config(config_class: type[ConfigT], argv: Sequence[str]) -> ConfigT:
    """Build `config_class` from `--config FILE.yaml` (optional) and `--field value` overrides."""
    (config,) = TrlParser((config_class,)).parse_args_and_config(args=list(argv))
    return config
