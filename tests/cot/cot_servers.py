"""Real HTTP servers on loopback for the CoT tests: uvicorn in a thread, and a scripted faulty teacher.

`ScriptedTeacher` is a raw asyncio HTTP/1.1 server (faults like a cut body or a dropped connection
cannot be produced through an ASGI app) in front of an `OfflineTeacher`. Faults are scripted per
sample id and apply to each request stream, a (sample, kind, seed) triple: the stream's n-th request
meets the n-th fault of its sample, later ones are answered normally. So a script means the same
thing whatever order concurrent requests arrive in.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import uvicorn

from univg.cot.teacher import OfflineTeacher, TeacherRequestError

REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 429: "Too Many Requests",
           500: "Internal Server Error", 503: "Service Unavailable"}  # fmt: skip


class ServerThread:
    """An ASGI app served by uvicorn on a free loopback port, in a daemon thread."""

    def __init__(self, app: Any) -> None:
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/v1"
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@dataclass(frozen=True)
class Fault:
    """One injected failure: status, slow, malformed, not_json, no_choices, cut, drop or no_usage (a reply without usage)."""

    kind: str
    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()
    delay_s: float = 0.0


@dataclass(frozen=True)
class Entry:
    time: float
    sample_id: str
    kind: str
    seed: Any
    outcome: str  # "ok" or the fault's kind (status faults: their code)


def status(code: int, **headers: str) -> Fault:
    return Fault("status", code, tuple((k.replace("_", "-"), v) for k, v in headers.items()))


class ScriptedTeacher:
    """A loopback teacher that answers like `OfflineTeacher` except where the script says otherwise."""

    def __init__(
        self, teacher: OfflineTeacher, faults: dict[str, list[Fault]] | None = None, latency_s: float = 0.0
    ) -> None:
        self.teacher = teacher
        self.faults = faults or {}
        self.latency_s = latency_s
        self.log: list[Entry] = []
        self._streams: Counter[tuple[str, str, Any]] = Counter()
        self._active: Counter[str] = Counter()
        self.max_samples_in_flight = 0
        self._ready = threading.Event()

    def __enter__(self) -> ScriptedTeacher:
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("scripted teacher did not start")
        self.url = f"http://127.0.0.1:{self.port}/v1"
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    def _serve(self) -> None:
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        server = self.loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            self.loop.run_forever()
        finally:
            server.close()
            handlers = asyncio.all_tasks(self.loop)
            for task in handlers:
                task.cancel()
            self.loop.run_until_complete(asyncio.gather(*handlers, return_exceptions=True))
            self.loop.run_until_complete(server.wait_closed())
            self.loop.close()

    def requests_for(self, sample_id: str) -> list[Entry]:
        return [entry for entry in self.log if entry.sample_id == sample_id]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.decode("latin-1").split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
            request = json.loads(await reader.readexactly(length))
            await self._answer(request, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def _answer(self, request: dict[str, Any], writer: asyncio.StreamWriter) -> None:
        try:
            found = self.teacher.identify(request)
        except TeacherRequestError as exc:
            await self._send(writer, exc.status, json.dumps(exc.body()).encode())
            return
        sample_id = found.sample.id
        stream = (sample_id, found.kind, request.get("seed"))
        number = self._streams[stream]
        self._streams[stream] += 1
        script = self.faults.get(sample_id, [])
        fault = script[number] if number < len(script) else None
        outcome = "ok" if fault is None else (str(fault.status) if fault.kind == "status" else fault.kind)
        self.log.append(Entry(time.monotonic(), sample_id, found.kind, request.get("seed"), outcome))
        self._active[sample_id] += 1
        self.max_samples_in_flight = max(
            self.max_samples_in_flight, sum(1 for n in self._active.values() if n)
        )
        try:
            if self.latency_s:
                await asyncio.sleep(self.latency_s)
            await self._respond(request, fault, writer)
        finally:
            self._active[sample_id] -= 1

    async def _respond(
        self, request: dict[str, Any], fault: Fault | None, writer: asyncio.StreamWriter
    ) -> None:
        if fault is None or fault.kind in ("slow", "no_usage"):
            if fault is not None:
                await asyncio.sleep(fault.delay_s)
            reply = self.teacher.complete(request)
            if fault is not None and fault.kind == "no_usage":
                del reply["usage"]
            await self._send(writer, 200, json.dumps(reply).encode())
        elif fault.kind == "status":
            body = json.dumps({"error": {"message": f"scripted {fault.status}", "type": "scripted"}}).encode()
            await self._send(writer, fault.status, body, dict(fault.headers))
        elif fault.kind == "malformed":
            await self._send(writer, 200, b'{"id": "chatcmpl-1", "choices": [{"index": 0, "mess')
        elif fault.kind == "not_json":
            await self._send(writer, 200, b"<html>upstream hiccup</html>", {"Content-Type": "text/html"})
        elif fault.kind == "no_choices":
            await self._send(writer, 200, b'{"id": "chatcmpl-1", "object": "chat.completion", "choices": []}')
        elif fault.kind == "cut":
            body = json.dumps(self.teacher.complete(request)).encode()
            writer.write(self._head(200, len(body), {}) + body[: len(body) // 2])
            await writer.drain()
        elif fault.kind == "drop":
            return
        else:
            raise ValueError(f"unknown fault {fault.kind!r}")

    @staticmethod
    def _head(code: int, length: int, headers: dict[str, str]) -> bytes:
        fields = {
            "Content-Type": "application/json",
            **headers,
            "Content-Length": str(length),
            "Connection": "close",
        }
        lines = [f"HTTP/1.1 {code} {REASONS.get(code, 'Status')}"] + [f"{k}: {v}" for k, v in fields.items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    async def _send(
        self, writer: asyncio.StreamWriter, code: int, body: bytes, headers: dict | None = None
    ) -> None:
        writer.write(self._head(code, len(body), headers or {}) + body)
        await writer.drain()
