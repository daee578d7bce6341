"""RefCOCO / RefCOCO+ / RefCOCOg in VLM-R1's layout (``rec_jsons_processed``).

Each record: image (path under the COCO root), problem (the referring expression), solution (box in
pixels of the original image) and usually normalized_solution (0..1000). The pixel box is the ground
truth the VLM-R1 evaluation scores against, so it is used whenever the image is there to measure;
without images only normalized_solution can be checked. The split (refcoco, refcoco+, refcocog)
comes from the file name, as VLM-R1 names them (refcoco_*, refcocop_*, refcocog_*).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from univg.core.boxes import CoordSystem
from univg.data.formats.base import FormatSpec, RecordContext, clean_question
from univg.data.schema import GroundingSample

SOURCE = "refcoco"
COCO_MARKERS = ("train2014/COCO_train2014_", "COCO_train2014_")


def looks_like_refcoco(images: list[str]) -> bool:
    """A single COCO train2014 image: how the official code tells RefCOCO items from the rest."""
    return len(images) == 1 and any(marker in images[0] for marker in COCO_MARKERS)


def split_name(path: str) -> str:
    """refcoco, refcoco+ or refcocog, from a VLM-R1 file name."""
    name = Path(path).name.lower()
    if "refcocog" in name:
        return "refcocog"
    if "refcocop" in name or "refcoco+" in name:
        return "refcoco+"
    return "refcoco"


def read(record: dict[str, Any], ctx: RecordContext) -> list[GroundingSample]:
    image = ctx.field(record, "image", str)
    problem = ctx.field(record, "problem", str)
    solution = ctx.field(record, "solution", (list, str))
    normalized = ctx.field(record, "normalized_solution", (list, str), required=False)
    size = None
    if image is not None:
        ctx.check_image(image, "image")
        size = ctx.image_size(image)
    box = None
    if solution is not None:
        box = ctx.box(solution, "solution", CoordSystem.PIXELS, size)
    if normalized is not None:
        normalized_box = ctx.box(normalized, "normalized_solution", CoordSystem.QWEN2VL)
        box = box if size is not None else normalized_box
    if not ctx.ok or box is None or image is None or problem is None:
        return []
    return [ctx.sample(split_name(ctx.source_path), [image], clean_question(problem), 0, box)]


FORMAT = FormatSpec(
    name=SOURCE,
    description="RefCOCO/+/g in VLM-R1's layout: image, problem, solution (pixels), normalized_solution",
    read=read,
)
