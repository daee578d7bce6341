"""results.json, report.md and report.html: the scores, beside the paper's, for machines and people.

report.md follows the paper's table layout (same columns, same order) with the paper's numbers for
Qwen2-VL-7B, Migician and UniVG-R1 above ours and the differences below; then the three parse modes
and the image check side by side, every metric per task, and what was excluded or missing.
report.html holds the same tables plus the worst predictions of each task drawn on their images
(truth in green, answer in red), the images embedded so the file stands alone.
"""

from __future__ import annotations

import html
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from univg.core.boxes import box_to_pixels
from univg.core.metrics import METRIC_NAMES
from univg.core.parsing import PARSE_MODES
from univg.data.files import write_text_atomic
from univg.data.schema import GroundingSample, resolve_image
from univg.evaluation.benchmarks import BenchmarkData
from univg.evaluation.pages import REPORT_HTML, REPORT_MD, RESULTS_FILE, Table, figure, page, png_data_url
from univg.evaluation.paper import PAPER_MODELS, table_for
from univg.evaluation.scoring import SampleScore, Scores, id_order

RESULTS_SCHEMA = 1
THUMBNAIL = 320  # longest side of the images drawn into report.html
MAX_LISTED = 50  # ids listed in report.md per kind (results.json lists all)
MAX_RESPONSE_CHARS = 1500
NONE = "—"
_MODE_NAMES = {"strict": "strict", "answer": "answer", "first": "first (official scripts)"}


def _num(value: float | None) -> str:
    return NONE if value is None else f"{value:.2f}"


def _diff(ours: float | None, theirs: float | None) -> str:
    return NONE if ours is None or theirs is None else f"{ours - theirs:+.2f}"


def build_results(
    scores: Scores,
    data: BenchmarkData,
    *,
    label: str,
    settings: dict[str, Any],
    run: dict[str, Any] | None,
    provenance: dict[str, Any],
) -> dict[str, Any]:
    """results.json: the scores first (as ``--json`` prints them), then everything needed to trace them."""
    return {
        **scores.to_json(),
        "schema": RESULTS_SCHEMA,
        "benchmark": data.benchmark.name,
        "label": label,
        "split": data.split,
        "settings": settings,
        "run": run,
        "provenance": provenance,
    }


def paper_table(
    results: dict[str, Any], data: BenchmarkData, key: str = "acc@0.5"
) -> tuple[Table, list[str]]:
    """Ours beside the paper's numbers, in the paper's column layout; also the footnotes."""
    name = data.benchmark.name
    ours = {task: m[key] for task, m in results["tasks"].items()}
    label = f"{results['label']} ({results['parse']})"
    table = table_for(name)
    notes: list[str] = []
    if table is None:
        tasks = data.tasks()
        header = ["Model", *tasks, "AVG"]
        row = [label, *(_num(ours.get(t)) for t in tasks), _num(results["average"][key] if tasks else None)]
        return Table(header, [row]), notes
    columns = table.columns_of(name)
    whole = len(columns) == len(table.columns)
    header = ["Model", *(c.label for c in columns), *(["AVG"] if whole else [])]
    rows = []
    for model in PAPER_MODELS:
        values = [table.value(model, name, c.task) for c in columns]
        rows.append(
            [f"{model} (paper)", *(_num(v) for v in values), *([_num(table.average[model])] if whole else [])]
        )
    our_values = [ours.get(c.task) for c in columns]
    present = sum(v is not None for v in our_values)
    our_avg = results["average"][key] if present else None
    avg_cell = _num(our_avg) + ("" if present == len(columns) else "*")
    rows.append([label, *(_num(v) for v in our_values), *([avg_cell] if whole else [])])
    for model in reversed(PAPER_MODELS):
        theirs = [table.value(model, name, c.task) for c in columns]
        diffs = [_diff(o, t) for o, t in zip(our_values, theirs, strict=True)]
        avg_diff = [_diff(our_avg, table.average[model]) if present == len(columns) else NONE]
        rows.append([f"ours − {model}", *diffs, *(avg_diff if whole else [])])
    if whole and present != len(columns):
        notes.append(
            f"\\* our average covers {present} of the table's {len(columns)} columns: not comparable."
        )
    notes.append(f"Paper numbers: {table.source} of the UniVG-R1 paper ({table.title}).")
    return Table(header, rows), notes


def task_labels(data: BenchmarkData) -> dict[str, str]:
    """Each task's column heading: the paper's ("Static" for MIG-Bench's diff), else the task key."""
    table = table_for(data.benchmark.name)
    labels = {c.task: c.label for c in table.columns_of(data.benchmark.name)} if table else {}
    return {task: labels.get(task, task) for task in data.tasks()}


def modes_table(results: dict[str, Any], data: BenchmarkData, key: str = "acc@0.5") -> Table:
    """Acc@0.5 under each parse mode, with and without the image check, task by task."""
    tasks = data.tasks()
    rows = []
    for checked in (False, True):
        for mode in PARSE_MODES:
            block = results["by_parse"][mode]
            block = block["image_checked"] if checked else block
            name = _MODE_NAMES[mode] + (", image-checked" if checked else "")
            if mode == results["parse"]:
                name += " (primary)"
            values = [block["tasks"].get(t, {}).get(key) for t in tasks]
            rows.append([name, *(_num(v) for v in values), _num(block["average"][key] if tasks else None)])
    return Table(["Parse", *task_labels(data).values(), "AVG"], rows)


def metrics_table(results: dict[str, Any], data: BenchmarkData) -> Table:
    """Every metric of the primary parse mode, per task and macro-averaged."""
    names = ["n", *METRIC_NAMES]
    rows = []
    for task, label in task_labels(data).items():
        metrics = results["tasks"][task]
        name = task if label == task else f"{label} ({task})"
        rows.append([name, str(int(metrics["n"])), *(_num(metrics[n]) for n in METRIC_NAMES)])
    average = results["average"]
    rows.append(["average (macro)", str(int(average["n"])), *(_num(average[n]) for n in METRIC_NAMES)])
    return Table(["Task", *names], rows)


def _listing(title: str, ids: Sequence[str], reasons: dict[str, str] | None = None) -> list[str]:
    if not ids:
        return []
    shown = list(ids)[:MAX_LISTED]
    more = f" ... and {len(ids) - MAX_LISTED} more (all in results.json)" if len(ids) > MAX_LISTED else ""
    if reasons is None:
        return [f"- **{title}: {len(ids)}**: " + ", ".join(f"`{i}`" for i in shown) + more]
    lines = [f"- **{title}: {len(ids)}**"]
    lines += [f"  - `{sample_id}`: {reasons.get(sample_id, '')}" for sample_id in shown]
    if more:
        lines.append(f"  -{more}")
    return lines


def exclusions(results: dict[str, Any]) -> list[str]:
    problems = results["problems"]
    lines = [
        *_listing(
            "records with invalid ground truth (excluded from the scores)",
            results["invalid_gt"],
            problems["invalid_gt"],
        ),
        *_listing(
            "records whose images are missing or unreadable (excluded)",
            results["unreadable"],
            problems["unreadable"],
        ),
        *_listing("samples with no prediction (counted as wrong)", results["missing"]),
        *_listing("samples whose request failed (counted as wrong)", results["errors"], problems["errors"]),
        *_listing("predictions for ids not in the data (ignored)", results["unknown_ids"]),
    ]
    return lines or ["Nothing excluded, nothing missing."]


def _header_lines(results: dict[str, Any], data: BenchmarkData) -> list[str]:
    settings = results["settings"]
    git = results["provenance"].get("git") or {}
    commit = git.get("commit", "unknown")[:12] + (" (with uncommitted changes)" if git.get("dirty") else "")
    selection = []
    if data.tasks_selected:
        selection.append(f"tasks {', '.join(data.tasks_selected)}")
    if data.limit is not None:
        selection.append(f"at most {data.limit} per task")
    lines = [
        f"- Model: `{results['label']}`",
        f"- Benchmark: {data.benchmark.name} ({data.benchmark.description})",
        f"- Data: `{data.path}` (sha256 {settings['data_sha256'][:16]}){', split ' + data.split if data.split else ''}",
        f"- Samples scored: {results['counts']['samples']}"
        + (f" ({'; '.join(selection)})" if selection else ""),
        f"- Parse: {results['parse']}; coordinates: {results['coords']}; max_pixels: {settings['max_pixels']}",
        f"- Code: univg {results['provenance']['univg']}, commit {commit}; scored {results['provenance']['time']}",
    ]
    run = results.get("run")
    if run:
        lines.append(
            f"- Generated with style {run['style']}, batch size {run['batch_size']}, "
            f"max_new_tokens {run['generation']['max_new_tokens']}, dtype {run['dtype']}"
        )
    lines.extend(f"- Note: {note}" for note in data.benchmark.notes)
    return lines


def render_markdown(results: dict[str, Any], data: BenchmarkData) -> str:
    table, notes = paper_table(results, data)
    parts = [
        f"# {data.benchmark.name}: {results['label']}",
        "\n".join(_header_lines(results, data)),
        "## Acc@0.5 (%), in the paper's layout",
        table.markdown(),
        "\n".join(notes) if notes else "",
        "## Parse modes and the image check (Acc@0.5, %)",
        modes_table(results, data).markdown(),
        f"## All metrics ({results['parse']}, %)",
        metrics_table(results, data).markdown(),
        "## Excluded and missing",
        "\n".join(exclusions(results)),
    ]
    return "\n\n".join(p for p in parts if p) + "\n"


def _drawn(
    sample: GroundingSample, index: int, root: Path | None, truth: bool, answer: Sequence[float] | None
) -> str | None:
    """The image at `index` with the truth and/or the answer drawn, as a PNG data URL; None if unreadable."""
    from PIL import Image, ImageOps

    from univg.inference.draw import draw_box

    try:
        with Image.open(resolve_image(sample.images[index], root)) as opened:
            canvas = ImageOps.exif_transpose(opened).convert("RGB")
    except OSError:
        return None
    if truth:
        canvas = draw_box(canvas, box_to_pixels(sample.box, canvas.size), label="truth", color="lime")
    if answer is not None:
        canvas = draw_box(canvas, box_to_pixels(answer, canvas.size), label="answer", color="red")
    thumbnail = canvas.copy()
    thumbnail.thumbnail((THUMBNAIL, THUMBNAIL))
    return png_data_url(thumbnail)


def _example(score: SampleScore, sample: GroundingSample, parse: str, root: Path | None) -> str:
    box = score.boxes.get(parse)
    target = sample.target_image
    named = score.named_image
    elsewhere = score.box_image is not None and score.box_image not in sample.accepted_images
    figures = [
        figure(
            _drawn(sample, target, root, True, None if elsewhere else box),
            f"image {target + 1} (target)" + ("" if elsewhere or box is None else ", with the answer"),
        )
    ]
    if elsewhere and box is not None:
        figures.append(
            figure(
                _drawn(sample, score.box_image, root, False, box),
                f"image {score.box_image + 1} (named by the answer)",
            )
        )
    ious = ", ".join(f"{mode} {score.ious[mode]:.3f}" for mode in PARSE_MODES)
    if score.response is None:
        response = "(no prediction)"
    else:
        response = (
            score.response
            if len(score.response) <= MAX_RESPONSE_CHARS
            else score.response[:MAX_RESPONSE_CHARS] + " ..."
        )
    facts = [f"IoU: {ious}"]
    if named is not None:
        facts.append(f"names image {named + 1}" + ("" if score.image_ok else " (not the target)"))
    if score.error:
        facts.append(f"error: {score.error}")
    return (
        f'<div class="example"><h4>id {html.escape(sample.id)}</h4><div class="images">{"".join(figures)}</div>'
        f"<p><b>Question:</b> {html.escape(sample.question)}</p>"
        f"<pre>{html.escape(response)}</pre><p>{html.escape('; '.join(facts))}</p></div>"
    )


def worst(scores: Scores, parse: str, per_task: int) -> dict[str, list[SampleScore]]:
    """The worst answers of each task: lowest image-checked IoU, then lowest IoU; missing ones last."""
    by_task: dict[str, list[SampleScore]] = {}
    for score in scores.samples:
        by_task.setdefault(score.task, []).append(score)

    def badness(score: SampleScore) -> tuple[bool, float, float, tuple[bool, int, str]]:
        return (score.response is None, score.checked_iou(parse), score.ious[parse], id_order(score.id))

    return {task: sorted(items, key=badness)[:per_task] for task, items in by_task.items()}


def render_html(results: dict[str, Any], data: BenchmarkData, scores: Scores, *, examples: int = 3) -> str:
    table, notes = paper_table(results, data)
    samples = data.by_id()
    parts = [
        f"<h1>{html.escape(data.benchmark.name)}: {html.escape(results['label'])}</h1>",
        "<ul>"
        + "".join(
            f"<li>{html.escape(line[2:].replace('`', ''))}</li>" for line in _header_lines(results, data)
        )
        + "</ul>",
        "<h2>Acc@0.5 (%), in the paper's layout</h2>",
        table.html(),
        *(f"<p>{html.escape(note.replace(chr(92), ''))}</p>" for note in notes),
        "<h2>Parse modes and the image check (Acc@0.5, %)</h2>",
        modes_table(results, data).html(),
        f"<h2>All metrics ({html.escape(results['parse'])}, %)</h2>",
        metrics_table(results, data).html(),
        "<h2>Excluded and missing</h2>",
        "<pre>" + html.escape("\n".join(exclusions(results)).replace("**", "").replace("`", "")) + "</pre>",
    ]
    if examples > 0:
        parts.append(f"<h2>Worst {examples} predictions per task ({html.escape(results['parse'])})</h2>")
        worst_by_task = worst(scores, results["parse"], examples)
        for task in data.tasks():
            parts.append(f"<h3>{html.escape(task)}</h3>")
            parts.extend(
                _example(score, samples[score.id], results["parse"], data.image_root)
                for score in worst_by_task.get(task, [])
            )
    return page(f"univg eval: {data.benchmark.name}, {results['label']}", parts)


def write_reports(
    out_dir: str | os.PathLike[str],
    results: dict[str, Any],
    data: BenchmarkData,
    scores: Scores,
    *,
    examples: int = 3,
) -> dict[str, Path]:
    """Write results.json, report.md and report.html into `out_dir`; returns their paths."""
    folder = Path(out_dir)
    paths = {"results": folder / RESULTS_FILE, "markdown": folder / REPORT_MD, "html": folder / REPORT_HTML}
    texts = {
        "results": json.dumps(results, indent=2, ensure_ascii=False) + "\n",
        "markdown": render_markdown(results, data),
        "html": render_html(results, data, scores, examples=examples),
    }
    for name, text in texts.items():  # each file whole or not at all, never half written
        write_text_atomic(paths[name], text)
    return paths
