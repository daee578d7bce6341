"""Killed with SIGKILL in the middle, the same command finishes the job: same lines, nothing asked twice.

Both sides are real processes, as a user runs them: `univg cot teacher` (with a little latency, so the
kill lands mid-run) and `univg cot generate`.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from cot_helpers import outcomes

from univg.cot.runner import request_seed, sidecar


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _lines(path: Path) -> list[dict]:
    """The complete JSON lines of a file that a kill may have cut."""
    found = []
    for line in path.read_text(encoding="utf-8").splitlines() if path.exists() else []:
        with contextlib.suppress(json.JSONDecodeError):
            found.append(json.loads(line))
    return found


@pytest.fixture
def teacher_process(samples_file, tmp_path):
    port = _free_port()
    log = tmp_path / "requests.jsonl"
    command = [sys.executable, "-m", "univg", "cot", "teacher", "--samples", str(samples_file), "--port", str(port),
               "--latency-ms", "25", "--request-log", str(log)]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{url}/models", timeout=1) as reply:
                assert json.load(reply)["data"][0]["id"] == "univg-offline-teacher"
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError(f"univg cot teacher did not start: {process.stdout.read()}") from None
            time.sleep(0.1)
    yield url, log
    process.send_signal(signal.SIGINT)
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()


def test_sigkill_and_rerun_give_the_uninterrupted_result_without_asking_twice(
    teacher_process, samples_file, clean_run, tmp_path
):
    url, request_log = teacher_process
    out = tmp_path / "cot.jsonl"
    command = [sys.executable, "-m", "univg", "cot", "generate", "--input", str(samples_file), "--out", str(out),
               "--teacher-url", url, "--teacher-model", "univg-offline-teacher", "--concurrency", "2",
               "--price-in", "0.8", "--price-out", "2", "--no-progress"]  # fmt: skip
    first = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while len(_lines(out)) < 5:
        assert first.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.005)
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    time.sleep(0.3)  # requests already sent reach the teacher's log
    finished = {line["id"] for line in _lines(out)}
    paid = {
        (r["id"], r["kind"], request_seed(r["id"], 0, r["index"] + (3 if r["kind"] == "judge" else 0)))
        for r in _lines(sidecar(out, "ledger.jsonl"))
    }
    asked_before = len(_lines(request_log))
    assert 5 <= len(finished) < len(clean_run.outcomes)

    rerun = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    assert outcomes(out) == clean_run.outcomes  # every id once, each as in the uninterrupted run
    asked_after = _lines(request_log)[asked_before:]
    assert asked_after and not {r["id"] for r in asked_after} & finished  # no finished sample asked again
    assert not {(r["id"], r["kind"], r["seed"]) for r in asked_after} & paid  # no paid reply bought twice
    summary = json.loads(sidecar(out, "summary.json").read_text())
    assert summary["cost"] == pytest.approx(clean_run.cost, rel=0.2)  # only the replies lost in flight again
    assert summary["run"]["reused"] == len(paid) - 4 * len(finished)
