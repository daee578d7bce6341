"""`univg data validate/convert` against hostile input and disk states, and a fuzz of every reader.

One bad record is named (index and field) and the good ones survive; validate and convert agree on
it; a file that cannot be read is one line on stderr; no exception but a `UnivgError` ever escapes a
reader, whatever bytes or JSON it is given.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from univg.cli.main import main
from univg.core.errors import UnivgError
from univg.data.convert import Report, read_samples
from univg.data.formats import FORMAT_NAMES, get_format


def _sample(sample_id: str, **fields: object) -> dict:
    record = {"id": sample_id, "task": "t", "source": "s", "images": ["a.png"], "question": "Find it."}
    record.update({"target_image": 0, "box": [0.1, 0.2, 0.3, 0.4]})
    record.update(fields)
    return record


def _line(record: dict) -> bytes:
    return json.dumps(record).encode() + b"\n"


# (name, the middle line between two good records, the bad record's report line)
BAD_LINES: list[tuple[str, bytes, str]] = [
    (
        "an integer past any float",
        _line(_sample("b", box=[0.1, 0.2, 0.3, 0.4])).replace(b"0.1,", b"1" + b"0" * 400 + b","),
        "record 1: box: malformed box: a number too large for a float",
    ),
    (
        "a lone surrogate",
        _line(_sample("b", question="Find \ud800 it.")),
        "record 1: question: bad field: holds a lone surrogate U+D800 at character 5",
    ),
    ("not UTF-8", b"\xff\xfe{}\n", "record 1: invalid record: line 2: not UTF-8 text"),
    (
        "nested too deep",
        b"[" * 3000 + b"]" * 3000 + b"\n",
        "record 1: invalid record: line 2: nested deeper than 256",
    ),
    (
        "two values on a line",
        _line(_sample("b"))[:-1] + b" {}\n",
        "record 1: invalid record: line 2: invalid JSON",
    ),
    ("a repeated id", _line(_sample("g")), "record 1: id: bad field: 'g' is already the id of record 0"),
    (
        "NaN in a box",
        _line(_sample("b")).replace(b"0.1,", b"NaN,"),
        "record 1: box: malformed box: not finite",
    ),
    ("a list, not an object", b"[1, 2, 3]\n", "record 1:"),
    (
        "an image path out of the root",
        _line(_sample("b", images=["../a.png"])),
        "record 1: images[0]: bad field: image path '../a.png' leads outside the image root",
    ),
]


@pytest.fixture
def image_root(tmp_path: Path) -> Path:
    Image.new("RGB", (64, 48)).save(tmp_path / "a.png")
    return tmp_path


def _args(command: str, data: Path, root: Path, *extra: str) -> list[str]:
    return ["data", command, "--format", "canonical", "--input", str(data), "--image-root", str(root), *extra]


@pytest.mark.parametrize(("name", "bad", "report"), BAD_LINES, ids=[b[0] for b in BAD_LINES])
def test_a_bad_record_is_named_the_same_by_validate_and_convert_and_the_good_ones_survive(
    image_root, capsys, name, bad, report
):
    data = image_root / "in.jsonl"
    data.write_bytes(_line(_sample("g")) + bad + _line(_sample("h")))
    assert main(_args("validate", data, image_root, "--no-progress")) == 1
    validated = capsys.readouterr().out
    assert report in validated

    out = image_root / "out.jsonl"
    assert main(_args("convert", data, image_root, "--out", str(out), "--no-progress")) == 1
    converted = capsys.readouterr().out
    assert report in converted
    assert [json.loads(line)["id"] for line in out.read_text(encoding="utf-8").splitlines()] == ["g", "h"]


# (name, whole file, exit status, what the one line on stderr or the report says)
BAD_FILES: list[tuple[str, str, bytes, int, str]] = [
    ("an empty file", "canonical", b"", 1, "holds no records"),
    ("only blank lines", "canonical", b"\n \n", 1, "holds no records"),
    ("data after the array", "mgrounding", b"[]\n[{}]", 1, "more data after the end of the JSON array"),
    ("a torn array", "mgrounding", b'[{"id": 1}, {"id"', 1, "record 1"),
    ("an array nested too deep", "mgrounding", b"[" + b"[" * 3000, 1, "nested deeper than 256"),
]


@pytest.mark.parametrize(
    ("name", "fmt", "content", "status", "message"), BAD_FILES, ids=[b[0] for b in BAD_FILES]
)
def test_a_file_that_cannot_be_read_says_so_and_writes_nothing(
    tmp_path, capsys, name, fmt, content, status, message
):
    data = tmp_path / "in.json"
    data.write_bytes(content)
    out = tmp_path / "out.jsonl"
    for command, extra in (("validate", []), ("convert", ["--out", str(out)])):
        argv = ["data", command, "--format", fmt, "--input", str(data), "--no-progress", *extra]
        assert main(argv) == status
        captured = capsys.readouterr()
        assert message in captured.out + captured.err
        assert "Traceback" not in captured.err and "internal error" not in captured.err
    assert not out.exists()
    assert {p.name for p in tmp_path.iterdir()} == {"in.json"}  # no temporary left behind


def _link(tmp_path: Path) -> Path:
    (tmp_path / "target.jsonl").write_text("keep me")
    (tmp_path / "out.jsonl").symlink_to(tmp_path / "target.jsonl")
    return tmp_path / "out.jsonl"


OUTPUTS: list[tuple[str, Callable[[Path], Path], str]] = [
    ("a symbolic link", _link, "is a symbolic link; univg does not write through or replace links"),
    ("a device", lambda _: Path(os.devnull), "/dev/null: is a device, not a file"),
    ("a folder", lambda t: t, "is a folder; expected a file path"),
    (
        "below a file",
        lambda t: t / "a.png" / "out.jsonl",
        "cannot use it as output: a part of the path is a file, not a folder",
    ),
]


@pytest.mark.parametrize(("name", "make", "message"), OUTPUTS, ids=[o[0] for o in OUTPUTS])
def test_force_never_replaces_what_is_not_a_regular_file(image_root, capsys, name, make, message):
    data = image_root / "in.jsonl"
    data.write_bytes(_line(_sample("g")))
    out = make(image_root)
    assert main(_args("convert", data, image_root, "--out", str(out), "--force", "--no-progress")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    if name == "a symbolic link":
        assert (image_root / "target.jsonl").read_text() == "keep me"


def test_an_existing_output_needs_force(image_root, capsys):
    data = image_root / "in.jsonl"
    data.write_bytes(_line(_sample("g")))
    out = image_root / "out.jsonl"
    out.write_text("old")
    assert main(_args("convert", data, image_root, "--out", str(out), "--no-progress")) == 2
    assert "out.jsonl: exists; pass --force to replace it" in capsys.readouterr().err
    assert out.read_text() == "old"


def test_a_full_disk_leaves_no_partial_output(image_root, capsys, full_disk):
    data = image_root / "in.jsonl"
    data.write_bytes(b"".join(_line(_sample(str(i))) for i in range(200)))
    before = {p.name for p in full_disk.iterdir()}
    assert (
        main(_args("convert", data, image_root, "--out", str(full_disk / "out.jsonl"), "--no-progress")) == 1
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].endswith("out.jsonl: not written: the disk is full: free some space or write elsewhere")
    assert {p.name for p in full_disk.iterdir()} == before


# The fuzz: arbitrary bytes, and arbitrary JSON in the shapes readers expect, for every format.
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
FIELD_NAMES = st.sampled_from(
    ["id", "task", "images", "image", "question", "box", "bbox", "target_image", "conversations", "from",
     "value", "problem", "solution", "sentences", "sent", "image_path", "video_path", "frames", "extra"]
)  # fmt: skip
record_like = st.dictionaries(FIELD_NAMES, json_values, max_size=8)


def _read_everything(format_name: str, path: Path) -> None:
    report = Report(format_name, str(path), images_checked=False)
    try:
        for _ in read_samples(format_name, path, report=report):
            pass
    except UnivgError:
        return  # a named, one-line problem: what a user may see


FUZZ = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
READABLE = [name for name in FORMAT_NAMES if not get_format(name).needs_images]


@FUZZ
@given(content=st.binary(max_size=300), format_name=st.sampled_from(READABLE), jsonl=st.booleans())
def test_no_exception_escapes_a_reader_given_any_bytes(tmp_path, content, format_name, jsonl):
    path = tmp_path / ("in.jsonl" if jsonl else "in.json")
    path.write_bytes(content)
    _read_everything(format_name, path)


@FUZZ
@given(
    records=st.lists(record_like | json_values, max_size=5),
    format_name=st.sampled_from(READABLE),
    jsonl=st.booleans(),
)
def test_no_exception_escapes_a_reader_given_any_json(tmp_path, records, format_name, jsonl):
    path = tmp_path / ("in.jsonl" if jsonl else "in.json")
    text = "".join(json.dumps(r) + "\n" for r in records) if jsonl else json.dumps(records)
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    _read_everything(format_name, path)


FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
REAL_FILES = {
    "mig-bench": FIXTURES / "mig_bench" / "sample.json",
    "mgrounding": FIXTURES / "formats" / "mgrounding.json",
    "univg-sft": FIXTURES / "formats" / "univg_sft.json",
    "univg-rl": FIXTURES / "formats" / "univg_rl.json",
    "refcoco": FIXTURES / "formats" / "refcocog_val.jsonl",
    "canonical": FIXTURES / "formats" / "canonical.jsonl",
}


def _parses(line: str) -> bool:
    try:
        json.loads(line)
    except ValueError:
        return False
    return True


def _records(path: Path) -> list:
    """The records of a fixture (its lines that are JSON, for a fixture that holds broken ones too)."""
    text = path.read_text(encoding="utf-8")
    if path.suffix != ".jsonl":
        return json.loads(text)
    return [json.loads(line) for line in text.splitlines() if _parses(line)]


def _replace_somewhere(value: object, choices: list[int], new: object) -> object:
    """`value` with one part (picked by `choices`) replaced by `new`."""
    if not choices or not isinstance(value, dict | list) or not value:
        return new
    if isinstance(value, dict):
        key = sorted(value)[choices[0] % len(value)]
        return {**value, key: _replace_somewhere(value[key], choices[1:], new)}
    index = choices[0] % len(value)
    return [*value[:index], _replace_somewhere(value[index], choices[1:], new), *value[index + 1 :]]


@FUZZ
@given(
    format_name=st.sampled_from(sorted(REAL_FILES)),
    choices=st.lists(st.integers(0, 50), min_size=1, max_size=5),
    new=json_values,
)
def test_no_exception_escapes_a_reader_given_a_real_file_with_one_part_replaced(
    tmp_path, format_name, choices, new
):
    """Real records of each format with one field, anywhere inside them, replaced by any JSON."""
    source = REAL_FILES[format_name]
    records = _replace_somewhere(_records(source), choices, new)
    path = tmp_path / source.name
    if source.suffix == ".jsonl" and isinstance(records, list):
        path.write_text(
            "".join(json.dumps(r) + "\n" for r in records), encoding="utf-8", errors="surrogatepass"
        )
    else:
        path.write_text(json.dumps(records), encoding="utf-8", errors="surrogatepass")
    _read_everything(format_name, path)
