"""Batching requests that arrive together, with a bounded queue.

The first waiting request opens a batch; the scheduler waits up to `max_wait_s` after its arrival
for more requests with the same decoding options (up to `max_batch`), then runs them as one
`Predictor.predict` call on a single generation thread, so the event loop keeps answering
/healthz and /metrics while the model works. Requests that came in during a batch start the next
one at once. The Predictor pads batches on the left, so a greedy answer is the same whatever it was
batched with. A full queue refuses new requests (503 with Retry-After) instead of growing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from transformers.generation.streamers import BaseStreamer

from univg.inference.predictor import GenerationOptions, Prediction, Predictor, Request
from univg.serving.metrics import ServerMetrics

logger = logging.getLogger(__name__)

TokenSink = Callable[[int], None]


class QueueFullError(Exception):
    """The queue holds `max_queue` requests already; the client should retry after `retry_after_s`."""

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(f"the server is busy (queue full); retry after {retry_after_s} s")
        self.retry_after_s = retry_after_s


class ShuttingDownError(Exception):
    """The server stopped before this request ran."""


@dataclass(eq=False)
class Job:
    """One request in the queue; `future` resolves to its Prediction (or the error it met)."""

    request: Request
    options: GenerationOptions
    future: asyncio.Future[Prediction]
    enqueued: float
    on_token: TokenSink | None = None
    started: float | None = None  # when its batch began
    batch_size: int = 0
    key: Hashable = field(init=False)

    def __post_init__(self) -> None:
        # A seeded sample is reproducible only alone: the seed sets the generator for the whole batch.
        seeded = self.options.do_sample and self.options.seed is not None
        self.key = ("alone", id(self)) if seeded else self.options


class _RowStreamer(BaseStreamer):
    """Hands each batch row's new tokens to its request's sink until that row stops."""

    def __init__(self, sinks: list[TokenSink | None], stop_ids: frozenset[int]) -> None:
        self._sinks = sinks
        self._stop_ids = stop_ids
        self._stopped = [sink is None for sink in sinks]
        self._prompt_seen = False

    def put(self, value: Any) -> None:
        if not self._prompt_seen:  # generate() first hands over the prompts
            self._prompt_seen = True
            return
        for row, tokens in enumerate(value.reshape(len(self._sinks), -1).tolist()):
            for token in tokens:
                if self._stopped[row]:
                    break
                if token in self._stop_ids:
                    self._stopped[row] = True
                    break
                sink = self._sinks[row]
                assert sink is not None
                sink(token)

    def end(self) -> None:
        self._stopped = [True] * len(self._sinks)


class BatchScheduler:
    """Collects requests into batches and runs them one batch at a time."""

    def __init__(
        self,
        predictor: Predictor,
        metrics: ServerMetrics,
        *,
        max_batch: int,
        max_wait_s: float,
        max_queue: int,
    ) -> None:
        if predictor.batch_size < max_batch:
            raise ValueError(
                f"the predictor's batch size {predictor.batch_size} is below max_batch {max_batch}"
            )
        self.predictor = predictor
        self.metrics = metrics
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.max_queue = max_queue
        eos = predictor.model.generation_config.eos_token_id
        self._stop_ids = frozenset(eos if isinstance(eos, list) else [] if eos is None else [eos])
        self._pending: deque[Job] = deque()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="univg-generate")
        self._arrived: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._mean_batch_s = 1.0

    @property
    def depth(self) -> int:
        return len(self._pending)

    def start(self) -> None:
        self._arrived = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="univg-scheduler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        while self._pending:
            job = self._pending.popleft()
            if not job.future.done():
                job.future.set_exception(ShuttingDownError("the server is shutting down"))
        self.metrics.queue_depth.set(0)
        self._executor.shutdown(wait=True, cancel_futures=True)

    def submit(self, request: Request, options: GenerationOptions, on_token: TokenSink | None = None) -> Job:
        """Queue a request (raises QueueFullError at once when the queue is full)."""
        if len(self._pending) >= self.max_queue:
            self.metrics.rejected.inc()
            waves = len(self._pending) / self.max_batch + 1
            raise QueueFullError(max(1, math.ceil(self._mean_batch_s * waves)))
        loop = asyncio.get_running_loop()
        job = Job(request, options, loop.create_future(), time.monotonic(), on_token)
        job.future.add_done_callback(lambda _future: self._discard(job))
        self._pending.append(job)
        self.metrics.queue_depth.set(len(self._pending))
        assert self._arrived is not None, "start() the scheduler first"
        self._arrived.set()
        return job

    def _discard(self, job: Job) -> None:
        """A job that finished or was cancelled (its client left) leaves the queue."""
        try:
            self._pending.remove(job)
        except ValueError:
            return
        self.metrics.queue_depth.set(len(self._pending))

    def _compatible(self, key: Hashable) -> int:
        return sum(1 for job in self._pending if job.key == key)

    def _take(self, key: Hashable) -> list[Job]:
        batch = [job for job in self._pending if job.key == key][: self.max_batch]
        for job in batch:
            self._pending.remove(job)
        self.metrics.queue_depth.set(len(self._pending))
        return batch

    async def _loop(self) -> None:
        assert self._arrived is not None
        while True:
            while not self._pending:
                self._arrived.clear()
                await self._arrived.wait()
            first = self._pending[0]
            deadline = first.enqueued + self.max_wait_s
            while self._compatible(first.key) < self.max_batch:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._arrived.clear()
                try:
                    await asyncio.wait_for(self._arrived.wait(), remaining)
                except asyncio.TimeoutError:
                    break
            batch = self._take(first.key)
            try:
                await self._run(batch)
            except Exception as exc:  # the loop must outlive any batch
                logger.exception("scheduling a batch failed")
                for job in batch:
                    if not job.future.done():
                        job.future.set_exception(exc)

    async def _run(self, batch: list[Job]) -> None:
        started = time.monotonic()
        for job in batch:
            job.started = started
            job.batch_size = len(batch)
            self.metrics.queue_wait.observe(started - job.enqueued)
        self.metrics.batch_size.observe(len(batch))
        loop = asyncio.get_running_loop()
        results = await loop.run_in_executor(self._executor, self._generate, batch)
        seconds = time.monotonic() - started
        self.metrics.batch_seconds.observe(seconds)
        self._mean_batch_s = 0.8 * self._mean_batch_s + 0.2 * seconds
        for job, result in zip(batch, results, strict=True):
            if job.future.done():  # its client went away
                continue
            if isinstance(result, BaseException):
                job.future.set_exception(result)
            else:
                self.metrics.prompt_tokens.inc(result.prompt_tokens)
                self.metrics.generated_tokens.inc(result.generated_tokens)
                job.future.set_result(result)

    def _generate(self, batch: list[Job]) -> list[Prediction | BaseException]:
        """Runs on the generation thread. A request that cannot run fails alone, not its batch."""
        try:
            return list(self._predict(batch))
        except ValueError as exc:
            if len(batch) == 1:
                return [exc]
            return [self._generate([job])[0] for job in batch]
        except Exception as exc:
            logger.exception("generation failed for a batch of %d requests", len(batch))
            return [exc] * len(batch)

    def _predict(self, batch: list[Job]) -> list[Prediction]:
        sinks = [job.on_token for job in batch]
        streamer = _RowStreamer(sinks, self._stop_ids) if any(sinks) else None
        return self.predictor.predict(
            [job.request for job in batch], generation=batch[0].options, streamer=streamer
        )
