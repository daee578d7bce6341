"""Streaming JSON records from a JSON array file or a JSON Lines file, in flat memory.

MGrounding-630k is one JSON array of hundreds of megabytes: `json.load` would hold all of it (several
times over, as Python objects). Arrays are read with ijson (its C yajl backend), one element at a
time; JSON Lines with the standard library, one line at a time. Memory stays at one record plus one
read chunk. Arrays must be standard JSON (RFC 8259: no NaN or Infinity) with integers within
±(2^63 - 1), which is what yajl reads; a record that breaks either rule stops the file at its index.
"""

from __future__ import annotations

import codecs
import gzip
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import ijson

CHUNK_SIZE = 256 << 10
_WHITESPACE = b" \t\r\n"


class JSONStreamError(ValueError):
    """The file cannot be read on from here (broken JSON array syntax); names file and position."""


@dataclass(frozen=True)
class BadJSON:
    """A record that is not valid JSON (JSON Lines only: the reader goes on with the next line)."""

    message: str


class JsonRecords:
    """Iterate ``(index, record)`` over a JSON array or JSON Lines file, plain or ``.gz``.

    `bytes_read` (of the file as stored) tracks progress against `total_bytes`.
    The layout is detected from the first non-blank character: ``[`` is an array, anything else is
    JSON Lines. In JSON Lines a bad line yields a `BadJSON` record and reading goes on; in an array a
    syntax error raises `JSONStreamError` naming the record it is in, since nothing after it can be
    trusted.
    """

    def __init__(self, path: str | os.PathLike[str], chunk_size: int = CHUNK_SIZE) -> None:
        self.path = Path(path)
        self.chunk_size = chunk_size
        self.total_bytes = self.path.stat().st_size
        self._raw: BinaryIO | None = None

    @property
    def bytes_read(self) -> int:
        """Bytes of the file (compressed bytes for .gz) consumed so far."""
        if self._raw is None or self._raw.closed:
            return self.total_bytes if self._raw is not None else 0
        return self._raw.tell()

    @contextmanager
    def _open(self) -> Iterator[BinaryIO]:
        """The file's bytes (decompressed for .gz), after the UTF-8 byte order mark if there is one."""
        with self.path.open("rb") as raw:
            self._raw = raw
            stream: BinaryIO = gzip.GzipFile(fileobj=raw) if self.path.suffix == ".gz" else raw
            with stream:
                start = stream.read(len(codecs.BOM_UTF8))
                if start != codecs.BOM_UTF8:
                    stream.seek(0)
                yield stream

    def __iter__(self) -> Iterator[tuple[int, Any]]:
        try:
            with self._open() as handle:
                first = b""
                while not first:
                    piece = handle.read(4096)
                    if not piece:
                        return
                    first = piece.lstrip(_WHITESPACE)[:1]
            with self._open() as handle:
                yield from self._array(handle) if first == b"[" else self._lines(handle)
        except (UnicodeDecodeError, EOFError, gzip.BadGzipFile) as exc:
            raise JSONStreamError(
                f"{self.path}: unreadable (not UTF-8 JSON text, or a broken .gz): {exc}"
            ) from None

    def _lines(self, handle: BinaryIO) -> Iterator[tuple[int, Any]]:
        index = 0
        for line_number, raw_line in enumerate(handle, start=1):
            line = raw_line.decode("utf-8")
            if not line.strip():
                continue
            try:
                yield index, json.loads(line)
            except json.JSONDecodeError as exc:
                yield (
                    index,
                    BadJSON(f"invalid JSON on line {line_number}: {exc.msg} (character {exc.pos + 1})"),
                )
            index += 1

    def _array(self, handle: BinaryIO) -> Iterator[tuple[int, Any]]:
        index = 0
        try:
            for record in ijson.items(handle, "item", use_float=True, buf_size=self.chunk_size):
                yield index, record
                index += 1
        except ijson.JSONError as exc:
            # yajl's message is one line of diagnosis, then the text around the error
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise JSONStreamError(
                f"{self.path}: record {index}: invalid JSON or truncated file: {reason}"
            ) from None


def iter_json_records(path: str | os.PathLike[str]) -> Iterator[tuple[int, Any]]:
    """``(index, record)`` for every element of a JSON array file or line of a JSON Lines file."""
    return iter(JsonRecords(path))
