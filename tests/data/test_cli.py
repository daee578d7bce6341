"""`univg data validate` and `univg data convert`: output, --json, and exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from univg.cli.main import main


def test_validate_reports_and_exits_1(mig_bench_full: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        ["data", "validate", "--format", "mig-bench", "--input", str(mig_bench_full), "--no-progress"]
    )
    out = capsys.readouterr().out
    assert code == 1
    assert "4295 records, 4288 valid, 7 invalid" in out
    assert "inverted box      5" in out and "out-of-range box  2" in out
    assert "record 703: answer: out-of-range box: out of range (0..1): [0.502, 0.254, 0.99, 1.035]" in out


def test_validate_json(formats_dir: Path, image_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["data", "validate", "--format", "lisa", "--input", str(formats_dir / "lisa.json")]
    code = main([*args, "--image-root", str(image_root), "--json", "--no-progress"])
    report = json.loads(capsys.readouterr().out)
    assert code == 1
    assert report["problems"] == {
        "bad field": 1,
        "missing image": 1,
        "unreadable image": 1,
        "inverted box": 1,
    }
    assert [bad["index"] for bad in report["bad_records"]] == [1, 2, 3, 4]


def test_validate_exits_0_when_all_valid(tmp_path: Path, mig_bench_sample: Path) -> None:
    good = tmp_path / "good.jsonl"
    records = json.loads(mig_bench_sample.read_text())
    good.write_text("".join(json.dumps(r) + "\n" for i, r in enumerate(records) if i not in (1, 2)))
    assert main(["data", "validate", "--format", "mig-bench", "--input", str(good), "--no-progress"]) == 0


def test_convert_writes_and_refuses_to_overwrite(
    tmp_path: Path, mig_bench_sample: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "mig.jsonl"
    args = ["data", "convert", "--format", "mig-bench", "--input", str(mig_bench_sample), "--out", str(out)]
    assert main([*args, "--no-progress"]) == 1  # two malformed records were left out
    assert f"wrote 11 samples to {out}" in capsys.readouterr().out
    assert len(out.read_text().splitlines()) == 11
    assert main([*args, "--no-progress"]) == 2
    assert "exists" in capsys.readouterr().err
    assert main([*args, "--no-progress", "--force"]) == 1


def test_usage_errors_exit_2(tmp_path: Path, formats_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = [
        "data",
        "validate",
        "--format",
        "lisa",
        "--input",
        str(tmp_path / "nope.json"),
        "--no-progress",
    ]
    assert main(missing) == 2
    assert capsys.readouterr().err == f"univg data validate: {tmp_path / 'nope.json'}: not found\n"
    needs_images = ["data", "convert", "--format", "revos", "--input", str(formats_dir / "revos.json")]
    assert main([*needs_images, "--out", str(tmp_path / "o.jsonl"), "--no-progress"]) == 2
    assert "format revos gives pixel boxes or frame folders" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["data", "validate", "--format", "coco", "--input", "x"])
    assert exit_info.value.code == 2


def test_progress_goes_to_stderr(mig_bench_sample: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["data", "validate", "--format", "mig-bench", "--input", str(mig_bench_sample)])
    captured = capsys.readouterr()
    assert "reading mig-bench" in captured.err
    assert "reading mig-bench" not in captured.out
