"""The streaming JSON reader: same records as `json.load`, any chunking, flat memory."""

from __future__ import annotations

import gzip
import json
import re
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from univg.data.jsonstream import BadJSON, JsonRecords, JSONStreamError, iter_json_records

# Standard JSON, as arrays must be: no NaN or Infinity, integers within ±(2^63 - 1).
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63) + 1, 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(records=st.lists(json_values, max_size=8), chunk=st.integers(1, 64), indent=st.sampled_from([None, 1]))
def test_array_matches_json_load_for_any_chunking(
    tmp_path: Path, records: list, chunk: int, indent: int | None
) -> None:
    path = tmp_path / "data.json"
    path.write_text(json.dumps(records, indent=indent, ensure_ascii=False), encoding="utf-8")
    got = list(JsonRecords(path, chunk_size=chunk))
    assert [index for index, _ in got] == list(range(len(records)))
    assert [record for _, record in got] == json.loads(path.read_text(encoding="utf-8"))


def test_json_lines_with_blank_and_bad_lines(tmp_path: Path) -> None:
    path = tmp_path / "data.jsonl"
    path.write_text('{"a": 1}\n\n{"a": \n[1, 2]\n', encoding="utf-8")
    got = list(iter_json_records(path))
    assert got[0] == (0, {"a": 1})
    assert got[1][0] == 1 and isinstance(got[1][1], BadJSON)
    assert "line 3" in got[1][1].message
    assert got[2] == (2, [1, 2])


def test_gzip_and_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "data.json.gz"
    with gzip.open(path, "wt", encoding="utf-8-sig") as handle:
        json.dump([{"x": i} for i in range(100)], handle)
    reader = JsonRecords(path, chunk_size=50)
    assert [record["x"] for _, record in reader] == list(range(100))
    assert reader.bytes_read == reader.total_bytes == path.stat().st_size


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[{"a": 1} {"b": 2}]', "after array element, I expect ',' or ']'"),
        ('[{"a": 1}, {"b": ]', "unallowed token"),
        ('[{"a": 1},', "premature EOF"),
        ('[{"a": 1}, {"b": NaN}]', "invalid char"),  # not standard JSON
        ('[{"a": 1}, 123456789012345678901234]', "integer overflow"),
    ],
)
def test_broken_array_names_file_and_record(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "broken.json"
    path.write_text(text)
    reader = iter_json_records(path)
    assert next(reader) == (0, {"a": 1})
    expected = rf"broken\.json: record 1: invalid JSON or truncated file: .*{re.escape(message)}"
    with pytest.raises(JSONStreamError, match=expected):
        next(reader)


def test_a_line_that_is_not_utf8_is_a_bad_record_of_its_own(tmp_path: Path) -> None:
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(b'{"a": 1}\n{"b": "caf\xe9"}\n{"c": 3}\n')
    got = list(iter_json_records(path))
    assert got[0] == (0, {"a": 1}) and got[2] == (2, {"c": 3})
    assert got[1] == (1, BadJSON("line 2: not UTF-8 text (byte 0xe9 at byte 11)"))


def test_a_corrupt_gzip_file(tmp_path: Path) -> None:
    path = tmp_path / "data.json.gz"
    path.write_bytes(gzip.compress(b'[{"a": 1}, {"b": 2}]')[:-12])
    with pytest.raises(JSONStreamError, match="unreadable"):
        list(iter_json_records(path))


@pytest.mark.parametrize("text", ["", "  \n", "[]", " [ ] "])
def test_empty_inputs(tmp_path: Path, text: str) -> None:
    path = tmp_path / "empty.json"
    path.write_text(text)
    assert list(iter_json_records(path)) == []


def _write_large_array(path: Path, count: int) -> None:
    record = {
        "images": [f"./MGrounding-630k/Group_Grounding/SA-1B/sa_{i}.jpg" for i in range(4)],
        "conversations": [
            {"from": "human", "value": "<image>\n" * 4 + "Give the bounding box of: a statue of a man."},
            {"from": "gpt", "value": "It's in the third image. <|box_start|>(316,58),(764,999)<|box_end|>"},
        ],
        "type": "gg_train",
    }
    with path.open("w") as handle:
        handle.write("[\n")
        for i in range(count):
            handle.write(("," if i else "") + json.dumps({"id": str(i), **record}, indent=2))
        handle.write("\n]\n")


def test_streaming_memory_is_flat(tmp_path: Path) -> None:
    """Reading 10k records (about 5.5 MB) in 64 KiB chunks holds about a chunk, not the file."""
    path = tmp_path / "large.json"
    _write_large_array(path, 10_000)
    tracemalloc.start()
    try:
        count = sum(1 for _ in JsonRecords(path, chunk_size=64 * 1024))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 10_000
    assert path.stat().st_size > 5 * 2**20
    assert peak < 2**20, f"peak {peak / 2**20:.2f} MiB while streaming"
