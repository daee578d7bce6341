"""The teacher client against a scripted faulty server on loopback: retries, what is never retried, what stops."""

from __future__ import annotations

import json

import pytest
from cot_helpers import cot_config, outcomes
from cot_servers import Fault, ScriptedTeacher, status

from univg.cli.main import main
from univg.cot.client import RetryPolicy, TeacherFatal
from univg.cot.runner import TEACHER_UNAVAILABLE, Generator, generate, sidecar
from univg.data.schema import read_jsonl


@pytest.fixture(scope="module")
def ids(samples_file):
    return [s.id for s in read_jsonl(samples_file)]


def test_transport_faults_are_retried_and_change_nothing(
    offline_teacher, samples_file, clean_run, ids, tmp_path
):
    faults = {
        ids[0]: [status(429, Retry_After="0.05")],
        ids[1]: [status(500), status(503)],
        ids[2]: [Fault("slow", delay_s=0.8)],
        ids[3]: [Fault("malformed")],
        ids[4]: [Fault("not_json")],
        ids[5]: [Fault("no_choices")],
        ids[6]: [Fault("cut")],
        ids[7]: [Fault("drop")],
        ids[8]: [status(429, retry_after_ms="30"), status(502)],
    }
    out = tmp_path / "cot.jsonl"
    with ScriptedTeacher(offline_teacher, faults) as server:
        summary = generate(cot_config(samples_file, out, server.url, timeout_s=0.4))
    assert outcomes(out) == clean_run.outcomes  # every sample ends as it does without faults
    streams = 4  # 3 chains and the judge, each met its sample's faults once
    faults_seen = summary.run.faults
    assert faults_seen["429"] == 2 * streams and faults_seen["5xx"] == 3 * streams
    assert faults_seen["malformed"] == 3 * streams and faults_seen["connection"] == 2 * streams
    assert faults_seen["timeout"] >= streams
    assert summary.run.requests == clean_run.replies  # faults are not paid for
    for sample_id, wait in ((ids[0], 0.05), (ids[8], 0.03)):
        entries = server.requests_for(sample_id)
        for entry in entries:
            if entry.outcome == "429":
                retry = next(
                    e for e in entries if (e.kind, e.seed) == (entry.kind, entry.seed) and e.time > entry.time
                )
                assert retry.time - entry.time >= wait * 0.9  # Retry-After honoured (backoff alone is ~1 ms)
    assert "attempt 1 failed" in sidecar(out, "log").read_text()  # the raw log keeps every retry


def test_a_plain_400_is_not_retried_and_rejects_only_its_sample(
    offline_teacher, samples_file, clean_run, ids, tmp_path
):
    out = tmp_path / "cot.jsonl"
    with ScriptedTeacher(offline_teacher, {ids[2]: [status(400)] * 5}) as server:
        generate(cot_config(samples_file, out, server.url, limit=4))
    assert len(server.requests_for(ids[2])) == 3  # one per chain, none again
    line = next(json.loads(x) for x in out.read_text().splitlines() if json.loads(x)["id"] == ids[2])
    assert (line["status"], line["reason"]) == ("rejected", "request_refused") and "HTTP 400" in line[
        "detail"
    ]
    found = outcomes(out)
    assert {i: found[i] for i in ids[:4] if i != ids[2]} == {
        i: clean_run.outcomes[i] for i in ids[:4] if i != ids[2]
    }


def test_a_teacher_that_stays_down_rejects_the_sample_after_the_last_attempt(
    offline_teacher, samples_file, ids, tmp_path
):
    out = tmp_path / "cot.jsonl"
    retry = RetryPolicy(max_attempts=3, initial_s=0.001, max_s=0.002)
    with ScriptedTeacher(offline_teacher, {ids[1]: [status(503)] * 10}) as server:
        generate(cot_config(samples_file, out, server.url, limit=2, retry=retry))
    assert len(server.requests_for(ids[1])) == 3 * 3  # 3 chains x 3 attempts
    assert outcomes(out)[ids[1]] == ("rejected", TEACHER_UNAVAILABLE)


def test_a_bad_key_stops_the_run_at_once(offline_teacher, samples_file, ids, tmp_path, capsys):
    out = tmp_path / "cot.jsonl"
    with ScriptedTeacher(offline_teacher, {i: [status(401)] * 10 for i in ids}) as server:
        with pytest.raises(TeacherFatal, match="HTTP 401"):
            Generator(cot_config(samples_file, out, server.url)).run()
        assert len(server.log) <= 4 * 3  # the requests already in flight, nothing after
        summary = json.loads(sidecar(out, "summary.json").read_text())
        assert summary["stopped"].startswith("teacher error") and summary["pending"] == len(ids)
        code = main(["cot", "generate", "--input", str(samples_file), "--out", str(out), "--teacher-url", server.url,
                     "--teacher-model", "univg-offline-teacher", "--no-progress"])  # fmt: skip
    assert code == 1 and "refuses every request" in capsys.readouterr().err
    assert out.read_text() == ""


def test_requests_refused_again_and_again_stop_the_run(offline_teacher, samples_file, ids, tmp_path, capsys):
    out = tmp_path / "cot.jsonl"
    with ScriptedTeacher(offline_teacher, {i: [status(400)] * 5 for i in ids}) as server:
        code = main(["cot", "generate", "--input", str(samples_file), "--out", str(out), "--teacher-url", server.url,
                     "--teacher-model", "univg-offline-teacher", "--no-progress", "--concurrency", "2"])  # fmt: skip
    assert code == 1 and "10 samples in a row refused" in capsys.readouterr().err
    written = outcomes(out)
    assert 10 <= len(written) <= 10 + 2 and set(written.values()) == {("rejected", "request_refused")}


def test_a_teacher_without_usage_is_charged_the_worst_case(offline_teacher, samples_file, ids, tmp_path):
    out = tmp_path / "cot.jsonl"
    with ScriptedTeacher(offline_teacher, {i: [Fault("no_usage")] for i in ids[:2]}) as server:
        summary = generate(cot_config(samples_file, out, server.url, limit=2, chains=1, max_cost=1.0))
    ledger = [json.loads(line) for line in sidecar(out, "ledger.jsonl").read_text().splitlines()]
    assert [r["usage_reported"] for r in ledger] == [False, False] and all(r["cost"] > 0 for r in ledger)
    assert summary.cost == pytest.approx(sum(r["cost"] for r in ledger)) and summary.complete
    worst = (1024 * 2.0) / 1e6  # all of max_tokens at $2 per million: the reservation's completion part
    assert all(r["cost"] > worst for r in ledger)
    assert "reports no token usage" in sidecar(out, "log").read_text()
