"""phi, the difficulty weight of UniVG-R1 section 3.3, and the paper's easy / medium / hard buckets.

Each completion's policy term is multiplied by phi(mIoU), where mIoU is the mean accuracy reward of
its own prompt group. Hard groups (low mIoU) get larger weights, so the model keeps learning from the
prompts it still gets wrong instead of polishing the easy ones.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

PhiKind = Literal["none", "exp", "log", "square", "power"]
PHI_KINDS: tuple[PhiKind, ...] = ("none", "exp", "log", "square", "power")
Bucket = Literal["easy", "medium", "hard"]
BUCKETS: tuple[Bucket, ...] = ("easy", "medium", "hard")

# -log(m) is infinite at m = 0. The floor gives a group with no overlap the weight the official code
# gives it (-log(0.02 + 0) ~= 3.9); unlike the official -log(0.02 + m), which turns negative above
# m = 0.98 and would flip the policy term of near-perfect groups, -log(max(m, 0.02)) stays >= 0.
LOG_FLOOR = 0.02
EASY_ABOVE = 0.7
HARD_BELOW = 0.3


def phi(miou: float, kind: PhiKind = "exp", *, eps: float = 0.0, power: float = 1.0) -> float:
    """phi(mIoU) for one group.

    - ``none``: 1
    - ``exp``: exp(1 - m), the paper's best (Table 5)
    - ``log``: -log(max(m, LOG_FLOOR))
    - ``square``: (1 - m)^2
    - ``power``: (1 + eps - m)^power
    `miou` is clamped into [0, 1] first (rewards other than IoU may leave it).
    """
    m = min(1.0, max(0.0, float(miou))) if math.isfinite(float(miou)) else 0.0
    if kind == "none":
        return 1.0
    if kind == "exp":
        return math.exp(1.0 - m)
    if kind == "log":
        return -math.log(max(m, LOG_FLOOR))
    if kind == "square":
        return (1.0 - m) ** 2
    if kind == "power":
        base = 1.0 + eps - m
        if base < 0:
            raise ValueError(f"power weighting needs 1 + eps - mIoU >= 0, got eps={eps}, mIoU={m}")
        return base**power
    raise ValueError(f"unknown difficulty weighting {kind!r}; expected one of {PHI_KINDS}")


def phi_formula(kind: PhiKind, *, eps: float = 0.0, power: float = 1.0) -> str:
    """phi written out, for the lines that tell a user which objective a run optimises."""
    formulas = {
        "none": "1 (plain GRPO)",
        "exp": "exp(1 - mIoU)",
        "log": "-log(mIoU)",
        "square": "(1 - mIoU)^2",
        "power": f"(1 + {eps} - mIoU)^{power}",
    }
    if kind not in formulas:
        raise ValueError(f"unknown difficulty weighting {kind!r}; expected one of {PHI_KINDS}")
    return formulas[kind]


def bucket(miou: float) -> Bucket:
    """The paper's difficulty bucket of a group: easy (> 0.7), medium (0.3..0.7), hard (< 0.3)."""
    if miou > EASY_ABOVE:
        return "easy"
    if miou < HARD_BELOW:
        return "hard"
    return "medium"


def bucket_shares(mious: Sequence[float]) -> dict[Bucket, float]:
    """The share of groups in each bucket; the shares sum to 1 (all zero for no groups)."""
    counts = dict.fromkeys(BUCKETS, 0)
    for m in mious:
        counts[bucket(m)] += 1
    total = len(mious)
    return {name: (count / total if total else 0.0) for name, count in counts.items()}
