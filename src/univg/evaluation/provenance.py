"""What a number came from: code commit, data hash, library versions, time.

Written into results.json so any score can be traced back to the exact code and data behind it.
"""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import univg

_CHUNK = 1 << 20
_LIBRARIES = ("torch", "transformers", "trl", "accelerate", "pillow")


def file_sha256(path: str | os.PathLike[str]) -> str:
    """sha256 of a file's bytes, streamed (benchmark files can be large)."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def git_commit() -> dict[str, Any] | None:
    """The commit of the univg source tree and whether it has uncommitted changes; None outside git."""
    source = Path(univg.__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=source, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "."],
            cwd=source,
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "dirty": bool(status.strip())}


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def provenance() -> dict[str, Any]:
    """Code and libraries behind a result, and when it was made."""
    return {
        "univg": univg.__version__,
        "git": git_commit(),
        "libraries": {name: _version(name) for name in _LIBRARIES},
        "python": platform.python_version(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
