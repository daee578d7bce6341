"""Every format on hand-written records: what valid records become, and exactly what is wrong with the rest.

Generated images are 640x480, so the pixel box [64, 48, 320, 240] is (0.1, 0.1, 0.5, 0.5).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from univg.data.convert import read_samples, validate_file
from univg.data.formats import FORMAT_NAMES, get_format
from univg.data.prompts import COT_SUFFIX
from univg.data.schema import GroundingSample

QUARTER = (0.1, 0.1, 0.5, 0.5)

# format, file, problems found with the images, problems found without them (index, kind, field).
PROBLEMS = [
    (
        "mgrounding",
        "mgrounding.json",
        {
            (3, "image-tag count mismatch", "conversations"),
            (4, "malformed box", "conversations[1]"),
            (5, "multiple boxes", "conversations[1]"),
            (6, "inverted box", "conversations[1]"),
            (7, "unresolvable target image", "conversations[1]"),
            (8, "missing field", "conversations"),
            (9, "invalid record", ""),
            (10, "out-of-range box", "conversations[1]"),
        },
        None,
    ),
    (
        "univg-sft",
        "univg_sft.json",
        {(3, "malformed box", "conversations[1]"), (4, "unresolvable target image", "conversations[1]")},
        None,
    ),
    (
        "univg-rl",
        "univg_rl.json",
        {
            (2, "unresolvable target image", "question"),
            (3, "malformed box", "answer"),
            (4, "out-of-range box", "answer"),
            (5, "missing field", "answer"),
        },
        None,
    ),
    (
        "refcoco",
        "refcocog_val.jsonl",
        {
            (1, "out-of-range box", "solution"),
            (2, "invalid record", ""),
            (3, "degenerate box", "solution"),
            (3, "degenerate box", "normalized_solution"),
        },
        {
            (2, "invalid record", ""),
            (3, "degenerate box", "solution"),
            (3, "degenerate box", "normalized_solution"),
        },
    ),
    (
        "lisa",
        "lisa.json",
        {
            (1, "bad field", "boxes"),
            (2, "missing image", "image_path"),
            (3, "inverted box", "boxes[0]"),
            (4, "unreadable image", "image_path"),
        },
        {(1, "bad field", "boxes"), (3, "inverted box", "boxes[0]")},
    ),
    ("llmseg", "llmseg.json", {(2, "malformed box", "bbox")}, None),
    (
        "revos",
        "revos.json",
        {(1, "bad field", "frames"), (2, "missing image", "video_id"), (3, "malformed box", "bbox_list")},
        {(3, "malformed box", "bbox_list")},
    ),
    (
        "canonical",
        "canonical.jsonl",
        {
            (1, "unresolvable target image", "target_image"),
            (2, "inverted box", "box"),
            (3, "missing field", "question"),
            (4, "bad field", "target_image"),
            (5, "missing image", "images[0]"),
        },
        {
            (1, "unresolvable target image", "target_image"),
            (2, "inverted box", "box"),
            (3, "missing field", "question"),
            (4, "bad field", "target_image"),
        },
    ),
    (
        "reasonvos",
        "reasonvos.json",
        {(2, "unresolvable target image", "image_list"), (3, "malformed box", "bbox_list[2]")},
        None,
    ),
]


def _problems(report) -> set[tuple[int, str, str]]:
    return {(bad.index, p.kind, p.field) for bad in report.bad_records for p in bad.problems}


def test_every_format_has_a_fixture() -> None:
    assert sorted(name for name, *_ in PROBLEMS) == sorted(set(FORMAT_NAMES) - {"mig-bench"})


@pytest.mark.parametrize(("name", "file", "with_images", "without_images"), PROBLEMS)
def test_problems_are_all_found_with_kind_and_field(
    name: str,
    file: str,
    with_images: set,
    without_images: set | None,
    formats_dir: Path,
    image_root: Path,
) -> None:
    checked = validate_file(name, formats_dir / file, image_root=image_root)
    assert _problems(checked) == with_images
    assert sum(checked.problem_counts.values()) == len(with_images)
    assert checked.invalid == len({index for index, *_ in with_images})
    unchecked = validate_file(name, formats_dir / file)
    assert _problems(unchecked) == (with_images if without_images is None else without_images)
    assert not unchecked.images_checked


def _samples(name: str, path: Path, root: Path) -> dict[str, GroundingSample]:
    return {s.id: s for s in read_samples(name, path, image_root=root, relative_paths=True)}


def test_mgrounding(formats_dir: Path, image_root: Path) -> None:
    samples = _samples("mgrounding", formats_dir / "mgrounding.json", image_root)
    assert sorted(samples) == ["0-0", "1-0", "1-1", "2-0"]
    first = samples["0-0"]
    assert (first.target_image, first.task, first.box) == (2, "gg_train", (0.316, 0.058, 0.764, 0.999))
    assert first.question.startswith("Give the bounding box of the region")
    assert "<image>" not in first.question
    assert first.extra["source_id"] == "5229016_8929009_6793119_3571391"
    assert samples["1-1"].target_image == 0 and samples["1-1"].extra["turn"] == 1
    assert samples["2-0"].target_image == 1  # named by the question: "in the 2th image"
    assert first.extra["target_size"] == [640, 480]


def test_univg_sft(formats_dir: Path, image_root: Path) -> None:
    samples = _samples("univg-sft", formats_dir / "univg_sft.json", image_root)
    assert sorted(samples) == ["0-0", "1-0", "2-0"]
    cot = samples["0-0"]
    assert cot.target_image == 1 and cot.box == pytest.approx((0.1, 0.2, 0.3, 0.4))
    assert cot.cot == "The first image shows water. In the second image there is a cup on the table."
    chat = samples["1-0"]
    assert chat.question == "Find the red umbrella."  # our prompt builder adds the suffix itself
    assert COT_SUFFIX.strip() not in chat.question
    refcoco = samples["2-0"]
    assert (refcoco.task, refcoco.cot, refcoco.question) == ("refcoco", None, "the man on the left")


def test_univg_rl(formats_dir: Path, image_root: Path) -> None:
    samples = _samples("univg-rl", formats_dir / "univg_rl.json", image_root)
    assert samples["0"].target_image == 1
    assert samples["0"].box == pytest.approx((0.1, 0.2, 0.3, 0.4))
    assert samples["0"].question.startswith("These images share")
    assert samples["1"].task == "refcoco"
    assert samples["1"].box == (0.0, 0.0, 0.5, 0.5)


def test_refcoco_uses_pixels_with_images_and_normalized_solution_without(
    formats_dir: Path, image_root: Path
) -> None:
    path = formats_dir / "refcocog_val.jsonl"
    with_images = _samples("refcoco", path, image_root)
    assert sorted(with_images) == ["0", "4"]
    assert with_images["0"].box == pytest.approx(QUARTER)
    assert with_images["4"].box == pytest.approx(QUARTER)  # solution written as a string
    assert with_images["0"].task == "refcocog"  # from the file name
    without = {s.id: s for s in read_samples("refcoco", path)}
    assert sorted(without) == ["0", "1"]  # record 4 has no normalized_solution: needs the image
    assert without["1"].box == (0.1, 0.1, 1.0, 0.5)


def test_lisa_and_llmseg_use_the_official_instruction(formats_dir: Path, image_root: Path) -> None:
    lisa = _samples("lisa", formats_dir / "lisa.json", image_root)
    assert sorted(lisa) == ["0", "5"]
    assert lisa["0"].box == pytest.approx(QUARTER)
    assert lisa["0"].question == (
        "Output the bounding box in the image corresponding to the instruction: "
        "the thing you would use to cut the bread."
    )
    assert lisa["5"].extra["num_boxes"] == 2
    llmseg = _samples("llmseg", formats_dir / "llmseg.json", image_root)
    assert llmseg["0"].box == pytest.approx(QUARTER)
    assert llmseg["1"].box == pytest.approx(QUARTER) and llmseg["1"].extra["num_boxes"] == 2


def test_revos_lists_frames_from_the_video_folder(formats_dir: Path, image_root: Path) -> None:
    samples = _samples("revos", formats_dir / "revos.json", image_root)
    assert list(samples) == ["0"]
    video = samples["0"]
    assert video.images == [f"vid1/{i:05d}.jpg" for i in (0, 2, 4, 6, 8, 9)]
    assert video.frame_indices == [0, 2, 4, 6, 8, 9]
    assert video.target_image == 2 and video.box == pytest.approx(QUARTER)
    assert (
        "output the bounding box in the third image according to the instruction: the animal"
        in video.question
    )


def test_reasonvos_reads_whole_numbers(formats_dir: Path, image_root: Path) -> None:
    samples = _samples("reasonvos", formats_dir / "reasonvos.json", image_root)
    assert sorted(samples) == ["0", "1"]
    assert samples["0"].box == pytest.approx(QUARTER)
    assert samples["1"].box == pytest.approx((64.5 / 640, 0.1, 0.5, 240.5 / 480))


def test_canonical_keeps_the_record_as_it_is(formats_dir: Path, image_root: Path) -> None:
    (sample,) = read_samples(
        "canonical", formats_dir / "canonical.jsonl", image_root=image_root, relative_paths=True
    )
    assert (sample.id, sample.source, sample.cot) == ("a", "synthetic", "It is there.")
    assert sample.extra == {"difficulty": "easy", "target_size": [640, 480]}


def test_pixel_boxes_within_one_pixel_of_the_border_are_clamped(tmp_path: Path, make_image) -> None:
    make_image(tmp_path / "a.jpg")
    data = tmp_path / "lisa.json"
    data.write_text('[{"image_path": "a.jpg", "instruction": "x", "boxes": [[-0.5, 0, 640.6, 480]]}]')
    (sample,) = read_samples("lisa", data, image_root=tmp_path)
    assert sample.box == (0.0, 0.0, 1.0, 1.0)


def test_unknown_format_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown format 'coco'.*mig-bench, mgrounding"):
        get_format("coco")
