"""/v1/ground: the model's text, the box in 0..1 and in pixels, and the image it is in."""

from __future__ import annotations

import base64

import httpx
import pytest
from servers import RED_CIRCLE, noise_png, two_scenes

from univg.core.boxes import iou

QUESTION = "Locate the red circle in the 2th image."


def _truth_pixels() -> tuple[float, ...]:
    return tuple(float(v) for v in RED_CIRCLE)


@pytest.mark.parametrize("form", ["json", "multipart"])
def test_ground_finds_the_box_in_the_named_image(demo_server, form):
    first, second = two_scenes()
    settings = {"question": QUESTION, "style": "plain", "max_tokens": 40}
    if form == "json":
        images = [
            base64.b64encode(first).decode(),
            "data:image/png;base64," + base64.b64encode(second).decode(),
        ]
        response = httpx.post(demo_server.url + "/v1/ground", json={"images": images, **settings}, timeout=60)
    else:
        files = [("images", ("a.png", first, "image/png")), ("images", ("b.png", second, "image/png"))]
        data = {key: str(value) for key, value in settings.items()}
        response = httpx.post(demo_server.url + "/v1/ground", files=files, data=data, timeout=60)
    assert response.status_code == 200, response.text
    reply = response.json()
    assert reply["model"] == "univg-demo-base"
    # The base names the target, then writes its bare box (its card: Qwen2-VL's grounded form); the question names
    # the image, so the box goes there.
    assert reply["text"].startswith("<|object_ref_start|>the red circle<|object_ref_end|>(")
    assert reply["target_image"] == 1 and reply["target_source"] == "question"
    assert reply["image_sizes"] == [[112, 112], [112, 112]]
    assert [round(v * 112, 6) for v in reply["box"]] == [round(v, 6) for v in reply["box_pixels"]]
    assert iou(reply["box_pixels"], _truth_pixels()) > 0.5  # the shipped base really finds it
    assert reply["usage"]["completion_tokens"] > 0 and reply["usage"]["prompt_tokens"] > 32
    assert reply["latency"]["total_s"] >= reply["latency"]["batch_s"] > 0 and reply["batch_size"] >= 1


def test_ground_reports_no_target_when_nothing_names_it(demo_server):
    first, second = two_scenes()
    images = [base64.b64encode(image).decode() for image in (first, second)]
    reply = httpx.post(
        demo_server.url + "/v1/ground",
        json={"images": images, "question": "Find the red circle.", "style": "plain", "max_tokens": 40},
        timeout=60,
    ).json()
    assert reply["raw_box"] is not None
    assert reply["target_image"] is None and reply["box"] is None and reply["box_pixels"] is None


def test_ground_with_one_image_and_the_reasoning_prompt(server):
    image = base64.b64encode(noise_png(168, 112, seed=8)).decode()
    reply = httpx.post(
        server.url + "/v1/ground",
        json={"images": [image], "question": "Find it.", "max_tokens": 6},
        timeout=60,
    ).json()
    plain = httpx.post(
        server.url + "/v1/ground",
        json={"images": [image], "question": "Find it.", "max_tokens": 6, "style": "plain"},
        timeout=60,
    ).json()
    # The reasoning prompt adds UniVG-R1's instruction to the question.
    assert reply["usage"]["prompt_tokens"] > plain["usage"]["prompt_tokens"]
    assert reply["image_sizes"] == [[168, 112]]
    assert reply["usage"]["completion_tokens"] <= 6
