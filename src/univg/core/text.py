"""What text must not hold: characters no file can store, and characters no prompt should carry.

Two callers, one rule: readers refuse a record whose text cannot be written as UTF-8 (a lone
surrogate, which JSON's ``\\ud800`` escapes can produce), and the server refuses requests whose text
would also carry control characters or noncharacters into the prompt.
"""

from __future__ import annotations

import re
import unicodedata

ALLOWED_CONTROL = frozenset("\t\n\r")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def unencodable(text: str) -> str | None:
    """Why `text` cannot be written as UTF-8 (a lone surrogate), or None."""
    found = _LONE_SURROGATE.search(text)
    if found is None:
        return None
    return f"holds a lone surrogate U+{ord(found.group()):04X} at character {found.start()}"


def text_problem(text: str) -> str | None:
    """The first character that should not reach a model's prompt, described, or None."""
    problem = unencodable(text)
    if problem is not None:
        return problem
    for position, char in enumerate(text):
        code = ord(char)
        if unicodedata.category(char) == "Cc" and char not in ALLOWED_CONTROL:
            return f"holds the control character U+{code:04X} at character {position}"
        if (code & 0xFFFE) == 0xFFFE or 0xFDD0 <= code <= 0xFDEF:
            return f"holds the noncharacter U+{code:04X} at character {position}"
    return None
