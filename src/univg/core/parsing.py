"""Reading boxes and image references out of model text.

One parser for the whole project: the accuracy reward, the format reward, the scorer and the
predictor all call `extract_box`, so a reward and a benchmark score cannot disagree. `read_box` is the
one way from a model's text to a canonical box, and `answer_image` the one answer to "which image is
that box in".

Modes of `extract_box`:
- ``"strict"``: the whole response must be the paper's ``<think>...</think><answer>(x1, y1), (x2, y2)
  </answer>`` (whitespace tolerant): the answer holds that one box and nothing else. This is the
  paper's format reward. `is_loose_format` also accepts ``[x1, y1, x2, y2]``, Qwen's box tags and words
  around the box (the `format_loose` reward, a named departure).
- ``"answer"``: the first box inside the first ``<answer>...</answer>``.
- ``"first"``: the first box anywhere in the text, as the official UniVG-R1 evaluation does (it will
  happily read a box that only appears inside ``<think>``).

`extract_box` returns boxes exactly as written; `read_box` converts them from the model's coordinate
system.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Literal

from univg.core.boxes import CoordSystem, to_normalized

ParseMode = Literal["strict", "answer", "first"]
PARSE_MODES: tuple[ParseMode, ...] = ("strict", "answer", "first")

BoxTuple = tuple[float, float, float, float]

# Responses longer than this are not searched past this point: a reward must never take seconds.
MAX_SCAN_CHARS = 20_000

_NUM = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)"
_SEP = r"\s*,\s*"
_PAIR_BOX = rf"\(\s*({_NUM}){_SEP}({_NUM})\s*\)\s*,?\s*\(\s*({_NUM}){_SEP}({_NUM})\s*\)"
_LIST_BOX = rf"\[\s*({_NUM}){_SEP}({_NUM}){_SEP}({_NUM}){_SEP}({_NUM})\s*\]"
_BOX_RE = re.compile(rf"{_PAIR_BOX}|{_LIST_BOX}")
_ANSWER_RE = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_STRICT_RE = re.compile(r"\s*<think>(.*?)</think>\s*<answer>(.*?)</answer>\s*", re.DOTALL)
_PAPER_ANSWER_RE = re.compile(rf"\s*{_PAIR_BOX}\s*")
_BOX_TAGS_RE = re.compile(r"<\|box_start\|>|<\|box_end\|>|<\|object_ref_start\|>.*?<\|object_ref_end\|>")


def extract_boxes(text: str) -> list[BoxTuple]:
    """Every box written in `text`, in order, as written; Qwen's box tags are transparent."""
    if not isinstance(text, str):
        return []
    cleaned = _BOX_TAGS_RE.sub(" ", text[:MAX_SCAN_CHARS])
    found: list[BoxTuple] = []
    for match in _BOX_RE.finditer(cleaned):
        groups = [g for g in match.groups() if g is not None]
        found.append(tuple(float(g) for g in groups))  # type: ignore[arg-type]
    return found


def _think_and_answer(text: str) -> tuple[str, str] | None:
    """(reasoning, answer) of a response that is exactly one think block and one answer block."""
    if not isinstance(text, str) or len(text) > MAX_SCAN_CHARS:
        return None
    match = _STRICT_RE.fullmatch(text)
    if match is None:
        return None
    think, answer = match.groups()
    if "<think>" in think or "<answer>" in think or "<answer>" in answer:
        return None
    return think, answer


def is_strict_format(text: str) -> bool:
    """True when the whole response is ``<think>...</think><answer>(x1, y1), (x2, y2)</answer>``."""
    parts = _think_and_answer(text)
    return parts is not None and _PAPER_ANSWER_RE.fullmatch(parts[1]) is not None


def is_loose_format(text: str) -> bool:
    """Like `is_strict_format`, but the one box may be ``[x1, y1, x2, y2]``, inside Qwen's box tags, or
    among words without other numbers."""
    parts = _think_and_answer(text)
    if parts is None:
        return False
    answer = parts[1]
    if len(extract_boxes(answer)) != 1:
        return False
    leftover = _BOX_RE.sub("", _BOX_TAGS_RE.sub(" ", answer))
    return not any(ch.isdigit() for ch in leftover)


def extract_box(text: str, mode: ParseMode = "answer") -> BoxTuple | None:
    """The box a response gives, as written, or None. Never raises on any input."""
    if not isinstance(text, str):
        return None
    if mode == "strict":
        if not is_strict_format(text):
            return None
        answer = _STRICT_RE.fullmatch(text).group(2)  # type: ignore[union-attr]
        return extract_boxes(answer)[0]
    if mode == "answer":
        match = _ANSWER_RE.search(text[:MAX_SCAN_CHARS])
        if match is None:
            return None
        boxes = extract_boxes(match.group(1))
        return boxes[0] if boxes else None
    if mode == "first":
        boxes = extract_boxes(text)
        return boxes[0] if boxes else None
    raise ValueError(f"unknown parse mode {mode!r}; expected one of {PARSE_MODES}")


def read_box(
    text: str,
    mode: ParseMode = "answer",
    coords: CoordSystem | str = CoordSystem.QWEN2VL,
    image_size: Sequence[int] | None = None,
) -> BoxTuple | None:
    """The box a response gives, in canonical 0..1; None when there is none or it cannot be converted
    (pixel coordinates without the (width, height) of the resized image they refer to)."""
    written = extract_box(text, mode)
    if written is None:
        return None
    size = (int(image_size[0]), int(image_size[1])) if image_size is not None else None
    try:
        return to_normalized(written, coords, size)
    except ValueError:
        return None


def extract_answer_text(text: str) -> str | None:
    """The content of the first ``<answer>`` tag, or None."""
    if not isinstance(text, str):
        return None
    match = _ANSWER_RE.search(text[:MAX_SCAN_CHARS])
    return match.group(1) if match else None


_ORDINAL_WORDS = {
    "first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7,
    "eighth": 8, "ninth": 9, "tenth": 10, "eleventh": 11, "twelfth": 12,
}  # fmt: skip
_CARDINAL_WORDS = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
    "ten": 10,
}  # fmt: skip
_WORD_VALUES = {**_ORDINAL_WORDS, **_CARDINAL_WORDS}
_ORDINAL_ALT = "|".join(sorted(_ORDINAL_WORDS, key=len, reverse=True))
_ANY_WORD_ALT = "|".join(sorted(_WORD_VALUES, key=len, reverse=True))
# Singular only: "3 images" or "two pictures" count images, they do not name one.
_IMAGE_WORD = r"(?:image|picture|frame|photo|img)"
# "the third image", "1th image", "2nd picture" (a bare "3 image" is not a reference)
_BEFORE_RE = re.compile(
    rf"\b(?:({_ORDINAL_ALT})|(\d{{1,3}})(?:st|nd|rd|th))[\s-]+{_IMAGE_WORD}\b", re.IGNORECASE
)
# "image 2", "image-2", "Image #3", "picture two", "image2"
_AFTER_RE = re.compile(rf"\b{_IMAGE_WORD}[\s#:-]*(?:(\d{{1,3}})|({_ANY_WORD_ALT}))\b", re.IGNORECASE)


def image_references(text: str) -> list[int]:
    """Every image the text names, as 0-based indices, in order of appearance.

    Understands "the third image", "1th image", "2nd picture", "image 2", "image-2", "Image #3",
    "frame two". Numbers are 1-based in text, as people and the benchmarks write them.
    """
    if not isinstance(text, str):
        return []
    text = text[:MAX_SCAN_CHARS]
    hits: list[tuple[int, int]] = []
    for match in _BEFORE_RE.finditer(text):
        word, number = match.groups()
        value = _WORD_VALUES[word.lower()] if word else int(number)
        hits.append((match.start(), value))
    for match in _AFTER_RE.finditer(text):
        number, word = match.groups()
        value = int(number) if number else _WORD_VALUES[word.lower()]
        hits.append((match.start(), value))
    hits.sort()
    return [value - 1 for _, value in hits if value >= 1]


def extract_target_image(text: str) -> int | None:
    """The 0-based image index a response says its box is in ("It's in the third image."), or None.

    Looks in the ``<answer>`` first, then in the whole text; the last image named in the chosen part
    wins, because reasoning usually mentions the images it compared before the one it settles on.
    """
    if not isinstance(text, str):
        return None
    answer = extract_answer_text(text)
    for part in (answer, text):
        if part:
            refs = image_references(part)
            if refs:
                return refs[-1]
    return None


def answer_image(named: int | None, num_images: int) -> int | None:
    """The image a response's box is in, given the image it names (`extract_target_image`).

    The named image when there is one, else the only image; None when the response names an image
    that is not there, or names none of several. The predictor places boxes with this and the
    scorer's image check asks it, so what a user is shown is what is scored.
    """
    if named is None:
        return 0 if num_images == 1 else None
    return named if 0 <= named < num_images else None
