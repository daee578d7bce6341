"""`univg predict`: ground one question in one or more images (or video frames) with a model."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from univg.cli.options import (
    add_command,
    add_loading_options,
    options_for,
    positive,
    positive_number,
    probability,
)
from univg.core.errors import UsageError

if TYPE_CHECKING:
    from univg.inference.predictor import Prediction, Request


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_command(subparsers, "predict", run)
    parser.add_argument(
        "--model", required=True, help="checkpoint directory, LoRA adapter directory or hub id"
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--image", action="append", help="an image path; repeat for several images, in order")
    source.add_argument("--video", help="a video file or a folder of frames")
    parser.add_argument(
        "--frames", type=positive, default=6, help="frames sampled from --video (default: %(default)s)"
    )
    parser.add_argument("--question", required=True, help="the grounding instruction")
    parser.add_argument(
        "--draw",
        metavar="OUT.png",
        help="draw the box on the target image and save it here (replaced if it exists)",
    )
    parser.add_argument("--json", action="store_true", help="print the whole prediction as JSON")
    parser.add_argument(
        "--plain",
        action="store_true",
        help="ask the question alone, without the UniVG-R1 reasoning instruction (for base Qwen2-VL models)",
    )
    parser.add_argument("--max-new-tokens", type=positive, default=256, help="default: %(default)s")
    parser.add_argument(
        "--sample", dest="do_sample", action="store_true", help="sample instead of greedy decoding"
    )
    parser.add_argument(
        "--temperature", type=positive_number, default=1.0, help="with --sample (default: %(default)s)"
    )
    parser.add_argument("--top-p", type=probability, default=1.0, help="with --sample (default: %(default)s)")
    parser.add_argument("--seed", type=int, help="random seed for --sample")
    add_loading_options(parser, device_map_default="load on the CPU")


def _check_request(args: argparse.Namespace) -> Request:
    """The request, checked before any model loads: the question, every image decoded, the video
    there, the drawing's target writable (fail fast: loading a 7B model takes a while)."""
    from univg.core.text import unencodable
    from univg.data.files import check_input, check_output
    from univg.data.images import load_image, load_video_frames
    from univg.inference.draw import drawing_format
    from univg.inference.predictor import Request

    if not args.question.strip():
        raise UsageError("{option} is empty", option="question")
    if (problem := unencodable(args.question)) is not None:
        raise UsageError(f"{{option}} {problem} (not valid UTF-8 text)", option="question")
    for image in args.image or ():
        load_image(check_input(image, option="image"), max_pixels=args.max_pixels)
    if args.video is not None:  # decoded once here too: an unreadable video must not wait for the model
        check_input(args.video, kind="folder" if Path(args.video).is_dir() else "file", option="video")
        load_video_frames(args.video, args.frames, max_pixels=args.max_pixels)
    if args.draw:
        drawing_format(check_output(args.draw, force=True))
    return Request(
        question=args.question, images=args.image or (), video=args.video, num_frames=args.frames, id="cli"
    )


def run(args: argparse.Namespace) -> int:
    """Ground a question in images or video frames and print the answer.

    Ground a question in one or more images (in order: 'the second image' is the second --image) or in
    frames sampled from a video, print the model's answer and the box, and optionally draw the box on the
    target image."""
    from univg.data.images import ImageLoadError
    from univg.inference.draw import NothingToDrawError, draw_prediction
    from univg.inference.predictor import GenerationOptions, Predictor
    from univg.models.loading import load_model_and_processor

    request = _check_request(args)
    generation = GenerationOptions(**options_for(GenerationOptions, args))
    predictor = Predictor(
        load_model_and_processor(args.model, **options_for(load_model_and_processor, args)),
        batch_size=1,
        generation=generation,
        style="plain" if args.plain else "univg",
    )
    prediction = predictor.predict_one(request)

    if args.json:
        print(json.dumps(prediction.to_json(), ensure_ascii=False, indent=2))
    else:
        print(prediction.text)
        print()
        print(_summary(prediction))
    if args.draw:
        try:
            path = draw_prediction(prediction, args.draw)
        except (NothingToDrawError, ImageLoadError) as exc:
            print(f"not drawn: {exc}", file=sys.stderr)
            return 0
        print(f"drew the box on {prediction.images[prediction.target_image]} -> {path}", file=sys.stderr)
    return 0


def _unplaced(prediction: Prediction) -> str:
    """Why the box is in no known image."""
    if prediction.named_image is not None:
        return f"the model names image {prediction.named_image + 1} of {len(prediction.images)}"
    return "the model did not say which image it is in"


def _summary(prediction: Prediction) -> str:
    if prediction.raw_box is None:
        return "box: none found in the answer"
    if prediction.box is None:
        return f"box: {prediction.raw_box} as written; {_unplaced(prediction)}"
    where = prediction.target_image
    image = (
        f"image {where + 1} ({prediction.images[where]})"
        if where is not None
        else f"no known image ({_unplaced(prediction)})"
    )
    lines = [f"box: {tuple(round(v, 4) for v in prediction.box)} (0..1) in {image}"]
    if prediction.box_pixels is not None:
        lines.append(f"pixels: {tuple(round(v, 1) for v in prediction.box_pixels)}")
    if prediction.frame_indices is not None and where is not None:
        lines.append(f"video frame: {prediction.frame_indices[where]}")
    lines.append(f"time: {prediction.timing.total_s:.2f}s, {prediction.generated_tokens} tokens")
    return "\n".join(lines)
