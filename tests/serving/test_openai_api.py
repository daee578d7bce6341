"""The official `openai` client against `univg serve`: answers, streaming, usage, models, errors."""

from __future__ import annotations

import httpx
import openai
import pytest
from servers import chat_body, data_url, noise_png

from univg.data.images import decode_image_bytes
from univg.data.prompts import build_messages
from univg.inference.predictor import GenerationOptions, Request


@pytest.fixture(scope="module")
def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.openai_url, api_key="unused", max_retries=0)


def _content(
    client: openai.OpenAI, text: str, *images: bytes, **settings
) -> openai.types.chat.ChatCompletion:
    body = chat_body(text, *images, **settings)
    return client.chat.completions.create(model=body.pop("model"), **body)


def _local(server, text: str, *images: bytes, max_tokens: int) -> str:
    """What the predictor behind the server answers to the same chat, called directly."""
    request = Request(
        question="",
        images=[decode_image_bytes(image, name=f"image {i}") for i, image in enumerate(images)],
        messages=build_messages(len(images), text, style="plain"),
    )
    return server.predictor.predict_one(request, generation=GenerationOptions(max_new_tokens=max_tokens)).text


@pytest.mark.parametrize("count", [1, 3])
def test_round_trip_with_one_and_several_images(server, client, count):
    images = [noise_png(112 + 28 * i, 112, seed=i) for i in range(count)]
    completion = _content(client, "Where is the red circle?", *images, max_tokens=12)
    text = completion.choices[0].message.content
    assert completion.object == "chat.completion" and completion.model == "tiny"
    assert text == _local(server, "Where is the red circle?", *images, max_tokens=12)
    assert completion.usage.completion_tokens <= 12
    assert (
        completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens
    )
    assert completion.choices[0].finish_reason in ("stop", "length")


def test_image_order_and_text_reach_the_model(client):
    a, b = noise_png(seed=1), noise_png(seed=2)
    answers = {
        "ab": _content(client, "Which one?", a, b, max_tokens=10).choices[0].message.content,
        "ba": _content(client, "Which one?", b, a, max_tokens=10).choices[0].message.content,
        "other text": _content(client, "Where is the dog?", a, b, max_tokens=10).choices[0].message.content,
    }
    assert len(set(answers.values())) == 3


def test_streaming_gives_the_same_text_and_usage(client):
    image = noise_png(seed=5)
    whole = _content(client, "Find it.", image, max_tokens=16)
    body = chat_body("Find it.", image, max_tokens=16)
    chunks = list(
        client.chat.completions.create(
            model="tiny",
            messages=body["messages"],
            max_tokens=16,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert all(chunk.object == "chat.completion.chunk" for chunk in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert text == whole.choices[0].message.content
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 1  # streamed, not one lump
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == [whole.choices[0].finish_reason]
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens


def test_the_raw_stream_is_server_sent_events_ending_in_done(server):
    body = chat_body("Find it.", noise_png(seed=6), max_tokens=6, stream=True)
    with httpx.stream("POST", server.url + "/v1/chat/completions", json=body, timeout=30) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [line for line in response.iter_lines() if line]
    assert all(event.startswith("data: ") for event in events)
    assert events[-1] == "data: [DONE]"


def test_system_turns_and_history_are_part_of_the_prompt(client):
    image = noise_png(seed=3)
    plain = chat_body("Find it.", image, max_tokens=10)
    with_history = [
        {"role": "system", "content": "You ground objects."},
        *plain["messages"],
        {"role": "assistant", "content": "<|box_start|>(1, 2), (3, 4)<|box_end|>"},
        {"role": "user", "content": "Again, in the same image."},
    ]
    first = client.chat.completions.create(model="tiny", messages=plain["messages"], max_tokens=10)
    second = client.chat.completions.create(model="tiny", messages=with_history, max_tokens=10)
    assert second.usage.prompt_tokens > first.usage.prompt_tokens


def test_sampling_with_a_seed_is_reproducible(client):
    image = noise_png(seed=4)
    settings = {"max_tokens": 12, "temperature": 1.5, "seed": 11}
    first = _content(client, "Find it.", image, **settings).choices[0].message.content
    again = _content(client, "Find it.", image, **settings).choices[0].message.content
    other = _content(client, "Find it.", image, **{**settings, "seed": 12}).choices[0].message.content
    assert first == again != other


def test_models_and_unknown_model(client):
    assert [model.id for model in client.models.list()] == ["tiny"]
    with pytest.raises(openai.NotFoundError, match="serves the model 'tiny' only"):
        _content(client, "Find it.", noise_png(), model="gpt-4o")


def test_a_bad_request_is_an_openai_error_with_a_message(client):
    with pytest.raises(openai.BadRequestError, match="at most 64"):
        _content(client, "Find it.", noise_png(), max_tokens=10_000)
    with pytest.raises(openai.BadRequestError, match="'stop' is not supported"):
        _content(client, "Find it.", noise_png(), stop=["\n"])


def test_a_text_only_chat_is_answered(client):
    completion = client.chat.completions.create(
        model="tiny", messages=[{"role": "user", "content": "Hello."}], max_tokens=5
    )
    assert completion.usage.completion_tokens <= 5 and completion.choices[0].message.content is not None


def test_data_urls_of_any_accepted_format(client):
    from io import BytesIO

    from PIL import Image

    buffer = BytesIO()
    Image.open(BytesIO(noise_png(seed=9))).save(buffer, format="JPEG")
    url = data_url(buffer.getvalue(), "image/jpeg")
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": url}},
                {"type": "text", "text": "Find it."},
            ],
        }
    ]
    assert (
        client.chat.completions.create(model="tiny", messages=messages, max_tokens=4)
        .choices[0]
        .message.content
        is not None
    )
