"""`univg cot review`: the stratified sample, the page driven in headless Chromium, folding decisions back."""

from __future__ import annotations

import json
import math
import re
import shutil
import time
from collections import Counter
from pathlib import Path

import pytest
from cot_helpers import outcomes, read_lines

from univg.cli.main import main
from univg.cot.review import (
    DECISIONS_FORMAT,
    ReviewError,
    apply_decisions,
    stratified_sample,
    write_review_page,
)
from univg.training.data import TrainingDataArguments, load_training_conversations


def test_the_sample_takes_the_same_share_of_every_task_and_only_verified_lines(clean_run):
    lines = read_lines(clean_run.out)
    verified = Counter(line["task"] for line in lines if line["status"] == "verified")
    picked = stratified_sample(lines, 0.5, seed=1)
    assert Counter(line["task"] for line in picked) == {t: math.ceil(n / 2) for t, n in verified.items()}
    assert all(line["status"] == "verified" for line in picked)
    assert [line["id"] for line in picked] == [line["id"] for line in stratified_sample(lines, 0.5, seed=1)]
    assert len(stratified_sample(lines, 1.0, seed=0)) == sum(verified.values())
    with pytest.raises(ReviewError, match=r"--sample must be in \(0, 1\]"):
        stratified_sample(lines, 0.0, seed=0)


def test_the_page_is_self_contained(clean_run, tmp_path):
    page = write_review_page(clean_run.out, tmp_path / "review.html", share=1.0)
    html = page.path.read_text()
    assert not re.search(r"""(src|href)=["']https?:""", html) and "<script src" not in html
    for sample_id, (status, _) in clean_run.outcomes.items():
        assert (f'"id": "{sample_id}"' in html) == (status == "verified")
    assert html.count("data:image/png;base64,") >= page.items
    with pytest.raises(ValueError, match=r"review\.html: exists; pass 'overwrite' to replace it"):
        write_review_page(clean_run.out, page.path, share=1.0)


@pytest.fixture
def browser(tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver):
        pytest.fail(
            "the review page test needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver; .ci/run installs them)"
        )
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1200,900",
    ):
        options.add_argument(flag)
    options.add_experimental_option(
        "prefs", {"download.default_directory": str(downloads), "download.prompt_for_download": False}
    )
    session = webdriver.Chrome(service=Service(driver), options=options)
    session.downloads = downloads
    yield session
    session.quit()


def _wait_for_download(path_glob, folder: Path, seconds: float = 20.0) -> Path:
    """Chromium reserves the final name with an empty file before it writes the .crdownload and renames it,
    so a download is done only when no .crdownload is left and the file holds a whole JSON document."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not any(folder.glob("*.crdownload")):
            for candidate in folder.glob(path_glob):
                try:
                    json.loads(candidate.read_text())
                except (OSError, ValueError):
                    continue
                return candidate
        time.sleep(0.05)
    raise AssertionError(f"no complete download matching {path_glob} appeared in {folder}")


def test_review_in_chromium_then_apply_reports_the_acceptance_per_task(clean_run, browser, tmp_path, capsys):
    from selenium.webdriver.common.by import By

    page = tmp_path / "review.html"
    assert (
        main(
            [
                "cot",
                "review",
                "--input",
                str(clean_run.out),
                "--sample",
                "0.5",
                "--out",
                str(page),
                "--seed",
                "3",
            ]
        )
        == 0
    )
    assert "items to review" in capsys.readouterr().out
    browser.get(page.as_uri())
    cards = browser.find_elements(By.CSS_SELECTOR, "section.item")
    ids = [card.get_attribute("data-id") for card in cards]
    assert len(ids) >= 6
    images = cards[0].find_elements(By.CSS_SELECTOR, "img")
    assert images and all(
        browser.execute_script("return arguments[0].naturalWidth", img) > 0 for img in images
    )
    assert cards[0].find_elements(By.CSS_SELECTOR, ".frame.target .box.gt")  # the ground truth is drawn

    cards[0].find_element(By.CSS_SELECTOR, ".accept").click()
    cards[1].find_element(By.CSS_SELECTOR, ".accept").click()
    cards[2].find_element(By.CSS_SELECTOR, ".note").send_keys("names the wrong shape")
    cards[2].find_element(By.CSS_SELECTOR, ".reject").click()
    cards[3].find_element(By.CSS_SELECTOR, ".reject").click()
    cards[3].find_element(By.CSS_SELECTOR, ".reject").click()  # a second click takes the decision back
    cards[4].click()
    browser.find_element(By.TAG_NAME, "body").send_keys("a")  # keyboard: accept the current item
    assert "4 / " in browser.find_element(By.ID, "progress").text
    browser.refresh()  # decisions survive a reload
    assert "4 / " in browser.find_element(By.ID, "progress").text
    browser.find_element(By.ID, "export").click()
    exported = _wait_for_download("decisions*.json", browser.downloads)

    decisions = json.loads(exported.read_text())
    assert decisions["format"] == DECISIONS_FORMAT and decisions["items"] == ids
    expected = {ids[0]: "accept", ids[1]: "accept", ids[2]: "reject", ids[4]: "accept"}
    assert {k: v["decision"] for k, v in decisions["decisions"].items()} == expected
    assert decisions["decisions"][ids[2]]["note"] == "names the wrong shape"

    reviewed = tmp_path / "cot.reviewed.jsonl"
    assert (
        main(
            [
                "cot",
                "review",
                "--input",
                str(clean_run.out),
                "--apply",
                str(exported),
                "--out",
                str(reviewed),
                "--json",
            ]
        )
        == 0
    )
    report = json.loads(capsys.readouterr().out)
    tasks = {line["id"]: line["task"] for line in read_lines(clean_run.out)}
    per_task: dict[str, list[str]] = {}
    for item_id, decision in expected.items():
        per_task.setdefault(tasks[item_id], []).append(decision)
    assert report["reviewed"] == 4 and report["accepted"] == 3 and report["acceptance_rate"] == 0.75
    assert report["undecided"] == len(ids) - 4
    for task, made in per_task.items():
        assert report["tasks"][task]["acceptance_rate"] == made.count("accept") / len(made)
    after = outcomes(reviewed)
    assert after[ids[2]] == ("rejected", "review")
    assert {i: after[i] for i in after if i != ids[2]} == {
        i: clean_run.outcomes[i] for i in after if i != ids[2]
    }
    line = next(line for line in read_lines(reviewed) if line["id"] == ids[2])
    assert (
        line["detail"] == "names the wrong shape" and line["extra"]["review"]["chain"] and "cot" not in line
    )
    trained = load_training_conversations(TrainingDataArguments(train_files=[str(reviewed)]))
    assert ids[2] not in {turns[0].id for turns in trained}
    assert json.loads((tmp_path / "cot.reviewed.jsonl.review.json").read_text())["accepted"] == 3


@pytest.mark.parametrize(
    ("decisions", "message"),
    [
        ({"format": "other", "decisions": {}}, "not a decisions file"),
        (
            {"format": DECISIONS_FORMAT, "decisions": {"nope": {"decision": "accept"}}},
            "item 'nope' is not in",
        ),
        (
            {"format": DECISIONS_FORMAT, "decisions": {"ID": {"decision": "maybe"}}},
            "field 'decision' must be",
        ),
        (
            {"format": DECISIONS_FORMAT, "decisions": {"REJECTED": {"decision": "accept"}}},
            "is rejected in .*, not verified",
        ),
    ],
)
def test_bad_decisions_are_refused_naming_the_item(clean_run, tmp_path, capsys, decisions, message):
    verified = next(i for i, (s, _) in clean_run.outcomes.items() if s == "verified")
    rejected = next(i for i, (s, _) in clean_run.outcomes.items() if s == "rejected")
    text = (
        json.dumps(decisions)
        .replace('"ID"', json.dumps(verified))
        .replace('"REJECTED"', json.dumps(rejected))
    )
    path = tmp_path / "decisions.json"
    path.write_text(text)
    with pytest.raises(ReviewError, match=message):
        apply_decisions(clean_run.out, path, tmp_path / "out.jsonl")
    code = main(
        [
            "cot",
            "review",
            "--input",
            str(clean_run.out),
            "--apply",
            str(path),
            "--out",
            str(tmp_path / "o.jsonl"),
        ]
    )
    assert code == 2 and capsys.readouterr().err.startswith("univg cot review: ")
    assert not (tmp_path / "o.jsonl").exists()
