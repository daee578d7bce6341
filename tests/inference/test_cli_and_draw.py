"""`univg predict` prints what the Predictor answers; drawing puts the box where the pixels say."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from univg.cli.main import main
from univg.core.boxes import CoordSystem
from univg.data.images import load_image
from univg.inference.draw import draw_prediction
from univg.inference.predictor import GenerationOptions, Prediction, Predictor, Request, Timing, read_answer
from univg.models.loading import load_model_and_processor

SMALL = 112 * 112


@pytest.fixture(scope="module")
def two_images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    rng = np.random.default_rng(3)
    paths = []
    for name, (w, h) in (("a.png", (160, 120)), ("b.jpg", (120, 200))):
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(folder / name)
        paths.append(str(folder / name))
    return paths


def test_cli_json_is_the_predictors_answer(tiny_varied_model_dir, two_images, capsys):
    question = "Find the brightest spot in the second image."
    args = ["predict", "--model", str(tiny_varied_model_dir), "--question", question, "--json"]
    args += [
        "--image",
        two_images[0],
        "--image",
        two_images[1],
        "--max-new-tokens",
        "10",
        "--max-pixels",
        str(SMALL),
    ]
    assert main(args) == 0
    record = json.loads(capsys.readouterr().out)

    predictor = Predictor(
        load_model_and_processor(tiny_varied_model_dir, max_pixels=SMALL), generation=GenerationOptions(10)
    )
    expected = predictor.predict_one(Request(question=question, images=two_images))
    assert record["text"] == expected.text
    assert record["images"] == two_images
    assert record["image_sizes"] == [[160, 120], [120, 200]]


def test_cli_plain_output_and_draw_without_a_box(tiny_model_dir, two_images, tmp_path, capsys):
    out = tmp_path / "drawn.png"
    args = ["predict", "--model", str(tiny_model_dir), "--image", two_images[0], "--question", "Find it."]
    assert main([*args, "--max-new-tokens", "4", "--max-pixels", str(SMALL), "--draw", str(out)]) == 0
    captured = capsys.readouterr()
    assert "box: none found in the answer" in captured.out
    assert "not drawn" in captured.err
    assert not out.exists()


def test_cli_reports_a_wrong_model_path(tmp_path, two_images, capsys):
    assert (
        main(["predict", "--model", str(tmp_path / "nope"), "--image", two_images[0], "--question", "q"]) == 1
    )
    assert "does not exist" in capsys.readouterr().err


def test_cli_needs_images_or_a_video(tiny_model_dir):
    with pytest.raises(SystemExit):
        main(["predict", "--model", str(tiny_model_dir), "--question", "q"])


def _prediction(text: str, paths: list[str]) -> Prediction:
    images = [load_image(p, max_pixels=SMALL) for p in paths]
    return Prediction(
        id=None,
        text=text,
        **read_answer(text, images, CoordSystem.QWEN2VL)._asdict(),
        format_ok=False,
        images=paths,
        image_sizes=[img.original_size for img in images],
        frame_indices=None,
        prompt_tokens=0,
        generated_tokens=0,
        timing=Timing(1, 0.0, 0.0),
    )


def test_draw_puts_the_box_on_the_named_image_in_original_pixels(tmp_path):
    paths = []
    for name, size in (("first.png", (200, 100)), ("second.png", (100, 300))):
        Image.new("RGB", size, "white").save(tmp_path / name)
        paths.append(str(tmp_path / name))
    prediction = _prediction("<answer>second image (250, 250), (750, 500)</answer>", paths)
    drawn = Image.open(draw_prediction(prediction, tmp_path / "out" / "drawn.png")).convert("RGB")
    assert drawn.size == (100, 300)
    assert drawn.getpixel((25, 75)) == (255, 0, 0)  # the box's top-left corner, in the original pixels
    assert drawn.getpixel((50, 110)) == (255, 255, 255)  # inside the box is untouched


def test_draw_refuses_when_there_is_nothing_to_draw(tmp_path, two_images):
    with pytest.raises(ValueError, match="no box"):
        draw_prediction(_prediction("<answer>(1, 2), (3, 4)</answer>", two_images), tmp_path / "x.png")
