"""Pure parts of the CoT pipeline: verification, the judge's choice, prompts, retry waits, budget, ledger."""

from __future__ import annotations

import asyncio
import json
import time
from email.utils import formatdate

import pytest
from hypothesis import given
from hypothesis import strategies as st

from univg.cli.main import main
from univg.cot.accounting import Budget, BudgetExhausted, Ledger, PaidReply, Prices
from univg.cot.client import RequestRefused, TeacherFatal, TransportFault, _status_error, retry_after_seconds
from univg.cot.judge import parse_choice
from univg.cot.prompts import PromptError, PromptSet, copy_prompts
from univg.cot.verify import BOX_MISMATCH, FORMAT, LEAK, WRONG_IMAGE, find_leak, verify_response
from univg.data.files import repair_tail
from univg.data.prompts import answer_text, format_box
from univg.data.schema import GroundingSample

SAMPLE = GroundingSample(
    "s", "diff", "t", ["a.png", "b.png", "c.png"], "Find the change.", 1, (0.1, 0.2, 0.3, 0.4)
)
BOX = "(100, 200), (300, 400)"


# --- verification --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("response", "reason"),
    [
        (f"<think>The red cube moved in image 2.</think><answer>{BOX}</answer>", None),
        (f"  <think>Nothing names an image here.</think>\n<answer> {BOX} </answer> ", None),
        ("<think>The red cube moved in image 2.</think><answer>(104, 203), (298, 405)</answer>", None),
        (f"The red cube moved. {BOX}", FORMAT),
        ("<think>a</think><answer>[100, 200, 300, 400]</answer>", FORMAT),
        (f"<think>a</think><answer>{BOX}</answer> and more", FORMAT),
        ("<think>The red cube in image 2.</think><answer>(500, 500), (900, 900)</answer>", BOX_MISMATCH),
        (f"<think>It sits at {BOX} in image 2.</think><answer>{BOX}</answer>", LEAK),
        (f"<think>Its left edge is at x = 101 in image 2.</think><answer>{BOX}</answer>", LEAK),
        (f"<think>The ground truth says image 2.</think><answer>{BOX}</answer>", LEAK),
        (f"<think>Given the bounding box, image 2.</think><answer>{BOX}</answer>", LEAK),
        (f"<think>The red cube moved in image 3.</think><answer>{BOX}</answer>", WRONG_IMAGE),
        (
            f"<think>Images 1 and 3 differ from the second image, where 12 cubes sit.</think><answer>{BOX}</answer>",
            None,
        ),
    ],
)
def test_verification_table(response, reason):
    verdict = verify_response(response, SAMPLE)
    assert verdict.reason == reason, verdict
    assert verdict.ok == (reason is None) and (verdict.detail == "") == (reason is None)


def test_every_failed_check_is_listed_in_order():
    verdict = verify_response(
        "<think>at (1, 2), (3, 4) in image 1</think><answer>(5, 5), (9, 9)</answer>", SAMPLE
    )
    assert verdict.failed == (BOX_MISMATCH, LEAK, WRONG_IMAGE) and verdict.reason == BOX_MISMATCH


def test_a_diff_pair_accepts_either_image_and_the_threshold_is_a_setting():
    pair = GroundingSample("p", "diff", "t", ["a", "b"], "q", 0, SAMPLE.box, extra={"target_images": [0, 1]})
    response = "<think>The cube is missing in image 2.</think><answer>(120, 200), (300, 400)</answer>"
    assert verify_response(response, pair).ok
    assert verify_response(response, pair, iou_threshold=0.95).reason == BOX_MISMATCH


def test_normalized_coordinates_leak_as_decimals_only():
    assert find_leak("It spans 0.1 to 0.3 of the width.", SAMPLE.box, "normalized") is not None
    assert find_leak("There are 2 cubes and 300 dots.", SAMPLE.box, "normalized") is None
    assert find_leak("There are 2 cubes and 300 dots.", SAMPLE.box, "qwen2vl") is not None


_WORDS = st.text(st.sampled_from("abcdefghij klmnopqrstuvwxyz,;"), min_size=1, max_size=80).filter(str.strip)
_BOXES = st.tuples(st.floats(0, 0.45), st.floats(0, 0.45), st.floats(0.05, 0.5), st.floats(0.05, 0.5)).map(
    lambda b: (b[0], b[1], b[0] + b[2], b[1] + b[3])
)


@given(chain=_WORDS, box=_BOXES)
def test_a_response_written_as_training_answers_are_verifies(chain, box):
    sample = GroundingSample("h", "referring", "t", ["a.png"], "q", 0, box)
    assert verify_response(answer_text(box, think=chain), sample).ok


@given(chain=_WORDS, box=_BOXES)
def test_copying_the_box_into_the_reasoning_is_always_a_leak(chain, box):
    sample = GroundingSample("h", "referring", "t", ["a.png"], "q", 0, box)
    answer = answer_text(box, think=f"{chain} at {format_box(box)}")
    assert LEAK in verify_response(answer, sample).failed


# --- the judge -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "count", "chosen"),
    [
        ("Best: 2", 3, 1),
        ("**Best:** 3", 3, 2),
        ("Candidate 1 is the most faithful.", 3, 0),
        ("The best is candidate 3.", 3, 2),
        ("2", 3, 1),
        ("Best: 7", 3, None),
        ("1 or 2, hard to say", 3, None),
        ("none of them", 3, None),
        ("", 3, None),
    ],
)
def test_judge_choice_table(reply, count, chosen):
    assert parse_choice(reply, count) == chosen


@given(count=st.integers(1, 9), data=st.data())
def test_a_labelled_choice_in_range_is_always_read(count, data):
    number = data.draw(st.integers(1, count))
    noise = data.draw(st.sampled_from(["", "After comparing them, ", "Candidate chains compared. "]))
    assert parse_choice(f"{noise}Best: {number}", count) == number - 1


# --- prompts -------------------------------------------------------------------------------------


def test_the_shipped_prompts_fill_every_placeholder():
    prompts = PromptSet.load()
    chain = prompts.chain_text(SAMPLE, "qwen2vl")
    assert "Find the change." in chain and BOX in chain and "image 2" in chain and "$" not in chain
    assert prompts.task_hints["diff"] in chain
    judge = prompts.judge_text(SAMPLE, "qwen2vl", ["<think>a</think>", "<think>b</think>"])
    assert "Candidate 1:\n<think>a</think>" in judge and "Candidate 2:\n<think>b</think>" in judge
    other = GroundingSample("o", "no-such-task", "t", ["a.png"], "q", 0, SAMPLE.box)
    assert prompts.task_hints["default"] in prompts.chain_text(other, "normalized")
    assert "(0.100, 0.200), (0.300, 0.400)" in prompts.chain_text(other, "normalized")


def test_a_copied_and_edited_prompt_set_is_used_and_changes_the_fingerprint(tmp_path, capsys):
    assert main(["cot", "prompts", "--out", str(tmp_path)]) == 0
    (tmp_path / "chain.txt").write_text("Q: $question (in $target, $image_count) -> $box\n")
    edited = PromptSet.load(tmp_path)
    assert edited.chain_text(SAMPLE, "qwen2vl") == f"Q: Find the change. (in image 2, 3 images) -> {BOX}"
    assert edited.fingerprint != PromptSet.load().fingerprint
    with pytest.raises(ValueError, match=r"system\.txt: exists; pass 'overwrite' to replace it"):
        copy_prompts(tmp_path)
    assert main(["cot", "prompts", "--out", str(tmp_path)]) == 2
    assert "system.txt: exists; pass --force to replace it" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("chain.txt", "Question: $question, $answer\n", r"chain.txt: unknown placeholder\(s\) \$answer"),
        ("chain.txt", "No question here\n", r"chain.txt: must contain \$question"),
        ("judge.txt", "$question $chains costs 5$\n", r"judge.txt: a '\$' not followed"),
        ("tasks.yaml", "diff: [1, 2]\n", "tasks.yaml: must map each task"),
        ("tasks.yaml", "diff: Find it.\n", "tasks.yaml: needs a 'default'"),
        ("tasks.yaml", "default: [unclosed\n", "tasks.yaml: not valid YAML"),
    ],
)
def test_a_broken_prompt_set_is_refused_naming_the_file(tmp_path, name, content, message):
    copy_prompts(tmp_path)
    (tmp_path / name).write_text(content)
    with pytest.raises(PromptError, match=message):
        PromptSet.load(tmp_path)


def test_an_incomplete_prompt_folder_says_how_to_get_a_complete_one(tmp_path):
    (tmp_path / "chain.txt").write_text("$question")
    with pytest.raises(PromptError, match=r"missing system.txt, judge.txt, tasks.yaml \(univg cot prompts"):
        PromptSet.load(tmp_path)


# --- what the client retries ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"retry-after": "3"}, 3.0),
        ({"retry-after": "0.25"}, 0.25),
        ({"retry-after-ms": "40", "retry-after": "9"}, 0.04),
        ({"retry-after": formatdate(1_000_030, usegmt=True)}, 30.0),
        ({"retry-after": "soon"}, None),
        ({"retry-after": "-1"}, None),
        ({}, None),
    ],
)
def test_retry_after_table(headers, seconds):
    value = retry_after_seconds(headers, now=1_000_000)
    assert value == (pytest.approx(seconds) if seconds is not None else None)


@pytest.mark.parametrize(
    ("code", "body", "kind"),
    [
        (429, {}, TransportFault),
        (408, {}, TransportFault),
        (500, {}, TransportFault),
        (503, {}, TransportFault),
        (400, {}, RequestRefused),
        (413, {}, RequestRefused),
        (422, {}, RequestRefused),
        (401, {}, TeacherFatal),
        (403, {}, TeacherFatal),
        (404, {}, TeacherFatal),
        (429, {"error": {"code": "insufficient_quota"}}, TeacherFatal),
    ],
)
def test_status_table(code, body, kind):
    assert isinstance(_status_error(code, "message", {}, body), kind)


# --- money ---------------------------------------------------------------------------------------


def test_the_budget_waits_for_requests_in_flight_and_never_passes_the_limit():
    async def scenario() -> list[str]:
        budget = Budget(Prices(1e6, 0.0), max_cost=10.0)  # a dollar per prompt token
        events = []
        first = await budget.reserve(6.0)
        second = asyncio.ensure_future(budget.reserve(6.0))
        await asyncio.sleep(0)
        events.append(f"second waits: {not second.done()}")
        await budget.settle(first, "chain", 3, 3.0)  # the reply cost less than its worst case
        events.append(f"second holds {await second}")
        third = asyncio.ensure_future(budget.reserve(2.0))  # 3 spent + 6 held + 2 > 10: waits for the reply
        await asyncio.sleep(0)
        events.append(f"third waits: {not third.done()}")
        await budget.settle(6.0, "chain", 6, 6.5)  # 9.5 spent, nothing in flight: 2 more cannot fit
        with pytest.raises(BudgetExhausted):
            await third
        with pytest.raises(BudgetExhausted):
            await budget.reserve(0.1)  # once exhausted, the run asks for nothing more
        events.append(f"spent {budget.spent}")
        return events

    assert asyncio.run(scenario()) == [
        "second waits: True",
        "second holds 6.0",
        "third waits: True",
        "spent 9.5",
    ]


def test_the_estimate_grows_with_what_replies_showed():
    async def scenario() -> tuple[float, float]:
        budget = Budget(Prices(1e6, 1e6))
        before = budget.estimate("chain", 300, 1, 10)
        await budget.settle(await budget.reserve(1.0), "chain", 4000, 1.0)
        return before, budget.estimate("chain", 300, 1, 10)

    before, after = asyncio.run(scenario())
    assert before == 100 + 512 + 10 and after == 6000 + 10


def test_the_ledger_reloads_totals_and_reuses_replies_only_for_the_same_attempt_and_settings(tmp_path):
    path = tmp_path / "ledger.jsonl"
    ledger = Ledger(path)
    for index in range(2):
        ledger.append(PaidReply("s", 0, "A", "chain", index, f"chain {index}", 10, 5, 0.5))
    ledger.append(PaidReply("s", 1, "A", "judge", 0, "Best: 1", 7, 2, 0.25))
    ledger.close()
    with path.open("a") as handle:
        handle.write('{"id": "s", "attempt": 0, "settings": "A", "ki')  # a reply cut by a kill
    again = Ledger(path)
    assert again.totals.cost == pytest.approx(1.25) and again.totals.prompt_tokens == 27
    assert set(again.reusable("s", 0, "A")) == {("chain", 0), ("chain", 1)}
    assert again.reusable("s", 0, "B") == {} and set(again.reusable("s", 1, "A")) == {("judge", 0)}
    again.close()
    assert all(json.loads(line) for line in path.read_text().splitlines())


def test_only_a_last_line_cut_short_is_dropped(tmp_path):
    path = tmp_path / "f.jsonl"
    path.write_text('{"a": 1}\n{"b": 2}\n')
    assert not repair_tail(path) and path.read_text() == '{"a": 1}\n{"b": 2}\n'
    path.write_text('{"a": 1}\n{"b": 2')
    assert repair_tail(path) and path.read_text() == '{"a": 1}\n'
    path.write_text('{"a"')
    assert repair_tail(path) and path.read_text() == ""
    path.write_text('{"a": 1}\n{"b": 2}')  # whole, only its newline was not written: kept
    assert not repair_tail(path) and path.read_text() == '{"a": 1}\n{"b": 2}\n'


def test_formatdate_helper_is_in_the_past_of_now():
    assert retry_after_seconds({"retry-after": formatdate(time.time() - 60, usegmt=True)}) == 0.0
