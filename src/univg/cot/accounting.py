"""Money: token prices, a budget that never lets a request pass `--max-cost`, and the ledger of paid replies.

Every reply the teacher sends is paid for, so each one is appended (and flushed) to the ledger the
moment it arrives: the ledger's sum is what the run has cost, across every rerun and every kill, and a
rerun reuses the replies of samples it had not finished instead of paying for them twice.

The budget reserves each request's worst case before it is sent: all of `max_tokens` of completion
and its prompt, estimated as the largest prompt of the same kind seen so far plus half (prompts differ
only with their images' sizes), or from its length and image count before any was seen. A request
that could pass the limit is not sent.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from univg.data.files import AppendLog, repair_tail

logger = logging.getLogger(__name__)

PER_MILLION = 1_000_000
# Before any reply has told us, a prompt is assumed to cost this much: about one token per 3 characters
# of text, and an image as many tokens as Qwen2-VL gives one at the paper's max_pixels (401,408 / 28^2).
CHARS_PER_TOKEN = 3
TOKENS_PER_IMAGE = 512
# Prompts of one kind differ with their images' sizes: the largest seen is reserved with this margin.
SEEN_PROMPT_MARGIN = 1.5


@dataclass(frozen=True)
class Prices:
    """USD per million tokens, as providers list them."""

    input_per_million: float = 0.0
    output_per_million: float = 0.0

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (
            prompt_tokens * self.input_per_million + completion_tokens * self.output_per_million
        ) / PER_MILLION

    @property
    def free(self) -> bool:
        return self.input_per_million == 0 and self.output_per_million == 0


class BudgetExhausted(Exception):
    """The next request could pass `--max-cost`: the run stops starting requests."""


class Budget:
    """Spent and reserved money against an optional limit (all in USD), shared by concurrent requests.

    A request whose worst case does not fit beside the requests in flight waits for them to settle;
    only when nothing is in flight and it still does not fit is the budget exhausted.
    """

    def __init__(self, prices: Prices, max_cost: float | None = None, spent: float = 0.0) -> None:
        self.prices = prices
        self.max_cost = max_cost
        self.spent = spent
        self.reserved = 0.0
        self.in_flight = 0  # requests holding a reservation (a count: float sums never return to 0 exactly)
        self.exhausted = False
        self._largest_prompt: dict[str, int] = {}
        self._settled = asyncio.Condition()

    def estimate(self, kind: str, text_chars: int, images: int, max_tokens: int) -> float:
        """The worst-case cost of one request of `kind` (chain or judge)."""
        guess = text_chars // CHARS_PER_TOKEN + images * TOKENS_PER_IMAGE
        seen = self._largest_prompt.get(kind)
        prompt = guess if seen is None else max(guess, round(seen * SEEN_PROMPT_MARGIN))
        return self.prices.cost(prompt, max_tokens)

    async def reserve(self, amount: float) -> float:
        """Hold `amount` for a request about to be sent; raises `BudgetExhausted` if it could pass the limit."""
        async with self._settled:
            while self.max_cost is not None:
                if not self.exhausted and self.spent + self.reserved + amount <= self.max_cost:
                    break
                if self.exhausted or self.in_flight == 0:
                    self.exhausted = True
                    raise BudgetExhausted(
                        f"the next request could cost up to ${amount:.4f}, and ${self.spent:.4f} is spent of "
                        f"--max-cost ${self.max_cost:.4f}"
                    )
                await self._settled.wait()
            self.reserved += amount
            self.in_flight += 1
        return amount

    def _free(self, reservation: float) -> None:
        self.in_flight -= 1
        self.reserved = max(0.0, self.reserved - reservation) if self.in_flight else 0.0

    async def release(self, reservation: float) -> None:
        """A reserved request that was never paid for (it failed before a reply)."""
        async with self._settled:
            self._free(reservation)
            self._settled.notify_all()

    async def settle(self, reservation: float, kind: str, prompt_tokens: int, cost: float) -> None:
        """A reply arrived: its real cost replaces the reservation."""
        async with self._settled:
            self._free(reservation)
            self.spent += cost
            self._largest_prompt[kind] = max(self._largest_prompt.get(kind, 0), prompt_tokens)
            self._settled.notify_all()


@dataclass(frozen=True)
class PaidReply:
    """One reply the teacher was paid for, as the ledger records it."""

    sample_id: str
    attempt: int  # how many times the sample was retried before (see --retry-rejected)
    settings: str  # the fingerprint of the settings that produced it: only those replies are reused
    kind: str  # "chain" or "judge"
    index: int  # chain number (0-based); 0 for the judge
    text: str
    prompt_tokens: int
    completion_tokens: int
    cost: float
    usage_reported: bool = True  # False: the teacher sent no usage and the cost is the reservation

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.sample_id,
            "attempt": self.attempt,
            "settings": self.settings,
            "kind": self.kind,
            "index": self.index,
            "text": self.text,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "cost": self.cost,
            "usage_reported": self.usage_reported,
        }

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> PaidReply:
        return cls(
            sample_id=str(record["id"]),
            attempt=int(record["attempt"]),
            settings=str(record["settings"]),
            kind=str(record["kind"]),
            index=int(record["index"]),
            text=str(record["text"]),
            prompt_tokens=int(record["prompt_tokens"]),
            completion_tokens=int(record["completion_tokens"]),
            cost=float(record["cost"]),
            usage_reported=bool(record.get("usage_reported", True)),
        )


@dataclass
class LedgerTotals:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    replies: int = 0

    def add(self, reply: PaidReply) -> None:
        self.prompt_tokens += reply.prompt_tokens
        self.completion_tokens += reply.completion_tokens
        self.cost += reply.cost
        self.replies += 1


class Ledger:
    """The append-only file of paid replies (``OUT.ledger.jsonl``)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.totals = LedgerTotals()
        self._reusable: dict[tuple[str, int, str], dict[tuple[str, int], PaidReply]] = {}
        if repair_tail(self.path):
            logger.warning("%s: dropped a reply cut short by an interrupted run", self.path)
        if self.path.exists():
            with self.path.open(encoding="utf-8") as handle:
                for number, line in enumerate(handle, start=1):
                    if not line.strip():
                        continue
                    try:
                        reply = PaidReply.from_json(json.loads(line))
                    except (ValueError, KeyError, TypeError) as exc:
                        raise ValueError(f"{self.path}: line {number}: not a ledger record ({exc})") from None
                    self._remember(reply)
        self._log = AppendLog(self.path)

    def _remember(self, reply: PaidReply) -> None:
        self.totals.add(reply)
        key = (reply.sample_id, reply.attempt, reply.settings)
        self._reusable.setdefault(key, {})[(reply.kind, reply.index)] = reply

    def reusable(self, sample_id: str, attempt: int, settings: str) -> dict[tuple[str, int], PaidReply]:
        """Replies already paid for this sample, attempt and settings, by (kind, index)."""
        return dict(self._reusable.get((sample_id, attempt, settings), {}))

    def append(self, reply: PaidReply) -> None:
        """Record a paid reply at once (flushed: a kill right after loses nothing)."""
        self._log.append(reply.to_json())
        self._remember(reply)

    def close(self) -> None:
        self._log.close()
