"""The paper's reference numbers (Acc@0.5, percent), transcribed exactly from UniVG-R1's tables.

Reports put them beside our own scores, so every number we publish sits next to the one it is
meant to reproduce. Each column names the benchmark and the task key our scorer reports it under.
Three models are kept: Qwen2-VL-7B (the base), Migician (the previous best) and UniVG-R1 itself.
"""

from __future__ import annotations

from dataclasses import dataclass

PAPER_MODELS = ("Qwen2-VL-7B", "Migician", "UniVG-R1")


@dataclass(frozen=True)
class PaperColumn:
    """One column of a paper table: the score of `task` on `benchmark`, headed `label`."""

    benchmark: str
    task: str
    label: str


@dataclass(frozen=True)
class PaperTable:
    """A table of the paper: one value per column per model, and its AVG column."""

    source: str
    title: str
    columns: tuple[PaperColumn, ...]
    values: dict[str, tuple[float, ...]]
    average: dict[str, float]

    def __post_init__(self) -> None:
        for model, row in self.values.items():
            if len(row) != len(self.columns):
                raise ValueError(
                    f"{self.source}: {model} has {len(row)} values for {len(self.columns)} columns"
                )

    def value(self, model: str, benchmark: str, task: str) -> float | None:
        """The paper's number for a model on one benchmark task, or None when the table has none."""
        for column, value in zip(self.columns, self.values.get(model, ()), strict=False):
            if column.benchmark == benchmark and column.task == task:
                return value
        return None

    def columns_of(self, benchmark: str) -> tuple[PaperColumn, ...]:
        return tuple(c for c in self.columns if c.benchmark == benchmark)


def _mig(task: str, label: str) -> PaperColumn:
    return PaperColumn("mig-bench", task, label)


MIG_BENCH_TABLE = PaperTable(
    source="Table 1",
    title="MIG-Bench (revised), Acc@0.5",
    columns=(
        _mig("diff", "Static"),
        _mig("view_diff", "Robust"),
        _mig("common_object", "Common"),
        _mig("object_tracking", "OT"),
        _mig("multi_view", "MV"),
        _mig("region", "Region"),
        _mig("refer_grounding", "Refer"),
        _mig("group_grounding", "GG"),
        _mig("reasoning", "Reason"),
        _mig("correspondence", "Co-Re"),
    ),
    values={
        "Qwen2-VL-7B": (29.92, 36.17, 43.07, 14.55, 9.38, 15.54, 29.29, 63.51, 44.33, 16.24),
        "Migician": (70.64, 45.74, 72.76, 67.82, 60.07, 72.57, 75.76, 84.12, 52.58, 33.33),
        "UniVG-R1": (71.97, 58.51, 93.13, 76.36, 66.32, 81.71, 82.83, 88.04, 62.89, 44.44),
    },
    average={"Qwen2-VL-7B": 30.20, "Migician": 63.54, "UniVG-R1": 72.64},
)

ZERO_SHOT_TABLE = PaperTable(
    source="Table 2",
    title="Zero-shot reasoning grounding, Acc@0.5",
    columns=(
        PaperColumn("lisa", "val", "LISA(val)"),
        PaperColumn("lisa", "test", "LISA(test)"),
        PaperColumn("llmseg", "llmseg", "LLMSeg"),
        PaperColumn("reasonvos", "reasonvos", "ReasonVOS"),
        PaperColumn("revos", "revos", "ReVOS"),
    ),
    values={
        "Qwen2-VL-7B": (52.00, 49.17, 35.53, 9.83, 23.55),
        "Migician": (36.00, 32.09, 34.68, 33.41, 39.70),
        "UniVG-R1": (64.00, 59.69, 50.60, 58.73, 60.03),
    },
    average={"Qwen2-VL-7B": 34.02, "Migician": 35.18, "UniVG-R1": 58.61},
)

REFCOCO_TABLE = PaperTable(
    source="Table 3",
    title="RefCOCO / RefCOCO+ / RefCOCOg, Acc@0.5",
    columns=(
        PaperColumn("refcoco", "val", "RefCOCO val"),
        PaperColumn("refcoco", "testA", "RefCOCO testA"),
        PaperColumn("refcoco", "testB", "RefCOCO testB"),
        PaperColumn("refcoco+", "val", "RefCOCO+ val"),
        PaperColumn("refcoco+", "testA", "RefCOCO+ testA"),
        PaperColumn("refcoco+", "testB", "RefCOCO+ testB"),
        PaperColumn("refcocog", "val", "RefCOCOg val"),
        PaperColumn("refcocog", "test", "RefCOCOg test"),
    ),
    values={
        "Qwen2-VL-7B": (91.70, 93.60, 87.30, 85.80, 90.50, 79.50, 87.30, 87.80),
        "Migician": (91.62, 93.49, 87.22, 86.13, 91.06, 79.93, 88.06, 87.80),
        "UniVG-R1": (91.64, 93.11, 87.16, 85.91, 90.53, 80.04, 88.67, 88.56),
    },
    average={"Qwen2-VL-7B": 87.96, "Migician": 88.16, "UniVG-R1": 88.20},
)

PAPER_TABLES: tuple[PaperTable, ...] = (MIG_BENCH_TABLE, ZERO_SHOT_TABLE, REFCOCO_TABLE)


def table_for(benchmark: str) -> PaperTable | None:
    """The paper table that holds a benchmark's numbers, or None (our synthetic world has none)."""
    for table in PAPER_TABLES:
        if table.columns_of(benchmark):
            return table
    return None
