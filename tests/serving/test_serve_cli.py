"""`univg serve` as a user starts it: a process that serves until it is stopped, or a one-line error."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import httpx
from servers import chat_body, noise_png

from univg.cli.main import main


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _univg(*args: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "univg", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )


def test_univg_serve_answers_then_stops_cleanly(tiny_model_dir):
    port = _free_port()
    process = _univg(
        "serve", "--model", str(tiny_model_dir), "--port", str(port), "--threads", "1",
        "--max-pixels", "12544", "--api-key-env", "UNIVG_TEST_KEY", "--log-level", "warning",
        env={"UNIVG_TEST_KEY": "k3y"},
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, process.communicate()
            try:
                health = httpx.get(url + "/healthz", timeout=2).json()
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "univg serve did not start"
                time.sleep(0.2)
        assert health["model"] == tiny_model_dir.name and health["auth_required"] is True
        body = chat_body("Find it.", noise_png(), model=tiny_model_dir.name, max_tokens=4)
        reply = httpx.post(
            url + "/v1/chat/completions", json=body, headers={"Authorization": "Bearer k3y"}, timeout=60
        )
        assert reply.status_code == 200 and reply.json()["usage"]["completion_tokens"] <= 4
        assert "<!doctype html>" in httpx.get(url + "/").text.lower()
    finally:
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    assert f"serving {tiny_model_dir.name} on http://127.0.0.1:{port}" in stderr
    assert "Traceback" not in stderr


def test_univg_serve_refuses_a_missing_key_variable_in_one_line(tiny_model_dir, capsys, monkeypatch):
    monkeypatch.delenv("UNIVG_SURELY_UNSET", raising=False)
    assert (
        main(["serve", "--model", str(tiny_model_dir), "--api-key-env", "UNIVG_SURELY_UNSET"]) == 2
    )  # usage
    assert capsys.readouterr().err == (
        "univg serve: --api-key-env UNIVG_SURELY_UNSET: the environment variable UNIVG_SURELY_UNSET is not set or empty\n"
    )


def test_univg_serve_refuses_a_model_it_cannot_load(tmp_path, capsys):
    assert main(["serve", "--model", str(tmp_path / "nowhere")]) == 1
    error = capsys.readouterr().err
    assert error.startswith("univg serve: ") and error.count("\n") == 1


def test_univg_serve_says_when_the_port_is_taken_before_loading_anything(tmp_path, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", "--model", str(tmp_path / "not-even-loaded"), "--port", str(port)]) == 1
    assert (
        capsys.readouterr().err == f"univg serve: cannot listen on 127.0.0.1:{port}: Address already in use\n"
    )
