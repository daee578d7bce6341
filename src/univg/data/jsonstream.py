"""Streaming JSON records from a JSON array file or a JSON Lines file, in flat memory.

MGrounding-630k is one JSON array of hundreds of megabytes: `json.load` would hold all of it (several
times over, as Python objects). This reader decodes one element at a time from a sliding buffer with
the standard library's C decoder, so memory stays at one record plus one read chunk.
"""

from __future__ import annotations

import gzip
import io
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, TextIO

CHUNK_SIZE = 256 << 10
# A single record larger than this is refused: a syntax error must not make us read the whole file.
MAX_RECORD_BYTES = 64 << 20
_WHITESPACE = " \t\r\n"


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
    syntax error raises `JSONStreamError`, since nothing after it can be trusted.
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
    def _open(self) -> Iterator[TextIO]:
        with self.path.open("rb") as raw:
            self._raw = raw
            stream: BinaryIO = gzip.GzipFile(fileobj=raw) if self.path.suffix == ".gz" else raw
            with io.TextIOWrapper(stream, encoding="utf-8-sig") as text:
                yield text

    def __iter__(self) -> Iterator[tuple[int, Any]]:
        try:
            with self._open() as handle:
                first = ""
                while not first:
                    piece = handle.read(4096)
                    if not piece:
                        return
                    first = piece.lstrip(_WHITESPACE)[:1]
            with self._open() as handle:
                yield from self._array(handle) if first == "[" else self._lines(handle)
        except (UnicodeDecodeError, EOFError, gzip.BadGzipFile) as exc:
            raise JSONStreamError(
                f"{self.path}: unreadable (not UTF-8 JSON text, or a broken .gz): {exc}"
            ) from None

    def _read(self, handle: TextIO) -> str:
        return handle.read(self.chunk_size)

    def _lines(self, handle: TextIO) -> Iterator[tuple[int, Any]]:
        index = 0
        for line_number, line in enumerate(handle, start=1):
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

    def _array(self, handle: TextIO) -> Iterator[tuple[int, Any]]:
        decoder = json.JSONDecoder()
        buffer = ""
        while not buffer:
            piece = self._read(handle)
            if not piece:
                raise self._error("unexpected end of file", 0)
            buffer = piece.lstrip(_WHITESPACE)
        buffer = buffer[1:]  # drop the opening "[" (the caller saw it is there)
        position = 0
        index = 0
        expect_value = True  # after "[" or ",": a value (or "]" right after "[")
        eof = False
        while True:
            while position < len(buffer) and buffer[position] in _WHITESPACE:
                position += 1
            if position >= len(buffer) and not eof:
                # Keep the unread tail only, so the buffer never grows past one record and a chunk.
                piece = self._read(handle)
                buffer = buffer[position:] + piece
                position = 0
                eof = not piece
                continue
            if position >= len(buffer):
                raise self._error("unexpected end of file inside the JSON array", index)
            char = buffer[position]
            if char == "]" and (not expect_value or index == 0):
                return
            if not expect_value:
                if char != ",":
                    raise self._error(f"expected ',' or ']' but found {char!r}", index)
                position += 1
                expect_value = True
                continue
            try:
                record, end = decoder.raw_decode(buffer, position)
            except json.JSONDecodeError as exc:
                if eof:
                    raise self._error(f"invalid JSON or truncated file: {exc.msg}", index) from None
                if len(buffer) - position > MAX_RECORD_BYTES:
                    raise self._error(
                        f"invalid JSON, or a record over {MAX_RECORD_BYTES} bytes: {exc.msg}", index
                    ) from None
                piece = self._read(handle)
                buffer = buffer[position:] + piece
                position = 0
                eof = not piece
                continue
            if isinstance(record, int | float) and not eof and buffer[end : end + 1] in ("", ".", "e", "E"):
                # A number cut by the end of the buffer ("1" of "1.5e3") continues in the next chunk.
                piece = self._read(handle)
                buffer = buffer[position:] + piece
                position = 0
                eof = not piece
                continue
            yield index, record
            index += 1
            position = end
            expect_value = False

    def _error(self, message: str, index: int) -> JSONStreamError:
        return JSONStreamError(f"{self.path}: record {index}: {message}")


def iter_json_records(path: str | os.PathLike[str]) -> Iterator[tuple[int, Any]]:
    """``(index, record)`` for every element of a JSON array file or line of a JSON Lines file."""
    return iter(JsonRecords(path))
