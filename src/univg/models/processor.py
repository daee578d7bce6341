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

from importlib import resources
from typing import Any

from transformers import AutoProcessor, AutoTokenizer, Qwen2_5_VLConfig, Qwen2VLConfig
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil
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
        image_processor = Qwen2VLImageProcessorPil.from_pretrained(
            pretrained_model_name_or_path, **hub, **pixels
        )
        tokenizer = AutoTokenizer.from_pretrained(pretrained_model_name_or_path, **kwargs)
        return [image_processor, tokenizer]


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
    image_processor = Qwen2VLImageProcessorPil(min_pixels=min_pixels, max_pixels=max_pixels)
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


__all__ = ["UnivgQwenVLProcessor", "build_processor", "load_processor", "qwen2vl_chat_template"]
