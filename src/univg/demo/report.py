"""The demo's report: the Table-4 layout, GRPO curves, difficulty shares and a gallery of predictions.

DIR/report.md links the figures under DIR/figures/; DIR/report.html embeds them, so it can be mailed
on its own; DIR/results.json holds every number shown.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import TYPE_CHECKING, Any

from univg.demo.pipeline import DemoResult, Stage, write_results

if TYPE_CHECKING:
    from PIL import Image

# Ground truth first, then one colour per row of the table.
GT_COLOUR = "lime"
STAGE_COLOURS = ("gray", "deepskyblue", "orange", "red")
SCALE = 3  # gallery panels are the 112 px images drawn three times larger
GAP = 6
REWARD_KEY = "rewards/accuracy_reward/mean"
LEVELS = ("easy", "medium", "hard")


def table_rows(result: DemoResult) -> tuple[list[str], list[list[str]]]:
    """The header and rows of the paper's Table 4 layout: one row per stage, every task, then AVG."""
    header = ["Model", *result.tasks, "AVG"]
    rows = [
        [stage.label, *(f"{stage.accuracy.get(t, 0.0):.1f}" for t in result.tasks), f"{stage.average:.1f}"]
        for stage in result.stages
    ]
    return header, rows


def markdown_table(result: DemoResult) -> str:
    header, rows = table_rows(result)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def text_table(result: DemoResult) -> str:
    """The table in fixed-width columns, for the terminal."""
    header, rows = table_rows(result)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)) for r in [header, *rows]
    )


def _series(stage: Stage, key: str) -> tuple[list[float], list[float]]:
    points = [(e["step"], e[key]) for e in stage.log_history if key in e and "step" in e]
    return [float(s) for s, _ in points], [float(v) for _, v in points]


def reward_rise(stage: Stage) -> tuple[float, float] | None:
    """Mean accuracy reward over the first and the last quarter of a GRPO run's steps (the issue's check)."""
    _, values = _series(stage, REWARD_KEY)
    if not values:
        return None
    window = max(1, len(values) // 4)
    return sum(values[:window]) / window, sum(values[-window:]) / window


def reward_lines(result: DemoResult) -> list[str]:
    """One sentence per GRPO run: did its mean accuracy reward rise over its own start?"""
    lines = []
    for stage in result.stages:
        rise = reward_rise(stage) if stage.key.startswith("grpo") else None
        if rise is not None:
            verdict = "rose" if rise[1] > rise[0] else "did not rise"
            lines.append(
                f"{stage.label}: mean accuracy reward {rise[0]:.3f} over the first quarter of its steps, "
                f"{rise[1]:.3f} over the last ({verdict})."
            )
    return lines


def grpo_figures(result: DemoResult, folder: Path) -> dict[str, Path]:
    """Reward and accuracy curves of both GRPO runs, and easy / medium / hard shares (the paper's Fig. 3)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    runs = [s for s in result.stages if s.key.startswith("grpo")]
    paths: dict[str, Path] = {}
    figure, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    for stage, colour in zip(runs, STAGE_COLOURS[2:], strict=False):
        for axis, key, title in (
            (axes[0], "reward", "total reward"),
            (axes[1], REWARD_KEY, "accuracy reward"),
        ):
            steps, values = _series(stage, key)
            axis.plot(steps, values, color=colour, label=stage.label, marker=".")
            axis.set_title(title)
            axis.set_xlabel("step")
    axes[1].legend()
    figure.tight_layout()
    paths["rewards"] = folder / "grpo_rewards.png"
    figure.savefig(paths["rewards"], dpi=90)
    plt.close(figure)

    figure, axes = plt.subplots(1, len(runs), figsize=(5 * len(runs), 3.5), squeeze=False)
    for axis, stage in zip(axes[0], runs, strict=True):
        series = [_series(stage, f"difficulty/{level}") for level in LEVELS]
        steps = series[0][0]
        if steps and all(len(values) == len(steps) for _, values in series):
            axis.stackplot(steps, *(values for _, values in series), labels=LEVELS, alpha=0.8)
        axis.set_title(f"{stage.label}: group difficulty shares")
        axis.set_xlabel("step")
        axis.set_ylim(0, 1)
        axis.legend(loc="upper right")
    figure.tight_layout()
    paths["difficulty"] = folder / "grpo_difficulty.png"
    figure.savefig(paths["difficulty"], dpi=90)
    plt.close(figure)
    return paths


def _stage_boxes(stage: Stage, data: Any) -> dict[str, Any]:
    """The box each held-out prediction of a stage names, canonical 0..1, by sample id."""
    import json

    from univg.core.boxes import CoordSystem
    from univg.evaluation import read_predictions, score_predictions

    if stage.eval_dir is None:
        return {}
    run = json.loads((stage.eval_dir / "run.json").read_text(encoding="utf-8"))
    scores = score_predictions(
        data,
        read_predictions(stage.eval_dir / "predictions.jsonl"),
        parse=run["parse"],
        coords=CoordSystem.parse(run.get("coords", "qwen2vl")),
        min_pixels=run["min_pixels"],
        max_pixels=run["max_pixels"],
    )
    return {s.id: (s.boxes.get(run["parse"]), s.checked_iou(run["parse"])) for s in scores.samples}


def _panel(image: Image.Image, box: Any, colour: str, label: str) -> Image.Image:
    from univg.data.prompts import box_to_pixels
    from univg.inference.draw import draw_box

    big = image.resize((image.width * SCALE, image.height * SCALE))
    if box is None:
        return draw_box(big, (0, 0, 0, 0), label=f"{label}: no box", color=colour)
    return draw_box(big, box_to_pixels(box, big.size), label=label, color=colour)


def gallery(result: DemoResult, eval_file: Path, folder: Path, per_task: int = 1) -> list[dict[str, Any]]:
    """The first held-out sample of each task drawn once per row: ground truth, then each stage's box."""
    from PIL import Image

    from univg.evaluation import load_benchmark

    data = load_benchmark("synthetic", str(eval_file))
    boxes = {stage.key: _stage_boxes(stage, data) for stage in result.stages}
    chosen: dict[str, list[Any]] = {}
    for sample in data.samples:
        if len(chosen.setdefault(sample.task, [])) < per_task:
            chosen[sample.task].append(sample)
    folder.mkdir(parents=True, exist_ok=True)
    items = []
    for task in result.tasks:
        for sample in chosen.get(task, []):
            with Image.open(sample.target_path) as opened:
                image = opened.convert("RGB")
            panels = [_panel(image, sample.box, GT_COLOUR, "truth")]
            ious = {}
            for stage, colour in zip(result.stages, STAGE_COLOURS, strict=False):
                box, iou = boxes[stage.key].get(sample.id, (None, 0.0))
                ious[stage.label] = iou
                panels.append(_panel(image, box, colour, f"{stage.label} {iou:.2f}"))
            width = sum(p.width for p in panels) + GAP * (len(panels) - 1)
            strip = Image.new("RGB", (width, panels[0].height), "white")
            for number, panel in enumerate(panels):
                strip.paste(panel, (number * (panel.width + GAP), 0))
            path = folder / f"gallery_{sample.id}.png"
            strip.save(path, format="PNG")
            items.append(
                {"id": sample.id, "task": task, "question": sample.question, "path": path, "iou": ious}
            )
    return items


def _embedded(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def render_markdown(result: DemoResult, figures: dict[str, Path], items: list[dict[str, Any]]) -> str:
    rel = result.out
    lines = [
        "# univg demo: UniVG-R1 on the synthetic world",
        "",
        f"Held-out Acc@0.5 (%), {sum(1 for _ in result.tasks)} tasks; run took {result.seconds / 60:.1f} min.",
        "The base answers the plain prompt (as Qwen2-VL); every later stage the UniVG-R1 reasoning prompt.",
        "",
        markdown_table(result),
        "",
        "## GRPO training",
        "",
        *(f"- {line}" for line in reward_lines(result)),
        "",
        f"![rewards]({figures['rewards'].relative_to(rel)})",
        "",
        f"![difficulty shares]({figures['difficulty'].relative_to(rel)})",
        "",
        "## Gallery (truth in green; IoU after each stage's name)",
        "",
    ]
    for item in items:
        lines += [
            f"**{item['task']}**: {item['question']}",
            "",
            f"![{item['id']}]({item['path'].relative_to(rel)})",
            "",
        ]
    return "\n".join(lines)


def render_html(result: DemoResult, figures: dict[str, Path], items: list[dict[str, Any]]) -> str:
    header, rows = table_rows(result)
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>univg demo</title>",
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}td:first-child{text-align:left}"
        "img{max-width:100%}</style></head><body>",
        "<h1>univg demo: UniVG-R1 on the synthetic world</h1>",
        f"<p>Held-out Acc@0.5 (%); run took {result.seconds / 60:.1f} min. The base answers the plain "
        "prompt (as Qwen2-VL); every later stage the UniVG-R1 reasoning prompt.</p>",
        f"<table><tr>{head}</tr>{body}</table>",
        "<h2>GRPO training</h2>",
        "<ul>" + "".join(f"<li>{html.escape(line)}</li>" for line in reward_lines(result)) + "</ul>",
        f"<img src='{_embedded(figures['rewards'])}' alt='rewards'>",
        f"<img src='{_embedded(figures['difficulty'])}' alt='difficulty shares'>",
        "<h2>Gallery (truth in green; IoU after each stage's name)</h2>",
    ]
    for item in items:
        parts.append(
            f"<p><b>{html.escape(item['task'])}</b>: {html.escape(item['question'])}</p>"
            f"<img src='{_embedded(item['path'])}' alt='{html.escape(item['id'])}'>"
        )
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(result: DemoResult, eval_file: Path, settings: dict[str, Any]) -> None:
    """DIR/report.md, DIR/report.html (figures embedded), DIR/results.json and DIR/figures/."""
    folder = result.out / "figures"
    figures = grpo_figures(result, folder)
    items = gallery(result, eval_file, folder, per_task=1)
    result.report_md.write_text(render_markdown(result, figures, items), encoding="utf-8")
    result.report_html.write_text(render_html(result, figures, items), encoding="utf-8")
    write_results(result, settings)
