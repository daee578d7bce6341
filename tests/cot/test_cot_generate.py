"""`univg cot generate` end to end against the offline teacher on loopback: lines, resume, settings, money."""

from __future__ import annotations

import json
import re

import pytest
from cot_helpers import cot_config, outcomes, read_lines
from cot_servers import ScriptedTeacher, ServerThread

from univg.cli.main import main
from univg.cot.runner import STOPPED_MAX_COST, GenerateError, Generator, generate, sidecar
from univg.cot.teacher import OfflineTeacher, create_app
from univg.cot.verify import CHECKS, verify_response
from univg.data.schema import GroundingSample, read_jsonl


def test_every_sample_ends_once_verified_or_rejected_with_a_reason(clean_run, samples_file):
    inputs = {s.id: s for s in read_jsonl(samples_file)}
    assert set(clean_run.outcomes) == set(inputs)
    statuses = {status for status, _ in clean_run.outcomes.values()}
    assert statuses == {"verified", "rejected"}  # the offline teacher's wrong, leaky and unformatted chains
    for line in read_lines(clean_run.out):
        generation = line["extra"]["cot_generation"]
        assert len(generation["candidates"]) == 3 and generation["requests"] == 4  # 3 chains + 1 judge
        kept = generation["candidates"][generation["chosen"]]["response"]
        verdict = verify_response(kept, inputs[line["id"]])
        if line["status"] == "verified":
            assert verdict.ok and line["cot"] == verdict.think and "reason" not in line
        else:
            assert line["reason"] == verdict.reason in CHECKS and line["detail"] and "cot" not in line


def test_verified_lines_are_canonical_samples_with_images_relative_to_the_output(clean_run, samples_file):
    inputs = {s.id: s for s in read_jsonl(samples_file)}
    for sample in read_jsonl(clean_run.out):
        original = inputs[sample.id]
        assert sample.box == original.box and sample.question == original.question
        assert sample.target_image == original.target_image
        for written, source in zip(sample.images, original.images, strict=True):
            assert (clean_run.out.parent / written).resolve() == (samples_file.parent / source).resolve()


def test_summary_counts_match_the_file_and_the_ledger(clean_run):
    summary = json.loads(sidecar(clean_run.out, "summary.json").read_text())
    lines = read_lines(clean_run.out)
    assert summary["counts"] == {
        s: sum(1 for line in lines if line["status"] == s)
        for s in ("verified", "rejected")
        if any(line["status"] == s for line in lines)
    }
    rejected = [line for line in lines if line["status"] == "rejected"]
    assert sum(summary["reasons"].values()) == len(rejected)
    ledger = read_lines(sidecar(clean_run.out, "ledger.jsonl"))
    assert len(ledger) == 4 * len(lines) == summary["run"]["requests"]
    assert summary["cost"] == pytest.approx(sum(r["cost"] for r in ledger))
    assert summary["cost"] == pytest.approx(
        (summary["prompt_tokens"] * 0.8 + summary["completion_tokens"] * 2.0) / 1e6
    )
    per_line = sum(line["extra"]["cot_generation"]["cost"] for line in lines)
    assert per_line == pytest.approx(summary["cost"])
    markdown = sidecar(clean_run.out, "summary.md").read_text()
    assert "| task | verified | rejected | acceptance |" in markdown


def test_a_finished_run_asks_nothing_again(clean_run, samples_file, teacher_url, offline_teacher, tmp_path):
    out = tmp_path / "cot.jsonl"
    generate(cot_config(samples_file, out, teacher_url, limit=5))
    before = len(offline_teacher.requests)
    summary = generate(cot_config(samples_file, out, teacher_url, limit=5))
    assert len(offline_teacher.requests) == before and summary.run.requests == 0 and summary.complete
    summary = generate(cot_config(samples_file, out, teacher_url, limit=8))  # only the 3 new samples
    asked = {sample_id for sample_id, _ in offline_teacher.requests[before:]}
    assert asked == {s.id for s in list(read_jsonl(samples_file))[5:8]}
    assert {k: v for k, v in outcomes(out).items()} == {k: clean_run.outcomes[k] for k in outcomes(out)}


def test_a_rerun_with_other_settings_is_refused_unless_asked(samples_file, teacher_url, tmp_path):
    out = tmp_path / "cot.jsonl"
    generate(cot_config(samples_file, out, teacher_url, limit=2))
    with pytest.raises(GenerateError, match=r"chains: 3 -> 2.*--allow-changed-settings"):
        Generator(cot_config(samples_file, out, teacher_url, limit=3, chains=2)).run()
    prompts = tmp_path / "prompts"
    assert main(["cot", "prompts", "--out", str(prompts)]) == 0
    chain = prompts / "chain.txt"
    chain.write_text(chain.read_text() + "\nBe brief.\n")
    with pytest.raises(GenerateError, match="prompts"):
        Generator(cot_config(samples_file, out, teacher_url, limit=3, prompts=str(prompts))).run()
    summary = generate(
        cot_config(samples_file, out, teacher_url, limit=3, chains=2, allow_changed_settings=True)
    )
    assert summary.complete and summary.run.finished == 1
    assert len(json.loads(sidecar(out, "run.json").read_text())["runs"]) == 2


def test_retry_rejected_asks_again_only_for_the_chosen_reasons(
    clean_run, samples_file, teacher_url, offline_teacher, tmp_path
):
    out = tmp_path / "cot.jsonl"
    out.write_text(clean_run.out.read_text())
    for name in ("run.json", "ledger.jsonl"):
        sidecar(out, name).write_text(sidecar(clean_run.out, name).read_text())
    reason = max(
        {r for s, r in clean_run.outcomes.values() if s == "rejected"},
        key=lambda r: sum(1 for s, x in clean_run.outcomes.values() if x == r),
    )
    retried = {i for i, (s, r) in clean_run.outcomes.items() if s == "rejected" and r == reason}
    before = len(offline_teacher.requests)
    summary = generate(cot_config(samples_file, out, teacher_url, retry_rejected=(reason,)))
    assert {sample_id for sample_id, _ in offline_teacher.requests[before:]} == retried
    assert summary.run.requests == 4 * len(retried) and summary.run.reused == 0  # new seeds: new chains
    after = outcomes(out)
    assert set(after) == set(clean_run.outcomes)
    assert {i: after[i] for i in after if i not in retried} == {
        i: clean_run.outcomes[i] for i in after if i not in retried
    }
    archived = read_lines(sidecar(out, "retried.jsonl"))
    assert {line["id"] for line in archived} == retried and all(line["reason"] == reason for line in archived)
    assert all(
        line["extra"]["cot_generation"]["attempt"] == 1 for line in read_lines(out) if line["id"] in retried
    )


def test_max_cost_stops_before_it_is_passed_and_a_rerun_pays_nothing_twice(
    clean_run, samples_file, teacher_url, tmp_path, capsys
):
    out = tmp_path / "cot.jsonl"
    limit = clean_run.cost / 3
    args = ["cot", "generate", "--input", str(samples_file), "--out", str(out), "--teacher-url", teacher_url,
            "--teacher-model", "univg-offline-teacher", "--price-in", "0.8", "--price-out", "2", "--no-progress"]  # fmt: skip
    assert main([*args, "--max-cost", f"{limit:.8f}"]) == 3
    assert "stopped: max_cost" in capsys.readouterr().out
    summary = json.loads(sidecar(out, "summary.json").read_text())
    assert summary["stopped"] == STOPPED_MAX_COST and summary["pending"] > 0
    assert 0 < summary["cost"] <= limit
    assert sum(r["cost"] for r in read_lines(sidecar(out, "ledger.jsonl"))) <= limit
    assert (
        main([*args, "--max-cost", f"{limit:.8f}"]) == 3
    )  # the limit counts every run: nothing more to spend
    assert main([*args, "--max-cost", f"{3 * clean_run.cost:.8f}"]) == 0
    final = json.loads(sidecar(out, "summary.json").read_text())
    assert final["pending"] == 0 and outcomes(out) == clean_run.outcomes
    assert final["cost"] == pytest.approx(clean_run.cost)  # every reply paid exactly once over the three runs
    assert len(read_lines(sidecar(out, "ledger.jsonl"))) == clean_run.replies


def test_concurrency_bounds_the_samples_in_flight(offline_teacher, samples_file, tmp_path):
    with ScriptedTeacher(offline_teacher, latency_s=0.02) as server:
        summary = generate(
            cot_config(samples_file, tmp_path / "cot.jsonl", server.url, concurrency=3, limit=9)
        )
    assert summary.complete and server.max_samples_in_flight == 3


def test_rpm_spaces_the_requests_evenly(offline_teacher, samples_file, tmp_path):
    with ScriptedTeacher(offline_teacher) as server:
        generate(cot_config(samples_file, tmp_path / "cot.jsonl", server.url, rpm=1200, chains=1, limit=6))
    times = [entry.time for entry in server.log]
    # 1200 per minute is one every 50 ms: 6 requests span 250 ms (arrival jitter aside); unthrottled, a few ms
    assert len(times) == 6 and times[-1] - times[0] >= 0.8 * 5 * 0.05


def test_a_missing_image_rejects_that_sample_and_a_wrong_root_stops_before_any_request(
    samples_file, teacher_url, offline_teacher, tmp_path
):
    samples = list(read_jsonl(samples_file))[:3]
    records = [s.to_json() for s in samples]
    records[0]["images"] = [str(samples_file.parent / p) for p in samples[0].images]
    records[1]["images"] = [
        str(samples_file.parent / "images" / f"gone-{k}.png") for k in range(len(samples[1].images))
    ]
    records[2]["images"] = [str(samples_file.parent / p) for p in samples[2].images]
    data = tmp_path / "in.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in records))
    summary = generate(cot_config(data, tmp_path / "cot.jsonl", teacher_url, chains=1))
    found = outcomes(tmp_path / "cot.jsonl")
    assert found[samples[1].id] == ("rejected", "image") and summary.complete
    moved = tmp_path / "moved.jsonl"
    moved.write_text(samples_file.read_text())
    before = len(offline_teacher.requests)
    with pytest.raises(GenerateError, match=r"not found under .*--image-root"):
        generate(cot_config(moved, tmp_path / "other.jsonl", teacher_url))
    assert len(offline_teacher.requests) == before


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"id": "a"}\n', r"line 1: field 'task': missing field"),
        ("not json\n", r"line 1: invalid JSON"),
        (None, r"line 2: field 'id': '.*' repeats the id of line 1"),
    ],
)
def test_bad_input_is_one_clear_line_and_exit_status_1(
    samples_file, teacher_url, tmp_path, capsys, content, message
):
    data = tmp_path / "in.jsonl"
    if content is None:
        line = next(iter(read_jsonl(samples_file))).to_json()
        content = json.dumps(line) + "\n" + json.dumps(line) + "\n"
    data.write_text(content)
    code = main(["cot", "generate", "--input", str(data), "--out", str(tmp_path / "o.jsonl"), "--teacher-url", teacher_url,
                 "--teacher-model", "univg-offline-teacher", "--no-progress"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1 and len(err.strip().splitlines()) == 1  # bad data
    assert err.startswith("univg cot generate: ") and str(data) in err
    assert re.search(message, err)


def test_an_unknown_model_stops_the_run_with_exit_status_1(samples_file, teacher_url, tmp_path, capsys):
    code = main(["cot", "generate", "--input", str(samples_file), "--out", str(tmp_path / "o.jsonl"), "--teacher-url",
                 teacher_url, "--teacher-model", "no-such-model", "--no-progress", "--limit", "4"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1 and "HTTP 404" in err and "no-such-model" in err
    assert not (tmp_path / "o.jsonl").read_text()  # nothing half-done was written


def test_the_offline_teacher_with_one_chain_skips_the_judge(
    samples_file, teacher_url, offline_teacher, tmp_path
):
    before = len(offline_teacher.requests)
    generate(cot_config(samples_file, tmp_path / "cot.jsonl", teacher_url, chains=1, limit=4))
    assert [kind for _, kind in offline_teacher.requests[before:]] == ["chain"] * 4


def test_normalized_coordinates_reach_the_teacher_and_are_verified_in_them(samples_file, tmp_path):
    teacher = OfflineTeacher(samples_file, coords="normalized")
    with ServerThread(create_app(teacher)) as server:
        summary = generate(
            cot_config(samples_file, tmp_path / "cot.jsonl", server.url, coords="normalized", limit=6)
        )
    assert summary.counts.get("verified", 0) > 0
    for line in read_lines(tmp_path / "cot.jsonl"):
        kept = line["extra"]["cot_generation"]["candidates"][line["extra"]["cot_generation"]["chosen"]][
            "response"
        ]
        sample = GroundingSample.from_json(line)
        assert verify_response(kept, sample, coords="normalized").reason == line.get("reason")
