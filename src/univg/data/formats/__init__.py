"""Readers for every real data format, by name: ``get_format("mig-bench").read(record, ctx)``.

The registry maps names to modules and imports a reader only when it is asked for, so listing the
formats (``univg data convert --help``) costs nothing. Other code reaches the readers through
`univg.data.convert` (`read_samples`, `validate_file`, `convert_file`), never by importing a format
module.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from univg.data.formats.base import FormatSpec

FORMAT_MODULES: dict[str, str] = {
    "mig-bench": "univg.data.formats.mig_bench",
    "mgrounding": "univg.data.formats.mgrounding",
    "univg-sft": "univg.data.formats.univg_sft",
    "univg-rl": "univg.data.formats.univg_rl",
    "refcoco": "univg.data.formats.refcoco",
    "lisa": "univg.data.formats.lisa",
    "llmseg": "univg.data.formats.llmseg",
    "revos": "univg.data.formats.revos",
    "reasonvos": "univg.data.formats.reasonvos",
    "canonical": "univg.data.formats.canonical",
}
FORMAT_NAMES: tuple[str, ...] = tuple(FORMAT_MODULES)


def get_format(name: str) -> FormatSpec:
    """The format called `name`; the error lists the known ones."""
    if name not in FORMAT_MODULES:
        raise ValueError(f"unknown format {name!r}; expected one of: {', '.join(FORMAT_NAMES)}")
    return importlib.import_module(FORMAT_MODULES[name]).FORMAT


__all__ = ["FORMAT_MODULES", "FORMAT_NAMES", "get_format"]
