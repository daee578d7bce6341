"""A Qwen2-VL / Qwen2.5-VL processor for images and text only, without torchvision.

The stock `Qwen2VLProcessor` always builds a video processor, which needs torchvision; torchvision is
not usable with the CPU torch our machines run. Video frames reach the model as images anyway (the
paper samples 6 frames and grounds in one of them), so an image processor (the PIL backend, the same
pixels on every machine) plus the tokenizer and the real chat template is all a grounding model needs.

Importing this module registers the processor with `AutoProcessor` for both families, so
`AutoProcessor.from_pretrained(directory)` (what TRL's trainers call when given a model path) loads a
directory this project wrote.
"""

from __future__ import annotations

import bisect
from importlib import resources
from typing import Any

import numpy as np
from transformers import AutoProcessor, AutoTokenizer, Qwen2_5_VLConfig, Qwen2VLConfig
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil, smart_resize
from transformers.models.qwen2_vl.processing_qwen2_vl import Qwen2VLProcessor

from univg.core.resize import DEFAULT_MAX_PIXELS, DEFAULT_MIN_PIXELS

# Keyword arguments of `from_pretrained` that say where files come from; both sub-loaders need them.
_HUB_KWARGS = ("cache_dir", "force_download", "local_files_only", "revision", "token", "subfolder", "proxies")


def qwen2vl_chat_template() -> str:
    """Qwen2-VL's chat template (byte-identical in Qwen2.5-VL), as TRL ships it.

    Using TRL's copy keeps TRL's template matching working: its SFT trainer swaps in the training
    variant (with generation markers for assistant-only loss) only for this exact text.
    """
    return (resources.files("trl") / "chat_templates" / "qwen2_5_vl.jinja").read_text(encoding="utf-8")


class BatchedQwen2VLImageProcessor(Qwen2VLImageProcessorPil):
    """The PIL image processor, vectorised over a batch of same-size images that need no resizing.

    The stock processor rescales, normalises and cuts patches one image at a time (about 3 ms for a
    112 px image, most of it call overhead); images that already have their resized size (the synthetic
    world's, or any image a caller resized) go through the same arithmetic as one array. Anything else
    takes the stock path. It saves under the stock name, so checkpoints load anywhere.
    """

    def _preprocess(  # type: ignore[override]
        self,
        images: list[np.ndarray],
        do_resize: bool,
        size: Any,
        resample: Any,
        do_rescale: bool,
        rescale_factor: float,
        do_normalize: bool,
        image_mean: Any,
        image_std: Any,
        patch_size: int,
        temporal_patch_size: int,
        merge_size: int,
        return_tensors: Any,
        **kwargs: Any,
    ) -> Any:
        shapes = {image.shape for image in images}
        if len(shapes) == 1 and do_rescale and do_normalize:
            _, height, width = next(iter(shapes))
            factor = patch_size * merge_size
            target = smart_resize(
                height, width, factor=factor, min_pixels=size.shortest_edge, max_pixels=size.longest_edge
            )
            if not do_resize or target == (height, width):
                normalized = _normalized(np.stack(images), rescale_factor, image_mean, image_std)
                return _patches(normalized, patch_size, temporal_patch_size, merge_size, return_tensors)
        return super()._preprocess(
            images, do_resize, size, resample, do_rescale, rescale_factor, do_normalize, image_mean, image_std,
            patch_size, temporal_patch_size, merge_size, return_tensors, **kwargs,
        )  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        output = super().to_dict()
        output["image_processor_type"] = "Qwen2VLImageProcessor"
        return output


def _normalized(images: np.ndarray, rescale_factor: float, image_mean: Any, image_std: Any) -> np.ndarray:
    """A (n, C, H, W) batch rescaled and normalised as the stock processor does, in float32."""
    mean = np.asarray(image_mean, dtype=np.float32).reshape(1, -1, 1, 1)
    std = np.asarray(image_std, dtype=np.float32).reshape(1, -1, 1, 1)
    return (images.astype(np.float32) * np.float32(rescale_factor) - mean) / std


def _patches(normalized: np.ndarray, patch: int, temporal: int, merge: int, return_tensors: Any) -> Any:
    """The flattened patches and grids of a normalised batch, in the order the stock processor writes."""
    from transformers import BatchFeature

    count, channels, height, width = normalized.shape
    grid_h, grid_w = height // patch, width // patch
    patches = normalized.reshape(
        count, channels, grid_h // merge, merge, patch, grid_w // merge, merge, patch
    )
    patches = np.transpose(patches, (0, 2, 5, 3, 6, 1, 4, 7))  # (n, gh, gw, mh, mw, C, ph, pw)
    patches = np.broadcast_to(
        patches[:, :, :, :, :, :, None], (*patches.shape[:6], temporal, *patches.shape[6:])
    )
    pixel_values = patches.reshape(count * grid_h * grid_w, channels * temporal * patch**2)
    grids = np.tile(np.array([[1, grid_h, grid_w]], dtype=np.int64), (count, 1))
    return BatchFeature(
        data={"pixel_values": np.ascontiguousarray(pixel_values), "image_grid_thw": grids},
        tensor_type=return_tensors,
    )


class UnivgQwenVLProcessor(Qwen2VLProcessor):
    """`Qwen2VLProcessor` with an image processor and a tokenizer, and no video processor."""

    def __init__(
        self,
        image_processor: Qwen2VLImageProcessorPil | None = None,
        tokenizer: Any = None,
        chat_template: str | None = None,
        **kwargs: Any,
    ) -> None:
        # Qwen2VLProcessor passes a third (video) argument on; ProcessorMixin pairs arguments with our two
        # attributes (image_processor, tokenizer), so that None is dropped.
        super().__init__(image_processor, tokenizer, chat_template=chat_template, **kwargs)

    @classmethod
    def _get_arguments_from_pretrained(
        cls, pretrained_model_name_or_path: Any, processor_dict: dict[str, Any] | None = None, **kwargs: Any
    ) -> list[Any]:
        """Load the PIL image processor (with `min_pixels` / `max_pixels`) and the tokenizer."""
        pixels = {key: kwargs.pop(key) for key in ("min_pixels", "max_pixels") if key in kwargs}
        hub = {key: kwargs[key] for key in _HUB_KWARGS if key in kwargs}
        image_processor = BatchedQwen2VLImageProcessor.from_pretrained(
            pretrained_model_name_or_path, **hub, **pixels
        )
        tokenizer = AutoTokenizer.from_pretrained(pretrained_model_name_or_path, **kwargs)
        return [image_processor, tokenizer]

    def _adjust_assistant_masks_indices(
        self, processed_dict: dict[str, Any], generation_indices: list[list[Any]]
    ) -> dict[str, Any]:
        """The assistant-token mask of each sequence, as ProcessorMixin computes it, one array per span.

        The stock version compares every token with every assistant span in a Python loop over tensor
        elements (about 5 ms per conversation, the largest cost of SFT collation); this is the same test
        done on the offset array at once.
        """
        offset_mapping = processed_dict.pop("offset_mapping")
        input_ids = processed_dict["input_ids"]
        replacement_offsets = processed_dict.pop("text_replacement_offsets", None)
        if replacement_offsets is None or len(replacement_offsets) == 0:
            replacement_offsets = [[]] * len(input_ids)
        masks = []
        for offsets, replaced, spans, ids in zip(
            offset_mapping, replacement_offsets, generation_indices, input_ids, strict=True
        ):
            pairs = np.asarray(offsets, dtype=np.int64).reshape(-1, 2)
            placeholder_ends = [r["span"][1] for r in replaced]
            chars_gained = [0] + [r["new_span"][1] - r["span"][1] for r in replaced]
            mask = np.zeros(len(ids), dtype=bool)
            for span in spans:
                start, end = (
                    char + chars_gained[bisect.bisect_right(placeholder_ends, char)] for char in span
                )
                mask |= (pairs[:, 0] < end) & (pairs[:, 1] > start)
            masks.append(mask.astype(np.int64).tolist())
        processed_dict["assistant_masks"] = masks
        return processed_dict


for _config in (Qwen2VLConfig, Qwen2_5_VLConfig):
    AutoProcessor.register(_config, UnivgQwenVLProcessor, exist_ok=True)


def build_processor(
    tokenizer: Any,
    *,
    min_pixels: int = DEFAULT_MIN_PIXELS,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    chat_template: str | None = None,
) -> UnivgQwenVLProcessor:
    """A new processor around `tokenizer` (used when writing a checkpoint, e.g. the tiny model)."""
    image_processor = BatchedQwen2VLImageProcessor(min_pixels=min_pixels, max_pixels=max_pixels)
    return UnivgQwenVLProcessor(
        image_processor, tokenizer, chat_template=chat_template or qwen2vl_chat_template()
    )


def load_processor(
    path_or_hub_id: str,
    *,
    min_pixels: int = DEFAULT_MIN_PIXELS,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    **kwargs: Any,
) -> UnivgQwenVLProcessor:
    """The processor of a checkpoint (ours or a published one), with the given pixel budget.

    A checkpoint that ships no chat template gets Qwen2-VL's, so prompts never fall back to a
    generic template silently.
    """
    processor = UnivgQwenVLProcessor.from_pretrained(
        path_or_hub_id, min_pixels=min_pixels, max_pixels=max_pixels, **kwargs
    )
    if not processor.chat_template:
        processor.chat_template = processor.tokenizer.chat_template or qwen2vl_chat_template()
    return processor


__all__ = [
    "BatchedQwen2VLImageProcessor",
    "UnivgQwenVLProcessor",
    "build_processor",
    "load_processor",
    "qwen2vl_chat_template",
]
