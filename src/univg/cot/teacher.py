"""`univg cot teacher`: the synthetic world's rule-based teacher behind the OpenAI chat protocol.

It serves the samples of a `univg data synth` file to `univg cot generate` (or any OpenAI client) on
loopback, so the whole CoT pipeline runs with no account and no download. A request is matched to its
sample by the bytes of its images (`univg cot generate` sends image files as they are). A chain request
gets, drawn from the request's ``seed``, one of: the sample's right chain (`univg.data.synthetic.teacher
.chain`, stored as the sample's ``cot``), one of its deliberately wrong chains (``extra.wrong_chains``,
`univg data synth --wrong-chains K`), the right chain with the box leaked into the reasoning, or the
right chain without the answer format, so every rejection reason of verification is exercised. A judge
request (candidates listed as ``Candidate N:``) is answered ``Best: N`` for the candidate whose answer
box overlaps the ground truth most, ties to the first: a plausible judge, not a perfect one (it does
not look for leaks). Usage counts text tokens and Qwen2-VL image tokens, so cost accounting has real
numbers to count.
"""

import hashlib
import random
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from univg.core.boxes import CoordSystem, iou
from univg.core.resize import image_token_count
from univg.core.rewards import read_box
from univg.cot.request import decode_data_url
from univg.data.files import AppendLog
from univg.data.images import probe_image
from univg.data.prompts import format_box
from univg.data.schema import GroundingSample, read_jsonl, resolve_image

DEFAULT_MODEL = "univg-offline-teacher"
VARIANTS = ("right", "wrong", "leaky", "unformatted")
# Shares of each chain variant (wrong chains fall back to right ones when a sample has none).
DEFAULT_SHARES = (0.5, 0.3, 0.1, 0.1)
_CANDIDATE_RE = re.compile(r"^Candidate (\d+):[ \t]*\n", re.MULTILINE)
_TOKEN_RE = re.compile(r"\w+|[^\w\s]")


class TeacherRequestError(Exception):
    """A request the offline teacher answers with an HTTP error (status and OpenAI-style message)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    def body(self) -> dict[str, Any]:
        kind = "invalid_request_error" if self.status == 400 else "not_found_error"
        return {"error": {"message": self.message, "type": kind, "code": None}}


def count_tokens(text: str) -> int:
    """Words and punctuation marks: a stand-in for a tokenizer that is stable and easy to check."""
    return len(_TOKEN_RE.findall(text))


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _rng(key: str) -> random.Random:
    """A generator per key, seeded by the key's hash: string seeds that differ in a digit or two give
    Mersenne Twister correlated first draws."""
    return random.Random(int.from_bytes(hashlib.sha256(key.encode()).digest(), "big"))


@dataclass(frozen=True)
class Identified:
    sample: GroundingSample
    kind: str  # "chain" or "judge"
    text: str  # the user text
    image_tokens: int


class OfflineTeacher:
    """Answers chat completion requests about the samples of one canonical JSONL file."""

    def __init__(
        self,
        samples_path: str | Path,
        *,
        image_root: str | Path | None = None,
        model: str = DEFAULT_MODEL,
        coords: CoordSystem | str = CoordSystem.QWEN2VL,
        shares: tuple[float, float, float, float] = DEFAULT_SHARES,
        request_log: str | Path | None = None,
    ) -> None:
        if len(shares) != len(VARIANTS) or any(s < 0 for s in shares) or sum(shares) <= 0:
            raise ValueError(f"shares must be {len(VARIANTS)} numbers >= 0 for {VARIANTS}")
        self.model = model
        self.coords = CoordSystem.parse(coords)
        self.shares = shares
        root = Path(image_root) if image_root is not None else Path(samples_path).parent
        self._by_images: dict[tuple[str, ...], GroundingSample] = {}
        self._image_tokens: dict[str, int] = {}
        for sample in read_jsonl(samples_path):
            digests = []
            for path in sample.images:
                file = resolve_image(path, root)
                digest = _digest(file.read_bytes())
                self._image_tokens[digest] = image_token_count(probe_image(file))
                digests.append(digest)
            self._by_images.setdefault(tuple(digests), sample)
        self.samples = len(self._by_images)
        self.with_wrong_chains = sum(1 for s in self._by_images.values() if s.extra.get("wrong_chains"))
        self.requests: list[tuple[str, str]] = []  # (sample id, kind) of every answered request, in order
        self._log = AppendLog(Path(request_log)) if request_log is not None else None

    def identify(self, body: Any) -> Identified:
        """The sample and kind of a request; `TeacherRequestError` for one it cannot answer."""
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            raise TeacherRequestError(400, "the request body must be a JSON object with 'messages'")
        digests, texts = [], []
        for message in body["messages"]:
            if not isinstance(message, dict) or message.get("role") != "user":
                continue
            content = message.get("content")
            parts = [{"type": "text", "text": content}] if isinstance(content, str) else content or []
            for part in parts:
                if not isinstance(part, dict):
                    continue
                if part.get("type") == "text":
                    texts.append(str(part.get("text", "")))
                elif part.get("type") == "image_url":
                    data = decode_data_url((part.get("image_url") or {}).get("url", ""))
                    if data is None:
                        raise TeacherRequestError(400, "images must be base64 data: URLs")
                    digests.append(_digest(data))
        text = "\n".join(texts)
        kind = "judge" if _CANDIDATE_RE.search(text) else "chain"
        if not digests and kind == "judge":
            sample = self._by_text(text)
        else:
            sample = self._by_images.get(tuple(digests))
        if sample is None:
            raise TeacherRequestError(
                400,
                f"unknown images: this offline teacher serves the {self.samples} samples it was started with",
            )
        tokens = sum(self._image_tokens.get(d, 0) for d in digests)
        return Identified(sample, kind, text, tokens)

    def _by_text(self, text: str) -> GroundingSample | None:
        """A judge request sent without images: the sample whose question opens the text."""
        matches = [
            s for s in self._by_images.values() if text.startswith(s.question.replace("<image>", "").strip())
        ]
        return matches[0] if len(matches) == 1 else None

    def complete(self, body: Any) -> dict[str, Any]:
        """The chat completion (as JSON) answering a request."""
        model = body.get("model") if isinstance(body, dict) else None
        if model != self.model:
            raise TeacherRequestError(
                404, f"The model `{model}` does not exist; this server serves `{self.model}`"
            )
        found = self.identify(body)
        self.requests.append((found.sample.id, found.kind))
        if self._log is not None:
            self._log.append(
                {"time": time.time(), "id": found.sample.id, "kind": found.kind, "seed": body.get("seed")}
            )
        if found.kind == "judge":
            reply = self._judge(found.sample, found.text)
        else:
            reply = self._chain(found.sample, body.get("seed"))
        prompt_tokens = count_tokens(found.text) + found.image_tokens
        completion_tokens = count_tokens(reply)
        key = f"{found.sample.id}/{body.get('seed')}/{found.kind}"
        return {
            "id": f"chatcmpl-{_digest(key.encode())[:24]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.model,
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": reply}, "finish_reason": "stop"}
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }

    def variant(self, sample: GroundingSample, seed: Any) -> str:
        """Which kind of chain a request with this seed gets (fixed per sample and seed)."""
        shares = list(self.shares)
        if not sample.extra.get("wrong_chains"):
            shares[0], shares[1] = shares[0] + shares[1], 0.0
        return _rng(f"{sample.id}/{seed}").choices(VARIANTS, weights=shares)[0]

    def _chain(self, sample: GroundingSample, seed: Any) -> str:
        right = (sample.cot or "").strip()
        box = format_box(sample.box, self.coords)
        variant = self.variant(sample, seed)
        if variant == "wrong":
            wrong = _rng(f"{sample.id}/{seed}/wrong").choice(sample.extra["wrong_chains"])
            return f"<think>{wrong['cot']}</think><answer>{format_box(wrong['box'], self.coords)}</answer>"
        if variant == "leaky":
            return f"<think>{right} Its box is {box}.</think><answer>{box}</answer>"
        if variant == "unformatted":
            return f"{right} The answer is {box}."
        return f"<think>{right}</think><answer>{box}</answer>"

    def _judge(self, sample: GroundingSample, text: str) -> str:
        pieces = _CANDIDATE_RE.split(text)
        candidates = {int(number): body for number, body in zip(pieces[1::2], pieces[2::2], strict=True)}
        scores = {}
        for number, candidate in candidates.items():
            box = read_box(candidate, "answer", self.coords)
            scores[number] = iou(box, sample.box) if box is not None else 0.0
        best = max(sorted(scores), key=lambda number: scores[number])
        return f"Best: {best}"


def create_app(teacher: OfflineTeacher, *, latency_s: float = 0.0) -> Any:
    """The FastAPI app: ``POST /v1/chat/completions`` and ``GET /v1/models``, as OpenAI servers have.

    (This module does without ``from __future__ import annotations``: FastAPI reads the endpoint's
    annotations at run time, and `Request` is imported here, with the serve extra.) `latency_s` delays
    every reply, as a remote teacher would.
    """
    import asyncio

    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse

    app = FastAPI(title="univg offline CoT teacher")

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> JSONResponse:
        try:
            body = await request.json()
        except ValueError:
            return JSONResponse(TeacherRequestError(400, "the body is not JSON").body(), status_code=400)
        if latency_s:
            await asyncio.sleep(latency_s)
        try:
            return JSONResponse(teacher.complete(body))
        except TeacherRequestError as exc:
            return JSONResponse(exc.body(), status_code=exc.status)

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": teacher.model, "object": "model", "owned_by": "univg"}]}

    return app
