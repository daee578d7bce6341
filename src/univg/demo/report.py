"""The demo's report, a pure function of `DemoResults`: the Table-4 layout with 95% intervals, the
stage-over-stage differences, the GRPO curves, the difficulty shares (the paper's Fig. 3) and a gallery.

DIR/report.md links the figures under DIR/figures/; DIR/report.html embeds them, so it stands alone.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from univg.core.phi import BUCKETS
from univg.data.files import write_text_atomic
from univg.demo.results import ACCURACY_REWARD, DemoResults, StageResult
from univg.evaluation.intervals import Interval
from univg.evaluation.pages import REPORT_HTML, REPORT_MD, Table, figure, page, png_data_url, save_figure

GT_COLOUR = "lime"
STAGE_COLOURS = ("gray", "deepskyblue", "orange", "red")
SCALE = 3  # gallery panels are the 112 px images drawn three times larger
GAP = 6


def _ci(interval: Interval) -> str:
    return f"{interval.estimate:.1f} [{interval.low:.1f}, {interval.high:.1f}]"


def _delta(interval: Interval) -> str:
    return f"{interval.estimate:+.1f} [{interval.low:+.1f}, {interval.high:+.1f}]"


def accuracy_table(results: DemoResults) -> Table:
    """One row per stage, every task's Acc@0.5, then the averages with their 95% intervals."""
    header = ["Model", *results.tasks, "AVG [95% CI]", f"MIG {len(results.multi_image_tasks)} [95% CI]"]
    rows = [
        [
            stage.label,
            *(f"{stage.accuracy(t):.1f}" for t in results.tasks),
            _ci(stage.average(results.tasks)),
            _ci(stage.average(results.multi_image_tasks)),
        ]
        for stage in results.stages
    ]
    return Table(header, rows)


def verdict(interval: Interval) -> str:
    if interval.low > 0:
        return "better (interval above 0)"
    if interval.high < 0:
        return "worse (interval below 0)"
    return "no clear difference (interval holds 0)"


def differences_table(results: DemoResults) -> Table:
    """Each comparison with its paired-bootstrap interval, on all tasks and on the multi-image ones."""
    labels = {s.key: s.label for s in results.stages}
    rows = []
    for before, after in results.comparisons():
        overall = results.difference(before, after)
        multi = results.difference(before, after, results.multi_image_tasks)
        rows.append(
            [f"{labels[after]} vs {labels[before]}", _delta(overall), _delta(multi), verdict(overall)]
        )
    return Table(["comparison", "Δ AVG [95% CI]", "Δ MIG [95% CI]", "AVG"], rows)


def grpo_stages(results: DemoResults) -> list[StageResult]:
    return [s for s in results.stages if s.key.startswith("grpo")]


def training_lines(results: DemoResults) -> list[str]:
    """Per GRPO run: its accuracy reward and its easy / hard group shares, first quarter -> last."""
    lines = []
    for stage in grpo_stages(results):
        reward = stage.quarters(ACCURACY_REWARD)
        easy, hard = stage.quarters("difficulty/easy"), stage.quarters("difficulty/hard")
        phi = stage.quarters("difficulty/phi_mean")
        if reward is None or easy is None or hard is None or phi is None:
            continue
        lines.append(
            f"{stage.label}: accuracy reward {reward[0]:.3f} -> {reward[1]:.3f}, easy groups {easy[0]:.0%} -> "
            f"{easy[1]:.0%}, hard groups {hard[0]:.0%} -> {hard[1]:.0%}, mean phi {phi[0]:.2f} -> {phi[1]:.2f} "
            "(first quarter of the steps -> last)"
        )
    return lines


def naming_lines(results: DemoResults) -> list[str]:
    """Per stage: how often its held-out responses name the target (a chain about the asked object)."""
    single = [t for t in results.tasks if t not in results.multi_image_tasks]
    lines = []
    for stage in results.stages:
        shares = [
            (label, stage.naming(tasks))
            for label, tasks in (
                ("single-image", single),
                (f"MIG {len(results.multi_image_tasks)}", results.multi_image_tasks),
            )
        ]
        if all(share is None for _, share in shares):
            continue
        said = ", ".join(f"{label} {share:.0f}%" for label, share in shares if share is not None)
        lines.append(f"{stage.label}: responses that name the target: {said}")
    return lines


def terminal_summary(results: DemoResults) -> str:
    """What `univg demo` prints at the end: the table, the differences and the GRPO lines."""
    parts = [
        f"held-out Acc@0.5 (%), {sum(len(v) for v in results.stages[0].hits.values())} samples:",
        accuracy_table(results).text(),
        "",
        "differences (paired bootstrap, 95%):",
        differences_table(results).text(),
        "",
        *training_lines(results),
        *naming_lines(results),
    ]
    return "\n".join(parts)


# A step holds only a few prompt groups: its shares and rewards are averaged over the last steps to show a trend
# (the raw rewards are drawn faintly beneath).
SHARE_WINDOW = 20


def trailing_mean(values: list[float], window: int) -> list[float]:
    """Each value replaced by the mean of it and the up to `window - 1` values before it."""
    means, total = [], 0.0
    for index, value in enumerate(values):
        total += value - (values[index - window] if index >= window else 0.0)
        means.append(total / min(index + 1, window))
    return means


def write_figures(results: DemoResults, folder: Path) -> dict[str, Path]:
    """Reward curves of both GRPO runs, their phi, and the easy / medium / hard shares (Fig. 3)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = grpo_stages(results)
    paths: dict[str, Path] = {}
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.5))
    for stage, colour in zip(runs, STAGE_COLOURS[2:], strict=False):
        for axis, key, title in (
            (axes[0], "reward", "total reward"),
            (axes[1], ACCURACY_REWARD, "accuracy reward (IoU)"),
            (axes[2], "difficulty/phi_mean", "mean phi"),
        ):
            steps, values = stage.series(key)
            axis.plot(steps, values, color=colour, linewidth=0.6, alpha=0.3)
            axis.plot(
                steps, trailing_mean(values, SHARE_WINDOW), color=colour, label=stage.label, linewidth=1.5
            )
            axis.set_title(f"{title} (mean of the last {SHARE_WINDOW} steps)")
            axis.set_xlabel("step")
    axes[1].legend()
    paths["rewards"] = save_figure(fig, folder / "grpo_rewards.png")

    fig, axes = plt.subplots(1, max(1, len(runs)), figsize=(6 * max(1, len(runs)), 3.5), squeeze=False)
    for axis, stage in zip(axes[0], runs, strict=False):
        series = [stage.series(f"difficulty/{name}") for name in BUCKETS]
        steps = series[0][0]
        if steps and all(len(values) == len(steps) for _, values in series):
            axis.stackplot(
                steps, *(trailing_mean(values, SHARE_WINDOW) for _, values in series), labels=BUCKETS, alpha=0.8,
                colors=("tab:green", "tab:orange", "tab:red"),
            )  # fmt: skip
        axis.set_title(f"{stage.label}: easy / medium / hard groups (last {SHARE_WINDOW} steps)")
        axis.set_xlabel("step")
        axis.set_ylim(0, 1)
        axis.legend(loc="upper right")
    paths["difficulty"] = save_figure(fig, folder / "grpo_difficulty.png")
    return paths


def _panel(image: Any, box: list[float] | None, colour: str, label: str) -> Any:
    from univg.core.boxes import box_to_pixels
    from univg.inference.draw import draw_box

    big = image.resize((image.width * SCALE, image.height * SCALE))
    if box is None:
        return draw_box(big, (0, 0, 0, 0), label=f"{label}: no box", color=colour)
    return draw_box(big, box_to_pixels(box, big.size), label=label, color=colour)


def write_gallery(results: DemoResults, folder: Path) -> dict[str, Path]:
    """One strip per gallery sample: the truth, then each stage's box with its IoU."""
    from PIL import Image

    paths = {}
    for item in results.gallery:
        with Image.open(item.image) as opened:
            image = opened.convert("RGB")
        panels = [_panel(image, item.truth, GT_COLOUR, "truth")]
        for stage, colour in zip(results.stages, STAGE_COLOURS, strict=False):
            iou = item.ious.get(stage.key, 0.0)
            panels.append(_panel(image, item.boxes.get(stage.key), colour, f"{stage.label} {iou:.2f}"))
        strip = Image.new(
            "RGB", (sum(p.width for p in panels) + GAP * (len(panels) - 1), panels[0].height), "white"
        )
        for number, panel in enumerate(panels):
            strip.paste(panel, (number * (panel.width + GAP), 0))
        paths[item.id] = folder / f"gallery_{item.id}.png"
        paths[item.id].parent.mkdir(parents=True, exist_ok=True)
        strip.save(paths[item.id], format="PNG")
    return paths


INTRO = (
    "Held-out Acc@0.5 (%) on the demo's synthetic world. The base answers the plain prompt (as Qwen2-VL); "
    "every later stage the UniVG-R1 reasoning prompt. Intervals are 95% bootstrap intervals over the "
    "held-out samples (stratified by task); differences are paired (the same resampled samples for both "
    "models). MIG is the average of the ten MIG-Bench tasks (without referring)."
)
DIFFERS = (
    "The same command gives the same numbers on a machine with the same CPU instruction set and "
    "library versions (two threads always). Elsewhere the floating-point rounding differs, and the "
    "sampling of GRPO turns tiny differences into other trajectories: expect the GRPO rows to move "
    "within their intervals."
)


def render_markdown(
    results: DemoResults, figures: dict[str, Path], gallery: dict[str, Path], root: Path
) -> str:
    def rel(path: Path) -> str:
        return str(path.relative_to(root))

    lines = [
        "# univg demo: UniVG-R1 on the synthetic world",
        "",
        f"{INTRO} The run took {results.seconds / 60:.1f} min.",
        "",
        accuracy_table(results).markdown(),
        "",
        "## Differences",
        "",
        differences_table(results).markdown(),
        "",
        "## GRPO training",
        "",
        *(f"- {line}" for line in training_lines(results)),
        "",
        f"![rewards]({rel(figures['rewards'])})",
        "",
        f"![difficulty shares]({rel(figures['difficulty'])})",
        "",
        "## Naming the target",
        "",
        *(f"- {line}" for line in naming_lines(results)),
        "",
        "## Gallery (truth in green; IoU after each stage's name)",
        "",
    ]
    for item in results.gallery:
        lines += [f"**{item.task}**: {item.question}", "", f"![{item.id}]({rel(gallery[item.id])})", ""]
    lines += ["## Reproducing", "", DIFFERS, "", f"Machine: {results.machine}", ""]
    return "\n".join(lines)


def render_html(results: DemoResults, figures: dict[str, Path], gallery: dict[str, Path]) -> str:
    parts = [
        "<h1>univg demo: UniVG-R1 on the synthetic world</h1>",
        f"<p>{html.escape(INTRO)} The run took {results.seconds / 60:.1f} min.</p>",
        accuracy_table(results).html(),
        "<h2>Differences</h2>",
        differences_table(results).html(),
        "<h2>GRPO training</h2>",
        "<ul>" + "".join(f"<li>{html.escape(line)}</li>" for line in training_lines(results)) + "</ul>",
        figure(png_data_url(figures["rewards"]), "GRPO rewards and mean phi"),
        figure(png_data_url(figures["difficulty"]), "share of easy / medium / hard groups (Fig. 3)"),
        "<h2>Naming the target</h2>",
        "<ul>" + "".join(f"<li>{html.escape(line)}</li>" for line in naming_lines(results)) + "</ul>",
        "<h2>Gallery (truth in green; IoU after each stage's name)</h2>",
    ]
    for item in results.gallery:
        parts.append(figure(png_data_url(gallery[item.id]), f"{item.task}: {item.question}"))
    parts += [
        "<h2>Reproducing</h2>",
        f"<p>{html.escape(DIFFERS)}</p>",
        f"<pre>{html.escape(str(results.machine))}</pre>",
    ]
    return page("univg demo", parts)


def write_report(results: DemoResults, root: Path) -> dict[str, Path]:
    """DIR/results.json, DIR/report.md, DIR/report.html and DIR/figures/."""
    figures = write_figures(results, root / "figures")
    gallery = write_gallery(results, root / "figures")
    paths = {
        "results": results.write(root),
        "markdown": root / REPORT_MD,
        "html": root / REPORT_HTML,
    }
    write_text_atomic(paths["markdown"], render_markdown(results, figures, gallery, root))
    write_text_atomic(paths["html"], render_html(results, figures, gallery))
    return paths
