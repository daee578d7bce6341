"""The offline teacher: answers over HTTP like an OpenAI server, every chain kind, a judge, real usage."""

from __future__ import annotations

import pytest

from univg.cot.prompts import PromptSet
from univg.cot.request import chat_messages, image_data_url
from univg.cot.teacher import DEFAULT_MODEL, OfflineTeacher, count_tokens
from univg.cot.verify import BOX_MISMATCH, FORMAT, LEAK, verify_response
from univg.data.schema import read_jsonl, resolve_image


@pytest.fixture(scope="module")
def samples(samples_file):
    return list(read_jsonl(samples_file))


def _request(sample, root, text=None, seed=0):
    urls = [image_data_url(resolve_image(p, root)) for p in sample.images]
    prompt = text if text is not None else PromptSet.load().chain_text(sample, "qwen2vl")
    return {"model": DEFAULT_MODEL, "messages": chat_messages("system", prompt, urls), "seed": seed}


@pytest.mark.parametrize(
    ("shares", "reason"),
    [((1, 0, 0, 0), None), ((0, 1, 0, 0), BOX_MISMATCH), ((0, 0, 1, 0), LEAK), ((0, 0, 0, 1), FORMAT)],
)
def test_each_chain_kind_meets_its_verification_outcome(samples_file, samples, shares, reason):
    teacher = OfflineTeacher(samples_file, shares=shares)
    for sample in samples[:6]:
        reply = teacher.complete(_request(sample, samples_file.parent, seed=7))["choices"][0]["message"][
            "content"
        ]
        assert verify_response(reply, sample).reason == reason, reply


def test_replies_depend_on_the_seed_only(offline_teacher, samples, samples_file):
    sample = samples[3]
    replies = {
        seed: offline_teacher.complete(_request(sample, samples_file.parent, seed=seed))["choices"][0][
            "message"
        ]["content"]
        for seed in range(12)
    }
    again = offline_teacher.complete(_request(sample, samples_file.parent, seed=5))["choices"][0]["message"][
        "content"
    ]
    assert again == replies[5] and len(set(replies.values())) > 1


def test_the_judge_picks_the_candidate_closest_to_the_truth(offline_teacher, samples, samples_file):
    sample = samples[0]
    right = f"<think>{sample.cot}</think><answer>{PromptSet.load().fields(sample, 'qwen2vl')['box']}</answer>"
    wrong = "<think>x</think><answer>(0, 0), (10, 10)</answer>"
    text = PromptSet.load().judge_text(sample, "qwen2vl", [wrong, "no box", right])
    reply = offline_teacher.complete(_request(sample, samples_file.parent, text=text))
    assert reply["choices"][0]["message"]["content"] == "Best: 3"


def test_usage_counts_text_and_qwen2vl_image_tokens(offline_teacher, samples, samples_file):
    sample = samples[1]
    request = _request(sample, samples_file.parent, text="one two three")
    usage = offline_teacher.complete(request)["usage"]
    assert usage["prompt_tokens"] == 3 + 16 * len(sample.images)  # 112 px images: 16 tokens each
    assert usage["completion_tokens"] == count_tokens(
        offline_teacher.complete(request)["choices"][0]["message"]["content"]
    )


def test_over_http_with_the_openai_client(teacher_url, samples, samples_file):
    import openai

    client = openai.OpenAI(base_url=teacher_url, api_key="none", max_retries=0)
    assert [m.id for m in client.models.list()] == [DEFAULT_MODEL]
    request = _request(samples[2], samples_file.parent, seed=1)
    completion = client.chat.completions.create(**request)
    assert completion.choices[0].message.content and completion.usage.prompt_tokens > 0
    with pytest.raises(openai.NotFoundError, match="does not exist"):
        client.chat.completions.create(**{**request, "model": "other"})
    stranger = chat_messages(
        "s", "q", [image_data_url(resolve_image(samples[0].images[0], samples_file.parent))] * 2
    )
    with pytest.raises(openai.BadRequestError, match="unknown images"):
        client.chat.completions.create(model=DEFAULT_MODEL, messages=stranger)
