"""Serving throughput: `univg serve` batching up to B requests vs one at a time, on the tiny model, in one run.

Same tiny Qwen2-VL (random weights that answer differently per prompt), the same N chat requests
(one noise image each) sent by C concurrent clients over loopback HTTP; the two settings alternate
round by round so machine load hits both alike. Checks that both give identical answers (greedy),
then prints requests/s, generated tokens/s and the mean batch size, and the ratio.

    python benchmarks/serve_throughput.py [--n 256] [--concurrency 32] [--max-batch 16] [--max-tokens 16]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import statistics
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import torch
from PIL import Image

from univg.inference.predictor import Predictor
from univg.models.loading import load_model_and_processor
from univg.models.tiny import TinySpec, build_tiny_model
from univg.serving.app import create_app, serve_in_background
from univg.serving.config import Limits, ServeConfig

SMALL = 112 * 112


def bodies(n: int, max_tokens: int) -> list[dict]:
    rng = np.random.default_rng(0)
    requests = []
    for i in range(n):
        buffer = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (112, 84 + 28 * (i % 2), 3), dtype=np.uint8)).save(buffer, "PNG")
        url = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
        content = [
            {"type": "image_url", "image_url": {"url": url}},
            {"type": "text", "text": f"Find object {i}."},
        ]
        requests.append(
            {"model": "tiny", "messages": [{"role": "user", "content": content}], "max_tokens": max_tokens}
        )
    return requests


async def send(url: str, requests: list[dict], concurrency: int) -> list[dict]:
    limit = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=600) as client:

        async def post(body: dict) -> dict:
            async with limit:
                response = await client.post("/v1/chat/completions", json=body)
                response.raise_for_status()
                return response.json()

        return await asyncio.gather(*(post(body) for body in requests))


def batch_mean(url: str) -> float:
    lines = httpx.get(url + "/metrics").text.splitlines()
    value = {
        line.split()[0]: float(line.split()[1]) for line in lines if line.startswith("univg_batch_size_")
    }
    return value["univg_batch_size_sum"] / value["univg_batch_size_count"]


def one_run(
    predictor: Predictor, max_batch: int, requests: list[dict], concurrency: int
) -> tuple[float, float, float, list[str]]:
    predictor.batch_size = max_batch
    limits = Limits(max_tokens=max(256, requests[0]["max_tokens"]))
    config = ServeConfig(
        model_name="tiny", max_batch=max_batch, max_queue=max(64, concurrency), limits=limits
    )
    with serve_in_background(create_app(predictor, config)) as url:
        started = time.perf_counter()
        replies = asyncio.run(send(url, requests, concurrency))
        seconds = time.perf_counter() - started
        mean = batch_mean(url)
    tokens = sum(reply["usage"]["completion_tokens"] for reply in replies)
    texts = [reply["choices"][0]["message"]["content"] for reply in replies]
    return len(replies) / seconds, tokens / seconds, mean, texts


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=256, help="requests per run (default: %(default)s)")
    parser.add_argument(
        "--concurrency", type=int, default=32, help="concurrent clients (default: %(default)s)"
    )
    parser.add_argument("--max-batch", type=int, default=16, help="batched setting (default: %(default)s)")
    parser.add_argument("--max-tokens", type=int, default=16, help="default: %(default)s")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default: %(default)s)")
    parser.add_argument("--out", help="also write the numbers to this JSON file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        model = build_tiny_model(Path(tmp) / "tiny", spec=TinySpec(initializer_range=0.1), seed=0)
        predictor = Predictor(load_model_and_processor(model, max_pixels=SMALL), batch_size=args.max_batch)
        requests = bodies(args.n, args.max_tokens)
        one_run(predictor, args.max_batch, requests[:16], 8)  # first-call costs out of the way
        runs: dict[int, list[tuple[float, float, float]]] = {1: [], args.max_batch: []}
        answers: dict[int, list[str]] = {}
        for _ in range(args.rounds):
            for max_batch in runs:
                rps, tps, mean, texts = one_run(predictor, max_batch, requests, args.concurrency)
                runs[max_batch].append((rps, tps, mean))
                answers[max_batch] = texts

    same = answers[1] == answers[args.max_batch]
    table = {b: tuple(statistics.median(r[i] for r in rs) for i in range(3)) for b, rs in runs.items()}
    print(
        f"{args.n} requests, {args.concurrency} clients, max_tokens {args.max_tokens}, torch threads {args.threads}"
    )
    print(f"{'max batch':>9}  {'requests/s':>10}  {'tokens/s':>9}  {'mean batch':>10}")
    for max_batch, (rps, tps, mean) in table.items():
        print(f"{max_batch:>9}  {rps:>10.1f}  {tps:>9.1f}  {mean:>10.2f}")
    ratio = table[args.max_batch][0] / table[1][0]
    print(f"batched / one at a time: {ratio:.2f}x requests/s; identical answers: {same}")
    if args.out:
        record = {
            "settings": vars(args),
            "median": {str(b): t for b, t in table.items()},
            "ratio": ratio,
            "identical": same,
        }
        Path(args.out).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
