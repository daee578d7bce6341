"""Writing outputs so that nothing is lost: checked targets, atomic replacement, append-only logs.

Every command that writes goes through here:

- `check_input` names an input that is missing, of the wrong kind or unreadable.
- `check_output` refuses a target that cannot be right before any work starts: a folder where a
  file is meant (or the reverse), a file in the way of a folder, an existing output without the
  option that allows replacing it, and, whatever that option says, a symbolic link or a device,
  pipe or socket (replacing those would write somewhere the user did not name, or destroy it).
- `atomic_write` / `write_text_atomic` / `atomic_folder` write into a temporary file or folder in
  the target's own folder and rename it into place, so a reader (or a rerun) sees the old output or
  the whole new one, never half of one; a failure (a full disk, a kill) leaves no temporary behind.
- `AppendLog` appends JSON Lines flushed one by one, for outputs that grow as a long job runs and
  are resumed: a last line that a kill cut short is dropped first.

Errors are `OutputError`s that name the file and say what to do.
"""

from __future__ import annotations

import errno
import json
import os
import secrets
import shutil
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Literal

from univg.core.errors import UnivgError, UsageError

Kind = Literal["file", "folder"]

_ADVICE = {
    errno.ENOSPC: "the disk is full: free some space or write elsewhere",
    errno.EDQUOT: "the disk quota is exhausted: free some space or write elsewhere",
    errno.EROFS: "the file system is read-only: write elsewhere",
    errno.EACCES: "permission denied: write elsewhere or change the folder's permissions",
    errno.EPERM: "permission denied: write elsewhere or change the folder's permissions",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EISDIR: "it is a folder",
    errno.ENAMETOOLONG: "the name is too long",
}


class OutputError(UnivgError):
    """An output that cannot be written (nothing partial was left behind)."""


def os_error_advice(exc: OSError) -> str:
    """What an operating-system error means for the user, in a few words."""
    return _ADVICE.get(exc.errno or 0, exc.strerror or str(exc))


def check_input(path: str | os.PathLike[str], *, kind: Kind = "file", option: str | None = None) -> Path:
    """`path` as an input that exists, is a `kind` and can be opened; else a `UsageError` naming it."""
    target = Path(path)
    hint = "check {option}" if option else None
    try:
        info = target.stat()
    except FileNotFoundError:
        raise UsageError("not found", path=target, option=option, hint=hint) from None
    except OSError as exc:
        raise UsageError(f"cannot be read: {os_error_advice(exc)}", path=target, option=option) from None
    if stat.S_ISDIR(info.st_mode) != (kind == "folder"):
        found = "a folder" if stat.S_ISDIR(info.st_mode) else "a file"
        raise UsageError(f"is {found}; expected a {kind}", path=target, option=option, hint=hint)
    if not os.access(target, os.R_OK):
        raise UsageError("cannot be read: permission denied", path=target, option=option)
    return target


def _special_kind(mode: int) -> str | None:
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISFIFO(mode):
        return "a named pipe"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return None


def check_output(
    path: str | os.PathLike[str],
    *,
    kind: Kind = "file",
    force: bool = False,
    resumable: bool = False,
    option: str | None = "force",
) -> Path:
    """Check that `path` can become this command's output `kind`, before any work is done.

    An existing output (a non-empty one, for a folder) is refused unless `force` (the command's
    `option` that allows replacing it) or `resumable` (the command adds to it). Symbolic links,
    devices, pipes and sockets are refused always. Returns the path.
    """
    target = Path(path)
    try:
        info = target.lstat()
    except FileNotFoundError:
        info = None
    except OSError as exc:
        raise UsageError(f"cannot use it as output: {os_error_advice(exc)}", path=target) from None
    if info is not None:
        if stat.S_ISLNK(info.st_mode):
            raise UsageError(
                "is a symbolic link; univg does not write through or replace links",
                path=target,
                hint="give the real path, or remove the link",
            )
        special = _special_kind(info.st_mode)
        if special is not None:
            raise UsageError(
                f"is {special}, not a {kind}; univg writes only regular files and folders", path=target
            )
        if stat.S_ISDIR(info.st_mode) != (kind == "folder"):
            found = "a folder" if stat.S_ISDIR(info.st_mode) else "a file"
            raise UsageError(f"is {found}; expected a {kind} path", path=target)
        if not (force or resumable) and (kind == "file" or any(target.iterdir())):
            raise UsageError(
                "exists",
                path=target,
                option=option,
                hint="pass {option} to replace it" if option else "choose another path",
            )
    _check_parents(target)
    return target


def _check_parents(target: Path) -> None:
    """The nearest existing ancestor must be a folder (the rest is created when writing)."""
    for parent in target.absolute().parents:
        try:
            info = parent.stat()
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise UsageError(f"cannot write there: {os_error_advice(exc)}", path=target) from None
        if not stat.S_ISDIR(info.st_mode):
            raise UsageError(f"cannot write there: {parent} is a file, not a folder", path=target)
        return


def _temporary_name(target: Path) -> Path:
    """A hidden, unique name beside `target` (same folder, so the rename is atomic)."""
    return target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")


def _make_parent(target: Path) -> None:
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create its folder: {os_error_advice(exc)}", path=target) from None


@contextmanager
def atomic_write(
    path: str | os.PathLike[str], *, binary: bool = False, encoding: str = "utf-8"
) -> Iterator[IO[Any]]:
    """A file to write `path`'s new contents to; renamed over `path` only when the block succeeds.

    The temporary file sits in the same folder and gets the permissions a new file would; on any
    failure it is removed and an operating-system error becomes an `OutputError` naming `path`.
    """
    target = Path(path)
    _make_parent(target)
    temporary = _temporary_name(target)
    try:
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with (
            os.fdopen(descriptor, "wb")
            if binary
            else os.fdopen(descriptor, "w", encoding=encoding, newline="")
        ) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    except BaseException as exc:
        temporary.unlink(missing_ok=True)
        if isinstance(exc, OSError) and not isinstance(exc, UnivgError):
            raise OutputError(f"not written: {os_error_advice(exc)}", path=target) from None
        raise


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Replace `path` with `text` (UTF-8) atomically."""
    with atomic_write(path) as handle:
        handle.write(text)


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    """Replace `path` with `data` atomically."""
    with atomic_write(path, binary=True) as handle:
        handle.write(data)


def write_json_atomic(path: str | os.PathLike[str], value: Any) -> None:
    """Replace `path` with `value` as indented JSON atomically."""
    write_text_atomic(path, json.dumps(value, indent=2, ensure_ascii=False) + "\n")


def write_jsonl_atomic(path: str | os.PathLike[str], records: list[dict[str, Any]]) -> None:
    """Replace a JSON Lines file with `records` atomically."""
    with atomic_write(path) as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")


@contextmanager
def atomic_folder(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary folder to build `path` in; it replaces `path` only when the block succeeds.

    An existing `path` (the caller has checked it may be replaced) is swapped out and removed only
    after the new folder is in place; on failure the temporary folder is removed and `path` is as
    it was.
    """
    target = Path(path)
    _make_parent(target)
    temporary = _temporary_name(target)
    try:
        temporary.mkdir()
        yield temporary
        if target.exists():
            retired = _temporary_name(target)
            target.rename(retired)
            temporary.rename(target)
            shutil.rmtree(retired, ignore_errors=True)
        else:
            temporary.rename(target)
    except BaseException as exc:
        shutil.rmtree(temporary, ignore_errors=True)
        if isinstance(exc, OSError) and not isinstance(exc, UnivgError):
            raise OutputError(f"not written: {os_error_advice(exc)}", path=target) from None
        raise


def repair_tail(path: str | os.PathLike[str]) -> bool:
    """Make a JSON Lines file end with a newline, so what is appended next starts its own line.

    A last line without its newline that is not complete JSON was cut by a kill: it is removed
    (True is returned); a complete one just gets its newline.
    """
    target = Path(path)
    if not target.is_file() or target.stat().st_size == 0:
        return False
    with target.open("r+b") as handle:
        handle.seek(-1, os.SEEK_END)
        if handle.read(1) == b"\n":
            return False
        handle.seek(0)
        data = handle.read()
        start = data.rfind(b"\n") + 1
        try:
            json.loads(data[start:])
        except ValueError:
            handle.truncate(start)
            return True
        handle.write(b"\n")
    return False


class AppendLog:
    """A JSON Lines file opened for appending; each record is flushed the moment it is written.

    A last line cut by an earlier kill is removed first (`repair_tail`).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        _make_parent(self.path)
        try:
            self.repaired = repair_tail(self.path)
            self._handle: IO[str] = self.path.open("a", encoding="utf-8")
        except OSError as exc:
            raise OutputError(f"cannot append to it: {os_error_advice(exc)}", path=self.path) from None

    def append(self, record: dict[str, Any]) -> None:
        try:
            self._handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            self._handle.flush()
        except OSError as exc:
            raise OutputError(
                f"cannot append to it: {os_error_advice(exc)} (what was written before is kept; "
                "run the same command again to resume)",
                path=self.path,
            ) from None

    def close(self) -> None:
        try:
            self._handle.close()
        except OSError as exc:
            raise OutputError(f"cannot finish writing it: {os_error_advice(exc)}", path=self.path) from None

    def __enter__(self) -> AppendLog:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
