"""Requests arriving together are batched, answer as they would alone, and a full queue says 503."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import httpx
from prometheus_client.parser import text_string_to_metric_families
from servers import TEST_LIMITS, chat_body, healthy, noise_png, serving

from univg.serving.config import ServeConfig


def _metric(url: str, name: str) -> dict[tuple[str, tuple], float]:
    """Samples of one metric family from /metrics: {(sample name, labels): value}."""
    text = httpx.get(url + "/metrics", timeout=10).text
    for family in text_string_to_metric_families(text):
        if family.name == name:
            return {(s.name, tuple(sorted(s.labels.items()))): s.value for s in family.samples}
    return {}


def _batches_over_one(url: str) -> float:
    samples = _metric(url, "univg_batch_size")
    total = samples[("univg_batch_size_count", ())]
    alone = samples[("univg_batch_size_bucket", (("le", "1.0"),))]
    return total - alone


async def _post_all(url: str, bodies: list[dict], concurrency: int) -> list[httpx.Response]:
    limit = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(
        base_url=url, timeout=120, limits=httpx.Limits(max_connections=concurrency)
    ) as client:

        async def post(body: dict) -> httpx.Response:
            async with limit:
                return await client.post("/v1/chat/completions", json=body)

        return await asyncio.gather(*(post(body) for body in bodies))


def test_concurrent_requests_are_batched_and_answer_as_alone(server):
    images = [noise_png(112, 112 + 28 * (i % 3), seed=i) for i in range(8)]
    questions = ["Find the red circle.", "Where is the dog?", "Locate the square in the second image."]
    bodies = [
        chat_body(
            questions[i % 3], *([images[i]] if i % 2 else [images[i], images[(i + 3) % 8]]), max_tokens=12
        )
        for i in range(8)
    ]
    alone = [httpx.post(server.url + "/v1/chat/completions", json=body, timeout=60).json() for body in bodies]
    batched_before = _batches_over_one(server.url)
    together = asyncio.run(_post_all(server.url, bodies, concurrency=8))
    texts = [response.json()["choices"][0]["message"]["content"] for response in together]
    assert texts == [reply["choices"][0]["message"]["content"] for reply in alone]
    assert len(set(texts)) > 1  # the answers differ, so their equality means something
    assert _batches_over_one(server.url) > batched_before  # batch size > 1 seen in /metrics


def test_ground_and_chat_requests_batch_together(server):
    image = noise_png(seed=21)
    chat = chat_body("Find it.", image, max_tokens=8)
    alone = httpx.post(server.url + "/v1/chat/completions", json=chat, timeout=60).json()

    async def both() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
            ground = client.post(
                "/v1/ground",
                files=[("images", ("a.png", image, "image/png"))],
                data={"question": "Find it.", "max_tokens": "8"},
            )
            return await asyncio.gather(client.post("/v1/chat/completions", json=chat), ground)

    chat_reply, ground_reply = asyncio.run(both())
    assert chat_reply.json()["choices"][0]["message"]["content"] == alone["choices"][0]["message"]["content"]
    assert ground_reply.status_code == 200


def test_a_full_queue_answers_503_with_retry_after_and_recovers(varied_predictor):
    config = ServeConfig(model_name="tiny", max_batch=1, max_wait_ms=0, max_queue=2, limits=TEST_LIMITS)
    body = chat_body("Find it.", noise_png(seed=7), max_tokens=24)
    with serving(varied_predictor, config) as running:
        responses = asyncio.run(_post_all(running.url, [body] * 12, concurrency=12))
        statuses = Counter(response.status_code for response in responses)
        assert statuses[503] > 0 and statuses[200] >= 3 and set(statuses) <= {200, 503}
        busy = next(response for response in responses if response.status_code == 503)
        assert int(busy.headers["Retry-After"]) >= 1
        assert "queue full" in busy.json()["error"]["message"]
        assert (
            _metric(running.url, "univg_queue_rejected")[("univg_queue_rejected_total", ())] == statuses[503]
        )
        assert healthy(running.url)
        again = httpx.post(running.url + "/v1/chat/completions", json=body, timeout=60)
        assert again.status_code == 200


def test_bounded_load_has_no_server_errors(server, record_property):
    """500 requests from 32 concurrent clients: the default queue holds them, none fails."""
    images = [noise_png(56 + 28 * (i % 4), 84, seed=100 + i) for i in range(8)]
    bodies = [chat_body(f"Find object {i}.", images[i % 8], max_tokens=2) for i in range(500)]
    started = time.perf_counter()
    responses = asyncio.run(_post_all(server.url, bodies, concurrency=32))
    seconds = time.perf_counter() - started
    statuses = Counter(response.status_code for response in responses)
    assert statuses == {200: 500}, statuses
    record_property("requests_per_s", round(500 / seconds, 1))
    requests = _metric(server.url, "univg_requests")
    assert not any(labels and dict(labels)["status"].startswith("5") for (_name, labels) in requests)
    assert _metric(server.url, "univg_queue_depth")[("univg_queue_depth", ())] == 0
