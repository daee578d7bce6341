"""The Predictor on a tiny model: batching changes nothing, image order matters, long prompts fail loudly."""

from __future__ import annotations

import itertools
import json
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from univg.core.boxes import CoordSystem
from univg.data.images import load_image
from univg.data.prompts import build_messages
from univg.inference.predictor import GenerationOptions, Predictor, PromptTooLongError, Request, read_answer
from univg.models.loading import LoadedModel, load_model_and_processor
from univg.models.tiny import TinySpec, build_tiny_model

SMALL = 112 * 112  # 16 image tokens per image: fast, and what the tiny model trains at
SHORT = GenerationOptions(max_new_tokens=12)


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """Noise images of different sizes (so each has its own token count), saved as files."""
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    paths = []
    for i, (w, h) in enumerate([(112, 112), (168, 112), (112, 224), (200, 150), (90, 300)]):
        path = folder / f"img{i}.png"
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)
        paths.append(str(path))
    return paths


@pytest.fixture(scope="module")
def predictor(tiny_varied_model_dir):
    loaded = load_model_and_processor(tiny_varied_model_dir, max_pixels=SMALL)
    return Predictor(loaded, batch_size=4, generation=SHORT)


def _requests(images):
    questions = ["Find the red circle.", "Where is the dog?", "Locate the square in the second image."]
    return [
        Request(
            question=questions[i % 3],
            images=[images[i % 5]] if i % 2 else [images[i % 5], images[(i + 2) % 5]],
        )
        for i in range(7)
    ]


def test_batched_greedy_equals_one_by_one(predictor, images):
    requests = _requests(images)
    batched = predictor.predict(requests)
    single = [predictor.predict_one(r) for r in requests]
    assert [p.text for p in batched] == [p.text for p in single]
    assert [p.prompt_tokens for p in batched] == [p.prompt_tokens for p in single]
    assert len({p.text for p in batched}) > 1  # the model does answer differently: equality means something
    assert sorted(p.timing.batch_size for p in batched) == [3, 3, 3, 4, 4, 4, 4]
    assert all(p.generated_tokens <= SHORT.max_new_tokens for p in batched)


@pytest.mark.parametrize(
    "generation",
    [SHORT, GenerationOptions(max_new_tokens=12, do_sample=True, temperature=0.8, top_p=0.9, seed=5)],
    ids=["greedy", "sampled"],
)
def test_the_fast_decoding_loop_answers_as_generate_does(predictor, images, generation):
    requests = _requests(images)
    fast = predictor.predict(requests, generation=generation)
    slow = Predictor(
        LoadedModel(predictor.model, predictor.processor, predictor.coords),
        batch_size=4,
        fast_decode=False,
    ).predict(requests, generation=generation)
    assert predictor.fast_decode
    assert [p.text for p in fast] == [p.text for p in slow]
    assert len({p.text for p in fast}) > 1


class PromptPadding:
    """The attention masks of each `generate` call's prompt (a forward pre-hook on the model)."""

    def __init__(self, model) -> None:
        self.masks: list[list[int]] = []
        self.handle = model.register_forward_pre_hook(self._record, with_kwargs=True)

    def _record(self, module, args, kwargs) -> None:
        cache = kwargs.get("cache")
        if cache is None or cache.get_seq_length() == 0:  # the prefill, not a decoding step
            mask = kwargs.get("attention_mask")  # None when no row is padded
            ids = kwargs["input_ids"]
            self.masks.append([ids.size(1)] * ids.size(0) if mask is None else mask.sum(dim=1).tolist())

    def padding(self) -> int:
        return sum(max(lengths) * len(lengths) - sum(lengths) for lengths in self.masks)


def test_length_sorted_batches_pad_less_and_answer_the_same(tiny_varied_model_dir, images):
    loaded = load_model_and_processor(tiny_varied_model_dir, max_pixels=SMALL)
    requests = _requests(images)
    results, padding, lengths = {}, {}, {}
    for window in (1, 8):
        predictor = Predictor(loaded, batch_size=2, generation=SHORT, length_sort_window=window)
        recorder = PromptPadding(loaded.model)
        results[window] = predictor.predict(requests)
        recorder.handle.remove()
        padding[window], lengths[window] = recorder.padding(), recorder.masks
    assert [p.text for p in results[8]] == [p.text for p in results[1]]
    assert [p.id for p in results[8]] == [p.id for p in results[1]]
    assert padding[8] < padding[1]
    batches = lengths[8]  # shortest prompts first: each batch's longest is at most the next one's shortest
    assert all(max(a) <= min(b) for a, b in itertools.pairwise(batches))
    assert sorted(x for b in batches for x in b) == sorted(x for b in lengths[1] for x in b)


def accelerator_holding(model, rows: int):
    """A hook on the real model that raises what CUDA raises when a forward has more than `rows` rows."""

    def check(module, args, kwargs) -> None:
        if kwargs["input_ids"].size(0) > rows:
            raise torch.OutOfMemoryError(f"CUDA out of memory (this test holds {rows} rows)")

    return model.register_forward_pre_hook(check, with_kwargs=True)


def test_a_batch_that_runs_out_of_memory_is_split_and_answers_the_same(tiny_varied_model_dir, images):
    loaded = load_model_and_processor(tiny_varied_model_dir, max_pixels=SMALL)
    requests = _requests(images)
    single = [p.text for p in Predictor(loaded, batch_size=1, generation=SHORT).predict(requests)]
    predictor = Predictor(loaded, batch_size=8, generation=SHORT)
    handle = accelerator_holding(loaded.model, 2)
    try:
        split = predictor.predict(requests)
    finally:
        handle.remove()
    assert [p.text for p in split] == single
    assert predictor.batch_size == 2 and max(p.timing.batch_size for p in split) == 2


def test_a_single_request_that_runs_out_of_memory_raises(tiny_varied_model_dir, images):
    loaded = load_model_and_processor(tiny_varied_model_dir, max_pixels=SMALL)
    handle = accelerator_holding(loaded.model, 0)
    try:
        with pytest.raises(torch.OutOfMemoryError):
            Predictor(loaded, batch_size=4, generation=SHORT).predict(_requests(images)[:3])
    finally:
        handle.remove()


def test_a_length_sort_window_below_one_is_refused(tiny_varied_model_dir):
    loaded = load_model_and_processor(tiny_varied_model_dir, max_pixels=SMALL)
    with pytest.raises(ValueError, match="length_sort_window must be at least 1"):
        Predictor(loaded, length_sort_window=0)


def test_results_follow_request_order_and_ids(predictor, images):
    requests = [Request(question="Find it.", images=[images[i]], id=f"r{i}") for i in range(5)]
    predictions = predictor.predict(requests)
    assert [p.id for p in predictions] == ["r0", "r1", "r2", "r3", "r4"]
    assert [p.images for p in predictions] == [[images[i]] for i in range(5)]


def test_image_order_reaches_the_model(predictor, images):
    a, b = images[0], images[3]
    forward = Request(question="Which image shows more red?", images=[a, b])
    backward = Request(question="Which image shows more red?", images=[b, a])
    first, second, again = predictor.predict([forward, backward, forward])
    assert first.text == again.text
    assert first.text != second.text
    assert first.images == [a, b] and second.images == [b, a]
    assert first.image_sizes == [(112, 112), (200, 150)]


def test_pixels_go_to_the_model_in_request_order(predictor, images):
    """Within a batch, every request's images are passed in order, request after request."""
    requests = [
        Request(question="q", images=[images[1], images[2]]),
        Request(question="q", images=[images[4]]),
    ]
    inputs = predictor.encode(requests)
    sizes = [load_image(p, max_pixels=SMALL).resized_size for p in (images[1], images[2], images[4])]
    assert inputs["image_grid_thw"].tolist() == [[1, h // 14, w // 14] for w, h in sizes]
    assert inputs["attention_mask"][1, 0] == 0  # the shorter prompt is padded on the left
    assert inputs["attention_mask"][:, -1].tolist() == [1, 1]


def test_too_long_prompt_is_a_clear_error_before_generation(tmp_path, images):
    short_context = build_tiny_model(tmp_path / "short", spec=TinySpec(max_position_embeddings=192))
    predictor = Predictor(load_model_and_processor(short_context, max_pixels=SMALL), generation=SHORT)
    assert predictor.predict([Request(question="Find it.", images=[images[0]])])[0].prompt_tokens < 192

    ten_images = Request(question="Find it.", images=images * 2, id="many")
    with pytest.raises(
        PromptTooLongError, match=r"request many: the prompt needs \d+ tokens \(\d+ of them for 10 images"
    ):
        predictor.predict([ten_images])

    one_image = Request(question="Find it.", images=[images[0]])
    with pytest.raises(PromptTooLongError, match="context is 192 tokens"):
        predictor.predict([one_image], generation=GenerationOptions(max_new_tokens=100))


def test_a_trained_checkpoints_saved_max_length_raises_no_tokenizer_warning(tmp_path, images):
    """A checkpoint saved by the trainers keeps the collator's max_length in tokenizer_config.json."""
    model_dir = build_tiny_model(tmp_path / "trained")
    config_file = model_dir / "tokenizer_config.json"
    config_file.write_text(json.dumps({**json.loads(config_file.read_text()), "max_length": 1024}))
    predictor = Predictor(load_model_and_processor(model_dir, max_pixels=SMALL), generation=SHORT)
    requests = [Request(question="Find it.", images=[images[0]]), Request(question="Go.", images=[images[1]])]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(predictor.predict(requests)) == 2


def test_video_frames_become_the_images(predictor, tmp_path):
    rng = np.random.default_rng(1)
    for i in range(10):
        Image.fromarray(rng.integers(0, 256, (84, 112, 3), dtype=np.uint8)).save(tmp_path / f"frame{i}.png")
    prediction = predictor.predict_one(Request(question="Track the ball.", video=tmp_path, num_frames=4))
    assert prediction.frame_indices == [0, 3, 6, 9]
    assert len(prediction.images) == 4
    assert prediction.images[1].endswith("frame3.png")


def test_sampling_is_reproducible_with_a_seed(predictor, images):
    request = Request(question="Find it.", images=[images[0]])
    sampled = GenerationOptions(max_new_tokens=12, do_sample=True, temperature=1.5, seed=7)
    assert (
        predictor.predict_one(request, generation=sampled).text
        == predictor.predict_one(request, generation=sampled).text
    )
    other = GenerationOptions(max_new_tokens=12, do_sample=True, temperature=1.5, seed=8)
    assert (
        predictor.predict_one(request, generation=sampled).text
        != predictor.predict_one(request, generation=other).text
    )


@pytest.mark.parametrize(
    ("request_", "reason"),
    [
        (Request(question="Find it."), "no images and no video"),
        (Request(question="  ", images=["x.png"]), "empty question"),
        (Request(question="Find it.", images=["x.png"], video="clip.mp4"), "not both"),
        (
            Request(question="", images=["x.png"], messages=build_messages(2, "Find it.")),
            "2 image placeholders",
        ),
        (Request(question="", video="clip.mp4", messages=build_messages(0, "Find it.")), "not a video"),
    ],
)
def test_invalid_requests_are_refused(predictor, request_, reason):
    with pytest.raises(ValueError, match=reason):
        predictor.predict([request_])


def test_a_chat_request_is_the_prompt_it_gives(predictor, images):
    """`messages` (what a server receives) reaches the model as given, equal to the same prompt built."""
    built = Request(question="Where is the dog?", images=[images[0], images[3]])
    chat = Request(
        question="", images=[images[0], images[3]], messages=build_messages(2, "Where is the dog?")
    )
    with_system = Request(
        question="",
        images=[images[0], images[3]],
        messages=[
            {"role": "system", "content": [{"type": "text", "text": "Answer in French."}]},
            *build_messages(2, "Where is the dog?"),
        ],
    )
    first, second, third = predictor.predict([built, chat, with_system])
    assert first.text == second.text and first.prompt_tokens == second.prompt_tokens
    assert third.prompt_tokens != first.prompt_tokens and third.text != first.text


def test_request_style_overrides_the_predictor_style(predictor, images):
    same_model = LoadedModel(predictor.model, predictor.processor, predictor.coords)
    plain = Predictor(same_model, style="plain", generation=SHORT)
    request = Request(question="Where is the dog?", images=[images[1]])
    overridden = Request(question="Where is the dog?", images=[images[1]], style="plain")
    answer = predictor.predict_one(overridden)
    assert answer.text == plain.predict_one(request).text
    assert answer.prompt_tokens < predictor.predict_one(request).prompt_tokens


def test_text_only_chat_batches_with_image_requests(predictor, images):
    text_only = Request(
        question="", messages=[{"role": "user", "content": [{"type": "text", "text": "Hello."}]}]
    )
    with_image = Request(question="Find it.", images=[images[2]])
    batched = predictor.predict([text_only, with_image])
    assert [p.text for p in batched] == [
        predictor.predict_one(text_only).text,
        predictor.predict_one(with_image).text,
    ]
    assert batched[0].images == [] and batched[0].box is None


class _Recorder:
    """A streamer keeping what generate() hands over: the prompts, then one row of tokens per step."""

    def __init__(self) -> None:
        self.steps: list[list[int]] = []
        self.prompts = None

    def put(self, value) -> None:
        if self.prompts is None:
            self.prompts = value
        else:
            self.steps.append(value.reshape(-1).tolist())

    def end(self) -> None:
        pass


def test_a_streamer_sees_each_step_of_the_batch(predictor, images):
    requests = [
        Request(question="Find it.", images=[images[0]]),
        Request(question="Where?", images=[images[4]]),
    ]
    recorder = _Recorder()
    predictions = predictor.predict(requests, streamer=recorder)
    tokenizer = predictor.processor.tokenizer
    for row, prediction in enumerate(predictions):
        streamed = [step[row] for step in recorder.steps][: prediction.generated_tokens]
        assert tokenizer.decode(streamed, skip_special_tokens=False) == prediction.text
    assert recorder.prompts.shape[0] == 2
    with pytest.raises(ValueError, match="one batch"):
        predictor.predict(requests * 3, streamer=_Recorder())


def test_prediction_is_json_serialisable(predictor, images):
    record = json.loads(
        json.dumps(predictor.predict_one(Request(question="Find it.", images=[images[0]])).to_json())
    )
    assert set(record) >= {
        "text",
        "box",
        "box_pixels",
        "target_image",
        "named_image",
        "timing",
        "prompt_tokens",
    }
    assert record["timing"]["total_s"] > 0


def _loaded(*sizes):
    return [load_image(Image.new("RGB", size), max_pixels=SMALL) for size in sizes]


def test_read_answer_qwen2vl_box_in_the_named_image():
    images = _loaded((200, 100), (100, 300))
    text = (
        "<think>It is the tall one.</think><answer>It's in the second image. (100, 200), (500, 1000)</answer>"
    )
    raw, box, pixels, target, named = read_answer(text, images, CoordSystem.QWEN2VL)
    assert raw == (100, 200, 500, 1000)
    assert box == pytest.approx((0.1, 0.2, 0.5, 1.0))
    assert (target, named) == (1, 1)
    assert pixels == pytest.approx((10, 60, 50, 300))  # the second image's original 100x300 pixels


def test_read_answer_qwen25_pixels_refer_to_the_resized_target():
    images = _loaded((200, 100), (100, 300))
    width, height = images[0].resized_size
    text = f"<answer>In the first image: ({width // 2}, 0), ({width}, {height})</answer>"
    _, box, pixels, target, _ = read_answer(text, images, CoordSystem.PIXELS)
    assert target == 0
    assert box == pytest.approx((0.5, 0.0, 1.0, 1.0))
    assert pixels == pytest.approx((100, 0, 200, 100))


def test_read_answer_unknown_target_among_several_images():
    images = _loaded((200, 100), (100, 300))
    raw, box, pixels, target, named = read_answer(
        "<answer>(10, 20), (30, 40)</answer>", images, CoordSystem.PIXELS
    )
    assert raw == (10, 20, 30, 40)
    assert (box, pixels, target, named) == (None, None, None, None)
    _, qwen2_box, qwen2_pixels, _, _ = read_answer(
        "<answer>(10, 20), (30, 40)</answer>", images, CoordSystem.QWEN2VL
    )
    assert qwen2_box == pytest.approx((0.01, 0.02, 0.03, 0.04))
    assert qwen2_pixels is None


def test_read_answer_single_image_needs_no_name_but_a_wrong_one_leaves_the_box_unplaced():
    """The scorer's image check fails the same answer: the box is in no image the request has."""
    images = _loaded((200, 100))
    _, _, pixels, target, named = read_answer(
        "<answer>(0, 0), (500, 500)</answer>", images, CoordSystem.QWEN2VL
    )
    assert (target, named) == (0, None)
    assert pixels == pytest.approx((0, 0, 100, 50))
    _, box, pixels, target, named = read_answer(
        "<answer>third image (0, 0), (500, 500)</answer>", images, CoordSystem.QWEN2VL
    )
    assert (target, named, pixels) == (None, 2, None)
    assert box == pytest.approx((0.0, 0.0, 0.5, 0.5))


def test_qwen25_models_predict_through_the_same_path(tmp_path, images):
    path = build_tiny_model(tmp_path / "q25", family="qwen2_5_vl", spec=TinySpec(initializer_range=0.1))
    predictor = Predictor(load_model_and_processor(path, max_pixels=SMALL), batch_size=2, generation=SHORT)
    assert predictor.coords is CoordSystem.PIXELS
    requests = [
        Request(question="Find it.", images=[images[0], images[1]]),
        Request(question="Go.", images=[images[2]]),
    ]
    batched = predictor.predict(requests)
    assert [p.text for p in batched] == [predictor.predict_one(r).text for r in requests]


def test_from_pretrained_splits_predictor_options_from_loading_options(
    tiny_varied_model_dir, predictor, images
):
    loaded = Predictor.from_pretrained(
        str(tiny_varied_model_dir), batch_size=3, generation=SHORT, max_pixels=SMALL, dtype="float32"
    )
    assert (loaded.batch_size, loaded.max_pixels, loaded.parse_mode) == (3, SMALL, "answer")
    request = _requests(images)[0]
    assert loaded.predict_one(request).text == predictor.predict_one(request).text
