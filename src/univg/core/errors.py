"""The one error type users see, its one-line form, and the exit statuses scripts rely on.

Anything a user can cause (a bad record, a missing file, an output that cannot be written, a flag
value out of range) is raised as a `UnivgError`: it names where the problem is (file, record,
field) and, when an option fixes it, which one. The same error reads in the terms of whoever
called: a Python caller sees the parameter (``'force'``), the command line the flag it typed
(``--force``), because `render` takes the spelling of options from its caller.
"""

from __future__ import annotations

from collections.abc import Callable

EXIT_OK = 0
EXIT_BAD_DATA = 1  # the input's contents, a model, or the run itself failed
EXIT_USAGE = 2  # a flag, its value, or a path given on the command line is wrong

OptionSpelling = Callable[[str], str]


def python_option(name: str) -> str:
    """How an option reads to a Python caller: the parameter's name."""
    return repr(name)


class UnivgError(Exception):
    """A problem the user can fix, with where it is and what to do.

    `message` says what is wrong; `path`, `record` and `field` say where (a record is a 0-based
    position, or a phrase such as ``"line 3"``); `hint` says what to do. The message and the hint
    name the option concerned as ``{option}``, which `render`'s caller spells.
    """

    exit_code: int = EXIT_BAD_DATA

    def __init__(
        self,
        message: str,
        *,
        path: object = None,
        record: int | str | None = None,
        field: str | None = None,
        option: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.message = message
        self.path = None if path is None else str(path)
        self.record = record
        self.field = field
        self.option = option
        self.hint = hint
        super().__init__(self.render())

    def where(self) -> str:
        """``file: record 3: field 'box'``, as much of it as is known."""
        parts = []
        if self.path is not None:
            parts.append(self.path)
        if self.record is not None:
            parts.append(f"record {self.record}" if isinstance(self.record, int) else str(self.record))
        if self.field is not None:
            parts.append(f"field {self.field!r}")
        return ": ".join(parts)

    def render(self, spell: OptionSpelling = python_option) -> str:
        """The error on one line, with options spelled by `spell` (a flag on the command line)."""
        body = f"{self.message}; {self.hint}" if self.hint else self.message
        if self.option:
            body = body.replace("{option}", spell(self.option))
        where = self.where()
        text = f"{where}: {body}" if where else body
        return " ".join(line.strip() for line in text.splitlines() if line.strip())

    def __str__(self) -> str:
        return self.render()


class UsageError(UnivgError, ValueError):
    """Wrong use: an option, its value, or a path given to the command (exit status 2).

    Also a `ValueError`, which is what a wrong argument is to a Python caller.
    """

    exit_code = EXIT_USAGE


def require(condition: bool, message: str, *, option: str, hint: str | None = None) -> None:
    """Raise a `UsageError` about `option` unless `condition` holds (checks of settings)."""
    if not condition:
        raise UsageError(f"{{option}} {message}", option=option, hint=hint)
