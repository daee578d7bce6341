"""What several commands share: the parser class, registering a command, option types, the
model-loading options, and handing parsed options to the library by name, so no command copies
fields by hand."""

from __future__ import annotations

import argparse
import inspect
import sys
from collections.abc import Callable
from typing import Any, NoReturn

from univg.core.errors import EXIT_USAGE
from univg.core.resize import DEFAULT_MAX_PIXELS

# As univg.models.loading.DTYPES (not imported here: that module loads transformers, and --help must not).
DTYPES = ("auto", "float32", "bfloat16", "float16")


class CommandParser(argparse.ArgumentParser):
    """argparse's parser with univg's error style: one line, the command, what is wrong, exit status 2."""

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: {message} (see {self.prog} --help)", file=sys.stderr, flush=True)
        sys.exit(EXIT_USAGE)

    def flag(self, dest: str) -> str:
        """The flag a user types for the option stored in `dest` (its long form)."""
        for action in self._actions:
            if action.dest == dest and action.option_strings:
                return max(action.option_strings, key=len)
        return "--" + dest.replace("_", "-")


def command(parser: argparse.ArgumentParser, handler: Callable[[argparse.Namespace], int | None]) -> None:
    """Make `handler` run for this (sub)command; its errors are spelled with this parser's flags."""
    parser.set_defaults(func=handler, command_parser=parser)


def add_command(
    subparsers: argparse._SubParsersAction,
    name: str,
    handler: Callable[[argparse.Namespace], int | None],
    *,
    epilog: str | None = None,
) -> argparse.ArgumentParser:
    """Subcommand `name`, run by `handler`, whose docstring is the command's help: its first paragraph
    (with a small initial and no full stop, as argparse lists commands) is the line in the list of
    commands, the rest the description of its --help. What the code says a command does and what its user
    reads are then one text."""
    doc = inspect.getdoc(handler)
    if not doc:
        raise TypeError(f"{handler.__qualname__} has no docstring, and it is the help of `{name}`")
    summary, _, description = doc.partition("\n\n")
    parser = subparsers.add_parser(
        name,
        help=summary[0].lower() + summary[1:].removesuffix("."),
        description=description or None,
        epilog=epilog,
    )
    command(parser, handler)
    return parser


def add_command_group(
    subparsers: argparse._SubParsersAction,
    name: str,
    *,
    help: str,
    metavar: str,
    description: str | None = None,
) -> argparse._SubParsersAction:
    """Command `name` whose subcommands do the work (stored in `<name>_command`); alone, it prints its help."""
    parser = subparsers.add_parser(name, help=help, description=description)
    command(parser, lambda _args: parser.print_help())
    return parser.add_subparsers(dest=f"{name}_command", metavar=metavar)


def flag_speller(parser: argparse.ArgumentParser) -> Callable[[str], str]:
    """How a library option name reads on this command line: the flag that sets it."""
    flag = getattr(parser, "flag", None)
    return flag if flag is not None else lambda dest: "--" + dest.replace("_", "-")


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def _checked(
    name: str, read: Callable[[str], Any], accepts: Callable[[Any], bool], rule: str
) -> Callable[[str], Any]:
    """An argparse type: `read` the text, then refuse a value that `accepts` rejects, saying the rule."""

    def check(text: str) -> Any:
        value = read(text)
        if not accepts(value):
            raise argparse.ArgumentTypeError(f"{rule}, got {text.strip()}")
        return value

    check.__name__ = name
    return check


positive = _checked("positive", _integer, lambda v: v >= 1, "must be at least 1")
non_negative = _checked("non_negative", _integer, lambda v: v >= 0, "must be 0 or more")
non_negative_number = _checked("non_negative_number", _number, lambda v: v >= 0, "must be 0 or more")
positive_number = _checked("positive_number", _number, lambda v: v > 0, "must be above 0")
fraction = _checked("fraction", _number, lambda v: 0 <= v <= 1, "must be between 0 and 1")
probability = _checked("probability", _number, lambda v: 0 < v <= 1, "must be above 0 and at most 1")
port = _checked("port", _integer, lambda v: 0 <= v <= 65535, "must be a port number from 0 to 65535")


def add_defaulted(
    parser: argparse.ArgumentParser | Any, defaults: Any, flag: str, kind: Callable[[str], Any], text: str
) -> None:
    """An option (flag, type, help) whose default is the field of `defaults` the flag names (--n-eval:
    n_eval), so the CLI's default is the config's and the help shows it."""
    default = getattr(defaults, flag.lstrip("-").replace("-", "_"))
    parser.add_argument(flag, type=kind, default=default, help=f"{text} (default: %(default)s)")


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
