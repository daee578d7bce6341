"""The teacher's prompt templates: files in the package that users copy and change (`--prompts DIR`).

A prompt set is four files: ``system.txt`` (the system message of every request), ``chain.txt`` (one
chain request), ``judge.txt`` (the request that picks the best chain) and ``tasks.yaml`` (a hint per
task, ``default`` for the rest). Templates use ``$name`` placeholders (`string.Template`, so braces and
the answer format can be written as they are); an unknown placeholder is an error when the set loads,
not halfway through a paid run. The set's fingerprint is stored with a run, so a rerun with other
prompts is noticed.
"""

from __future__ import annotations

import hashlib
import os
import string
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import yaml

from univg.core.boxes import CoordSystem
from univg.core.errors import EXIT_USAGE, UnivgError
from univg.data.files import check_output, write_bytes_atomic
from univg.data.prompts import format_box
from univg.data.schema import GroundingSample

TEMPLATE_FILES = ("system.txt", "chain.txt", "judge.txt", "tasks.yaml")
COMMON_PLACEHOLDERS = frozenset(
    {"question", "task", "task_hint", "image_count", "target", "box", "coords_hint"}
)
PLACEHOLDERS = {
    "system.txt": frozenset(),
    "chain.txt": COMMON_PLACEHOLDERS,
    "judge.txt": COMMON_PLACEHOLDERS | {"chains", "num_chains"},
}
REQUIRED_PLACEHOLDERS = {"system.txt": frozenset(), "chain.txt": {"question"}, "judge.txt": {"chains"}}
COORDS_HINTS = {
    CoordSystem.QWEN2VL: "(x1, y1) is the top-left and (x2, y2) the bottom-right corner, in integers from 0 "
    "to 1000 relative to the width and height of that image",
    CoordSystem.NORMALIZED: "(x1, y1) is the top-left and (x2, y2) the bottom-right corner, in fractions from "
    "0 to 1 of the width and height of that image",
}
TEACHER_COORDS = tuple(system.value for system in COORDS_HINTS)


class PromptError(UnivgError, ValueError):
    """A prompt set that cannot be used; the message names the file and what is wrong."""

    exit_code = EXIT_USAGE


def default_prompts_dir() -> Path:
    """The folder of the shipped templates (inside the installed package)."""
    return Path(str(resources.files("univg.cot") / "templates"))


def _placeholders(template: string.Template) -> set[str]:
    """Every ``$name`` / ``${name}`` in a template (`Template.get_identifiers` needs Python 3.11)."""
    names = set()
    for match in template.pattern.finditer(template.template):
        name = match.group("named") or match.group("braced")
        if name:
            names.add(name)
        elif match.group("invalid") is not None:
            raise PromptError(
                f"a '$' not followed by a placeholder name at offset {match.start()} (write $$)"
            )
    return names


def _template(folder: Path, name: str) -> string.Template:
    path = folder / name
    template = string.Template(path.read_text(encoding="utf-8"))
    try:
        found = _placeholders(template)
    except PromptError as exc:
        raise PromptError(f"{path}: {exc}") from None
    unknown = found - PLACEHOLDERS[name]
    if unknown:
        known = ", ".join(f"${p}" for p in sorted(PLACEHOLDERS[name])) or "none"
        raise PromptError(
            f"{path}: unknown placeholder(s) {', '.join('$' + p for p in sorted(unknown))}; known: {known}"
        )
    missing = REQUIRED_PLACEHOLDERS[name] - found
    if missing:
        raise PromptError(f"{path}: must contain {', '.join('$' + p for p in sorted(missing))}")
    return template


def _task_hints(path: Path) -> dict[str, str]:
    try:
        hints = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise PromptError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(hints, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in hints.items()
    ):
        raise PromptError(f"{path}: must map each task name to one line of text")
    if "default" not in hints:
        raise PromptError(f"{path}: needs a 'default' hint for tasks it does not list")
    return hints


@dataclass(frozen=True)
class PromptSet:
    """The loaded templates of one prompt folder."""

    folder: Path
    system: str
    chain: string.Template
    judge: string.Template
    task_hints: Mapping[str, str]
    fingerprint: str  # sha256 of the four files: a rerun with other prompts is refused

    @classmethod
    def load(cls, folder: str | os.PathLike[str] | None = None) -> PromptSet:
        """Load a prompt folder (the shipped one when None); raises `PromptError` naming the bad file."""
        root = Path(folder) if folder is not None else default_prompts_dir()
        if not root.is_dir():
            raise PromptError(f"{root}: not a folder of prompt templates")
        missing = [name for name in TEMPLATE_FILES if not (root / name).is_file()]
        if missing:
            raise PromptError(
                f"{root}: missing {', '.join(missing)} (univg cot prompts --out DIR writes a complete set)"
            )
        digest = hashlib.sha256()
        for name in TEMPLATE_FILES:
            digest.update(name.encode() + b"\0" + (root / name).read_bytes() + b"\0")
        return cls(
            folder=root,
            system=(root / "system.txt").read_text(encoding="utf-8").strip(),
            chain=_template(root, "chain.txt"),
            judge=_template(root, "judge.txt"),
            task_hints=_task_hints(root / "tasks.yaml"),
            fingerprint=digest.hexdigest(),
        )

    def fields(self, sample: GroundingSample, coords: CoordSystem | str) -> dict[str, str]:
        """The placeholder values shared by a sample's chain and judge requests."""
        system = CoordSystem.parse(coords)
        if system not in COORDS_HINTS:
            raise ValueError(f"the teacher is given boxes in one of {TEACHER_COORDS}, not {system.value!r}")
        count = len(sample.images)
        return {
            "question": sample.question.replace("<image>", "").strip(),
            "task": sample.task,
            "task_hint": self.task_hints.get(sample.task, self.task_hints["default"]),
            "image_count": f"{count} image" if count == 1 else f"{count} images",
            "target": "the image" if count == 1 else f"image {sample.target_image + 1}",
            "box": format_box(sample.box, system),
            "coords_hint": COORDS_HINTS[system],
        }

    def chain_text(self, sample: GroundingSample, coords: CoordSystem | str) -> str:
        """The user text of one chain request."""
        return self.chain.substitute(self.fields(sample, coords)).strip()

    def judge_text(self, sample: GroundingSample, coords: CoordSystem | str, chains: list[str]) -> str:
        """The user text of the judge request over the candidate responses, numbered from 1."""
        listed = "\n\n".join(f"Candidate {number}:\n{text.strip()}" for number, text in enumerate(chains, 1))
        values = {**self.fields(sample, coords), "chains": listed, "num_chains": str(len(chains))}
        return self.judge.substitute(values).strip()


def copy_prompts(out: str | os.PathLike[str], *, overwrite: bool = False) -> list[Path]:
    """Write the shipped templates to `out` for editing; refuses to replace files unless `overwrite`."""
    target = check_output(out, kind="folder", resumable=True, option="out")
    for name in TEMPLATE_FILES:
        check_output(
            target / name, force=overwrite, option="overwrite"
        )  # refuses links and devices, and files unless overwrite
    source = default_prompts_dir()
    written = []
    for name in TEMPLATE_FILES:
        write_bytes_atomic(target / name, (source / name).read_bytes())
        written.append(target / name)
    return written
