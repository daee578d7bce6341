"""The HTML and figure toolkit of every report (`univg eval`, `univg demo`): tables, pages, images.

Reports are single files that can be mailed or archived: images and figures are embedded as data URLs,
and the page carries its own style, with no external assets.
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from univg.data.files import atomic_write

# What every report folder holds: the numbers, and the same for people in two forms.
RESULTS_FILE = "results.json"
REPORT_MD = "report.md"
REPORT_HTML = "report.html"

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.example { border-top: 1px solid #ddd; padding: 0.5em 0; }
.images { display: flex; gap: 1em; flex-wrap: wrap; }
figure { margin: 0; } figcaption { font-size: 0.85em; color: #555; }
img { max-width: 100%; }
pre { white-space: pre-wrap; background: #f6f6f6; padding: 0.5em; max-width: 60em; }
.missing { width: 200px; height: 120px; background: #eee; display: flex; align-items: center;
  justify-content: center; color: #888; }
"""


@dataclass
class Table:
    """A table as header + rows of cell strings, rendered to markdown, HTML or fixed-width text."""

    header: list[str]
    rows: list[list[str]]

    def markdown(self) -> str:
        lines = ["| " + " | ".join(self.header) + " |", "|" + "---|" * len(self.header)]
        lines += ["| " + " | ".join(row) + " |" for row in self.rows]
        return "\n".join(lines)

    def html(self) -> str:
        head = "".join(f"<th>{html.escape(c)}</th>" for c in self.header)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in self.rows
        )
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"

    def text(self) -> str:
        widths = [max(len(r[i]) for r in [self.header, *self.rows]) for i in range(len(self.header))]
        return "\n".join(
            "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip()
            for r in [self.header, *self.rows]
        )


def png_data_url(source: Path | Any) -> str:
    """A PNG file, or a PIL image, as a data URL for an <img> tag."""
    if isinstance(source, Path):
        data = source.read_bytes()
    else:
        buffer = io.BytesIO()
        source.save(buffer, format="PNG", optimize=True)
        data = buffer.getvalue()
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def figure(src: str | None, caption: str) -> str:
    """An embedded image with its caption (`src` a data URL, or None when the image is unavailable)."""
    body = (
        f'<img alt="{html.escape(caption)}" src="{src}">'
        if src
        else '<div class="missing">image not available</div>'
    )
    return f"<figure>{body}<figcaption>{html.escape(caption)}</figcaption></figure>"


def page(title: str, parts: list[str]) -> str:
    """A standalone HTML page from body fragments."""
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{STYLE}</style></head><body>\n" + "\n".join(parts) + "\n</body></html>\n"
    )


def save_figure(fig: Any, path: Path, dpi: int = 90) -> Path:
    """Save a matplotlib figure as PNG and close it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    try:
        with atomic_write(path, binary=True) as handle:
            fig.savefig(handle, dpi=dpi, format="png")
    finally:
        plt.close(fig)
    return path
