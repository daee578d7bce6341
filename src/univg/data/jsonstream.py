"""Streaming JSON records from a JSON array file or a JSON Lines file, in flat memory.

MGrounding-630k is one JSON array of hundreds of megabytes: `json.load` would hold all of it (several
times over, as Python objects). Arrays are read with ijson (its C yajl backend), one element at a
time; JSON Lines with the standard library, one line at a time. Memory stays at one record plus one
read chunk. Arrays must be standard JSON (RFC 8259: no NaN or Infinity) with integers within
±(2^63 - 1), which is what yajl reads; a record that breaks either rule stops the file at its index.

Hostile input is named, never followed: JSON nested deeper than `MAX_DEPTH` (ijson's memory grows
with the square of the depth, so ``[[[[...`` of a few hundred kilobytes would take gigabytes) stops
an array at its record and is a bad line in JSON Lines; a JSON Lines line that is not UTF-8 or not
JSON is a bad record of its own, and the lines after it are read.
"""

from __future__ import annotations

import codecs
import gzip
import json
import operator
import os
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import accumulate, count
from typing import Any, BinaryIO

import ijson

from univg.core.errors import UnivgError
from univg.data.files import check_input

CHUNK_SIZE = 256 << 10
MAX_DEPTH = 256  # nesting levels of one record; real annotations use fewer than ten
_WHITESPACE = b" \t\r\n"


class JSONStreamError(UnivgError, ValueError):
    """The file cannot be read on from here (broken JSON array syntax); names file and position."""


class JSONLineError(ValueError):
    """One line of JSON Lines that is not a JSON value: what is wrong with it."""


def parse_json_line(line: bytes | str) -> Any:
    """One JSON Lines line as a value; `JSONLineError` says why a line is not one.

    Every way a line can fail is caught here: not UTF-8, not JSON, nested deeper than `MAX_DEPTH`,
    a number too long for Python to read.
    """
    raw = line if isinstance(line, bytes) else line.encode("utf-8", "surrogatepass")
    try:
        text = raw.decode("utf-8") if isinstance(line, bytes) else line
    except UnicodeDecodeError as exc:
        raise JSONLineError(f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at byte {exc.start + 1})") from None
    if raw.count(b"[") + raw.count(b"{") > MAX_DEPTH:  # only then can it be too deep
        try:
            _Brackets().follow(raw)
        except _TooDeepError:
            raise JSONLineError(f"nested deeper than {MAX_DEPTH} levels") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise JSONLineError(f"invalid JSON: {exc.msg} (character {exc.pos + 1})") from None
    except ValueError as exc:  # an integer of more digits than int() reads
        raise JSONLineError(f"invalid JSON: {exc}") from None


class _TooDeepError(Exception):
    pass


_NOT_STRUCTURAL = bytes(b for b in range(256) if b not in b'"[]{}')
_STEP_TWICE = bytes(2 if chr(b) in "[{" else 0 for b in range(256))


class _Brackets:
    """Follows the nesting depth of JSON text fed chunk by chunk; `_TooDeepError` past `limit`.

    Brackets inside strings do not count. Escaped backslashes and quotes are dropped first, then
    everything but quotes and brackets (C-speed byte operations, no regex), so what is left is
    quotes that open or close strings and the brackets between them. Being inside a string, and a
    run of backslashes cut by a chunk boundary, carry over to the next chunk.
    """

    def __init__(self, limit: int = MAX_DEPTH) -> None:
        self.limit = limit
        self.depth = 0
        self._in_string = False
        self._carry = b""  # backslashes at the end of the last chunk: they escape what comes next

    def follow(self, data: bytes) -> None:
        data = self._carry + data
        kept = data.rstrip(b"\\")
        self._carry = data[len(kept) :]
        for escape in (b"\\\\", b'\\"'):  # in this order: a backslash escaped before a quote
            if escape in kept:  # rare in annotations; finding costs far less than replacing
                kept = kept.replace(escape, b"")
        structure = kept.translate(None, _NOT_STRUCTURAL)
        pieces = structure.split(b'"')  # alternately outside and inside strings
        outside = b"".join(pieces[1::2] if self._in_string else pieces[0::2])
        self._in_string ^= len(pieces) % 2 == 0
        opens = outside.count(b"[") + outside.count(b"{")
        if self.depth + opens > self.limit:  # it could pass the limit: the deepest point in the chunk
            steps = accumulate(outside.translate(_STEP_TWICE))  # 2 per opening bracket, 0 per closing
            if self.depth + max(map(operator.sub, steps, count(1))) > self.limit:
                raise _TooDeepError
        self.depth += 2 * opens - len(outside)


class _DepthGuardedStream:
    """The file as ijson reads it, stopping JSON nested deeper than `MAX_DEPTH` before ijson builds
    it (ijson's memory grows with the square of the depth)."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._brackets = _Brackets()

    def read(self, size: int = -1) -> bytes:
        chunk = self._stream.read(size)
        self._brackets.follow(chunk)
        return chunk


@dataclass(frozen=True)
class BadJSON:
    """A line that is not a JSON value (JSON Lines only: the reader goes on with the next line)."""

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
        self.path = check_input(path)
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
        except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
            raise JSONStreamError(f"unreadable: a broken .gz file ({exc})", path=self.path) from None
        except OSError as exc:
            raise JSONStreamError(f"unreadable: {exc.strerror or exc}", path=self.path) from None

    def _lines(self, handle: BinaryIO) -> Iterator[tuple[int, Any]]:
        index = 0
        for line_number, raw_line in enumerate(handle, start=1):
            if not raw_line.strip():
                continue
            try:
                yield index, parse_json_line(raw_line)
            except JSONLineError as exc:
                yield index, BadJSON(f"line {line_number}: {exc}")
            index += 1

    def _array(self, handle: BinaryIO) -> Iterator[tuple[int, Any]]:
        index = 0
        try:
            for record in ijson.items(
                _DepthGuardedStream(handle), "item", use_float=True, buf_size=self.chunk_size
            ):
                yield index, record
                index += 1
        except _TooDeepError:
            raise JSONStreamError(
                f"nested deeper than {MAX_DEPTH} levels; nothing after it is read",
                path=self.path,
                record=index,
            ) from None
        except ijson.JSONError as exc:
            # yajl's message is one line of diagnosis, then the text around the error
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            if "trailing garbage" in reason:
                raise JSONStreamError(
                    "more data after the end of the JSON array (a file holds one array, or one record a "
                    "line); nothing after it is read",
                    path=self.path,
                    record=index,
                ) from None
            raise JSONStreamError(
                f"invalid JSON or truncated file: {reason}; nothing after it is read",
                path=self.path,
                record=index,
            ) from None


def iter_json_records(path: str | os.PathLike[str]) -> Iterator[tuple[int, Any]]:
    """``(index, record)`` for every element of a JSON array file or line of a JSON Lines file."""
    return iter(JsonRecords(path))
