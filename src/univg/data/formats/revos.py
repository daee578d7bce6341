"""ReVOS grounding (UniVG-R1's ``ReVOS_eval.json``).

Each record: video_id (a folder of frames under the image root), frames (indices into the folder's
frames in playback order), question, bbox_list (a pixel box per sampled frame). The frame files are
listed from the folder, so this format needs the images even to build paths; the official scripts
ground the third sampled frame.
"""

from __future__ import annotations

from typing import Any

from univg.data.formats.base import BAD_FIELD, FormatSpec, RecordContext, RecordProblem
from univg.data.formats.zero_shot import target_frame_box, video_question
from univg.data.images import VIDEO_TARGET_FRAME
from univg.data.schema import GroundingSample

SOURCE = "revos"


def _frame_paths(video_id: str, frames: list[int], ctx: RecordContext) -> list[str] | None:
    """The sampled frames' paths, relative to the image root (None without a root)."""
    if not ctx.inspector.enabled:
        return None
    listed = ctx.inspector.frames(video_id)
    if isinstance(listed, RecordProblem):
        ctx.add(listed.kind, "video_id", listed.message)
        return None
    outside = [i for i in frames if not 0 <= i < len(listed)]
    if outside:
        ctx.add(
            BAD_FIELD, "frames", f"frame indices {outside} outside the {len(listed)} frames of {video_id}"
        )
        return None
    paths = [listed[i] for i in frames]
    for position, path in enumerate(paths):
        ctx.check_image(path, f"frames[{position}]")
    return paths


def read(record: dict[str, Any], ctx: RecordContext) -> list[GroundingSample]:
    video_id = ctx.field(record, "video_id", str)
    frames = ctx.field(record, "frames", list)
    question = ctx.field(record, "question", str)
    boxes = ctx.field(record, "bbox_list", list)
    if frames is not None and not all(isinstance(i, int) and not isinstance(i, bool) for i in frames):
        ctx.add(BAD_FIELD, "frames", f"expected frame indices, got {frames!r:.80}")
        frames = None
    target = ctx.target(VIDEO_TARGET_FRAME, len(frames), "frames") if frames is not None else None
    paths = _frame_paths(video_id, frames, ctx) if video_id is not None and frames is not None else None
    box = None
    if boxes is not None and target is not None:
        box = target_frame_box(boxes, target, paths[target] if paths is not None else None, ctx)
    if not ctx.ok or box is None or paths is None or target is None or question is None:
        return []
    extra = {"instruction": question, "video_id": video_id}
    return [
        ctx.sample(SOURCE, paths, video_question(question), target, box, frame_indices=frames, extra=extra)
    ]


FORMAT = FormatSpec(
    name=SOURCE,
    description="ReVOS (UniVG-R1 zero-shot): video_id frame folder, frames, question, bbox_list pixels",
    read=read,
    needs_images=True,
)
