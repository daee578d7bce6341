"""`convert_file`: writes the valid samples only, never overwrites by accident, never leaves half files."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from univg.core.errors import UsageError
from univg.data.convert import Report, convert_file, validate_file
from univg.data.schema import read_jsonl


def test_writes_valid_samples_and_reports_the_rest(
    tmp_path: Path, formats_dir: Path, image_root: Path
) -> None:
    out = tmp_path / "out" / "mg.jsonl"
    report = convert_file("mgrounding", formats_dir / "mgrounding.json", out, image_root=image_root)
    samples = list(read_jsonl(out))
    assert [s.id for s in samples] == ["0-0", "1-0", "1-1", "2-0"]
    assert report.samples == 4 and report.output == str(out)
    assert report.records == 11 and report.invalid == 8 and not report.ok
    assert all(Path(p).is_file() for s in samples for p in s.images)
    assert f"wrote 4 samples to {out}" in report.render()


def test_refuses_to_overwrite_without_force(tmp_path: Path, mig_bench_sample: Path) -> None:
    out = tmp_path / "mig.jsonl"
    out.write_text("precious\n")
    with pytest.raises(UsageError, match=r"mig\.jsonl: exists; pass 'force' to replace it"):
        convert_file("mig-bench", mig_bench_sample, out)
    assert out.read_text() == "precious\n"
    report = convert_file("mig-bench", mig_bench_sample, out, force=True)
    assert report.samples == 11 == len(list(read_jsonl(out)))


def test_pixel_formats_need_the_images(tmp_path: Path, formats_dir: Path) -> None:
    with pytest.raises(UsageError, match=r"lisa gives pixel boxes .* pass 'image_root'"):
        convert_file("lisa", formats_dir / "lisa.json", tmp_path / "lisa.jsonl")
    assert not (tmp_path / "lisa.jsonl").exists()


def test_refuses_to_write_over_its_input(tmp_path: Path, mig_bench_sample: Path) -> None:
    copy = tmp_path / "mig.json"
    copy.write_text(mig_bench_sample.read_text())
    with pytest.raises(ValueError, match="is the input file"):
        convert_file("mig-bench", copy, copy, force=True)


def test_a_broken_array_writes_nothing(tmp_path: Path, mig_bench_sample: Path) -> None:
    text = mig_bench_sample.read_text()
    broken = tmp_path / "broken.json"
    broken.write_text(text[: len(text) // 2])
    out = tmp_path / "out.jsonl"
    report = convert_file("mig-bench", broken, out)
    assert report.fatal is not None and "record 6: invalid JSON or truncated file" in report.fatal
    assert report.output is None and not report.ok
    assert not out.exists() and not list(tmp_path.glob("*.partial"))
    assert report.records > 0  # what came before the break was still checked


def test_report_json_and_listing_limit(formats_dir: Path) -> None:
    report = validate_file("mgrounding", formats_dir / "mgrounding.json", max_listed=3)
    data = json.loads(json.dumps(report.to_json()))
    assert data["records"] == 11 and data["valid"] == 3 and data["invalid"] == 8
    assert len(data["bad_records"]) == 3 and data["unlisted_bad_records"] == 5
    assert sum(data["problems"].values()) == 8  # counts stay exact past the listing limit
    assert list(data["problems"]) == [  # kinds in their documented order
        "invalid record",
        "missing field",
        "malformed box",
        "multiple boxes",
        "inverted box",
        "out-of-range box",
        "unresolvable target image",
        "image-tag count mismatch",
    ]
    assert data["bad_records"][0] == {
        "index": 3,
        "problems": [
            {
                "kind": "image-tag count mismatch",
                "field": "conversations",
                "message": "2 <image> tag(s) for 3 image(s)",
            }
        ],
    }
    assert "... and 5 more bad records not listed" in report.render()


def test_decode_images_finds_truncated_files(tmp_path: Path) -> None:
    noise = np.random.default_rng(0).integers(0, 255, (480, 640, 3), dtype=np.uint8)
    Image.fromarray(noise).save(tmp_path / "a.jpg", quality=95)
    data = tmp_path / "lisa.json"
    data.write_text('[{"image_path": "a.jpg", "instruction": "x", "boxes": [[64, 48, 320, 240]]}]')
    assert validate_file("lisa", data, image_root=tmp_path).ok
    image = tmp_path / "a.jpg"
    image.write_bytes(image.read_bytes()[:5000])
    assert validate_file("lisa", data, image_root=tmp_path).ok  # the header alone is intact
    report = validate_file("lisa", data, image_root=tmp_path, decode_images=True)
    assert [(p.kind, p.field) for p in report.bad_records[0].problems] == [("unreadable image", "image_path")]


def test_progress_reaches_the_file_size(formats_dir: Path) -> None:
    calls: list[tuple[int, int]] = []
    validate_file(
        "mgrounding",
        formats_dir / "mgrounding.json",
        progress=lambda done, total: calls.append((done, total)),
    )
    size = (formats_dir / "mgrounding.json").stat().st_size
    assert calls[-1] == (size, size)


def test_an_all_valid_file_is_ok(tmp_path: Path, mig_bench_sample: Path) -> None:
    records = json.loads(mig_bench_sample.read_text())
    good = tmp_path / "good.json"
    good.write_text(json.dumps([r for i, r in enumerate(records) if i not in (1, 2)]))
    report = validate_file("mig-bench", good)
    assert isinstance(report, Report) and report.ok and report.invalid == 0
    assert "problems:" not in report.render()


def _write_mgrounding(path: Path, count: int) -> None:
    """A MGrounding-shaped JSON array of `count` two-turn records, written one record at a time."""
    with path.open("w") as handle:
        handle.write("[\n")
        for i in range(count):
            record = {
                "id": str(i),
                "images": [f"./MGrounding-630k/Group_Grounding/SA-1B/sa_{4 * i + k}.jpg" for k in range(4)],
                "conversations": [
                    {
                        "from": "human",
                        "value": "<image>\n" * 4 + "Give the bounding box of: a statue of a man.",
                    },
                    {
                        "from": "gpt",
                        "value": "It's in the third image. <|box_start|>(316,58),(764,999)<|box_end|>",
                    },
                    {"from": "human", "value": "Recognize the target region: a woman in an orange shirt."},
                    {
                        "from": "gpt",
                        "value": "It's in the first image. <|box_start|>(408,656),(578,997)<|box_end|>",
                    },
                ],
                "type": "gg_train",
            }
            handle.write(("," if i else "") + json.dumps(record, indent=4))
        handle.write("\n]\n")


def test_validation_memory_stays_flat(tmp_path: Path) -> None:
    """6k records (5 MB): the whole pipeline holds a chunk and a record (about 1.3 MiB), never the file.

    The peak is the same for 2k or 20k records (measured: 1.3-1.5 MiB); `json.load` needs ~4x the file.
    """
    path = tmp_path / "mgrounding.json"
    _write_mgrounding(path, 6_000)
    tracemalloc.start()
    try:
        report = validate_file("mgrounding", path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (report.records, report.valid, report.samples) == (6_000, 6_000, 12_000)
    assert path.stat().st_size > 5 * 2**20
    assert peak < 2 * 2**20, f"peak {peak / 2**20:.1f} MiB"


@pytest.mark.slow
def test_validating_an_mgrounding_sized_file_in_a_subprocess(tmp_path: Path) -> None:
    """630k records (about 600 MB): the command's peak resident memory stays under 100 MB."""
    path = tmp_path / "MGrounding-630k.json"
    _write_mgrounding(path, 630_000)
    command = [
        sys.executable,
        "-m",
        "univg",
        "data",
        "validate",
        "--format",
        "mgrounding",
        "--input",
        str(path),
    ]
    result = subprocess.run([*command, "--no-progress"], capture_output=True, text=True, check=False)
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    assert result.returncode == 0, result.stderr
    assert "630000 records, 630000 valid, 0 invalid, 1260000 samples" in result.stdout
    assert peak_kib < 100 * 1024, f"peak RSS {peak_kib / 1024:.0f} MiB"
