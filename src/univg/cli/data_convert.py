"""`univg data convert` and `univg data validate`: real data sets into canonical JSON Lines."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from univg.cli.options import add_command, non_negative, options_for
from univg.data.formats import FORMAT_NAMES

_EPILOG = (
    "Exit status: 0 when every record is valid, 1 when some are not (or the file is empty or cannot be "
    "read on), 2 on a usage error (unknown format, missing input, output exists without --force)."
)


def _max_listed(text: str) -> int | None:
    return non_negative(text) or None


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--format", dest="format_name", required=True, choices=FORMAT_NAMES, help="input format"
    )
    parser.add_argument(
        "--input", dest="path", required=True, help="the annotation file (JSON array or JSON Lines)"
    )
    parser.add_argument(
        "--image-root",
        default=None,
        help="folder the record's image paths are relative to; with it every image is checked",
    )
    parser.add_argument(
        "--decode-images", action="store_true", help="decode every image fully (finds truncated files; slow)"
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument(
        "--max-listed",
        type=_max_listed,
        default=None,
        help="list at most this many bad records (0: all; counts stay exact)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")


def register(data_subparsers: argparse._SubParsersAction) -> None:
    validate = add_command(data_subparsers, "validate", _validate, epilog=_EPILOG)
    _add_common(validate)

    convert = add_command(data_subparsers, "convert", _convert, epilog=_EPILOG)
    _add_common(convert)
    convert.add_argument("--out", required=True, help="output .jsonl file")
    convert.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    convert.add_argument(
        "--relative-paths",
        action="store_true",
        help="keep image paths relative to --image-root instead of joining them to it",
    )


def _progress_bar(args: argparse.Namespace) -> tuple[Callable[[int, int], None] | None, Callable[[], None]]:
    """A tqdm bar on stderr measuring bytes read (opened at the first progress, so a command that
    fails at once prints only its error), and the function that closes it."""
    if args.no_progress:
        return None, lambda: None
    from tqdm import tqdm

    bars: list[Any] = []

    def update(done: int, total: int) -> None:
        if not bars:
            bars.append(
                tqdm(
                    desc=f"reading {args.format_name}",
                    unit="B",
                    unit_scale=True,
                    file=sys.stderr,
                    leave=False,
                )
            )
        bars[0].total = total
        bars[0].update(done - bars[0].n)

    def close() -> None:
        for bar in bars:
            bar.close()

    return update, close


def _read_and_report(args: argparse.Namespace, action: Callable[..., Any]) -> int:
    """Run `validate_file` or `convert_file` with the options, and print its report."""
    progress, close = _progress_bar(args)
    try:
        report = action(**options_for(action, args), progress=progress)
    finally:
        close()
    print(json.dumps(report.to_json(), indent=2, ensure_ascii=False) if args.json else report.render())
    return 0 if report.ok else 1


def _validate(args: argparse.Namespace) -> int:
    """Check every record of a data set and report what is wrong with each bad one.

    Check every record (never stopping at the first bad one): summary, count per problem kind, and each
    bad record with its index and field."""
    from univg.data.convert import validate_file

    return _read_and_report(args, validate_file)


def _convert(args: argparse.Namespace) -> int:
    """Convert a data set into canonical grounding JSON Lines (valid records only).

    Write the valid records as canonical JSON Lines (boxes 0..1 of the target image) and report the rest
    as `validate` does."""
    from univg.data.convert import convert_file

    return _read_and_report(args, convert_file)
