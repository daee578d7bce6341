"""Fixtures shared by every test folder."""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Qwen2-VL checkpoint (trained ~374-token vocabulary), built once per session.

    Read-only for tests: copy it first to change anything.
    """
    from univg.models.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "qwen2vl-trained", vocab="trained", seed=0)


@pytest.fixture(scope="session")
def tiny_varied_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Qwen2-VL whose untrained answers differ from prompt to prompt.

    With the standard 0.02 initialisation an untrained model answers everything with the same token,
    so "these two outputs are equal" proves nothing; weights drawn with std 0.1 make the greedy
    answer depend on every image and word of the prompt. Read-only for tests.
    """
    from univg.models.tiny import TinySpec, build_tiny_model

    return build_tiny_model(
        tmp_path_factory.mktemp("tiny") / "qwen2vl-varied", spec=TinySpec(initializer_range=0.1), seed=0
    )


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread() -> None:
    """Every test computes on one thread: the tiny models gain little from two, and on a machine busy
    with other work two OpenMP threads wait on each other (a Predictor batch took 35 ms of CPU on one
    thread against 1.16 s on two on a loaded 2-core machine)."""
    import torch

    torch.set_num_threads(1)


@pytest.fixture
def full_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A folder on a disk that is already full.

    A 64 KiB tmpfs filled to the last byte where this process may mount one (root, as in CI);
    elsewhere an ordinary folder whose writes fail at the operating-system boundary with the same
    ENOSPC (`os.fsync` and `os.write`, which every univg writer reaches before its rename).
    """
    folder = tmp_path / "full"
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(folder)], capture_output=True, check=False
    )
    if mounted.returncode == 0:
        try:
            with contextlib.suppress(OSError), (folder / "filler").open("wb", buffering=0) as filler:
                while True:
                    filler.write(b"\0" * 4096)
            yield folder
        finally:
            subprocess.run(["umount", "-l", str(folder)], check=False)
        return

    def no_space(*_: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", no_space)
    monkeypatch.setattr(os, "write", no_space)
    yield folder
