"""Reading the judge's choice: which of the numbered candidate chains the teacher picked.

The judge prompt asks for ``Best: N``; teachers also answer ``**Best:** 2``, ``Candidate 2`` or just
``2``. A reply that names no candidate in range is a rejection reason (``judge_unparseable``), never
a guess.
"""

from __future__ import annotations

import re

JUDGE_UNPARSEABLE = "judge_unparseable"

_LABELLED_RE = re.compile(
    r"\b(?:best|candidate|choice|answer)\W{0,6}(?:is\W{0,3})?(?:candidate\W{0,3})?(\d+)", re.I
)
_NUMBER_RE = re.compile(r"(?<![\d.])(\d+)(?![\d.]*\d)")


def parse_choice(reply: str, count: int) -> int | None:
    """The 0-based index of the chosen candidate among `count`, or None when the reply names none.

    A labelled number ("Best: 2") wins; otherwise the reply must hold exactly one number in range.
    """
    if not isinstance(reply, str) or count <= 0:
        return None
    for match in _LABELLED_RE.finditer(reply):
        number = int(match.group(1))
        if 1 <= number <= count:
            return number - 1
    numbers = {int(m.group(1)) for m in _NUMBER_RE.finditer(reply)}
    in_range = [n for n in numbers if 1 <= n <= count]
    if len(in_range) == 1:
        return in_range[0] - 1
    return None
