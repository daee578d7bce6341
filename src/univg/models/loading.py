"""Loading Qwen2-VL and Qwen2.5-VL checkpoints, ours or published, with their coordinate system.

One code path for every checkpoint: a hub id or a local directory (the tiny model included), with
dtype, device map, attention implementation and an optional LoRA adapter. What a family writes boxes
in comes with the model, so no caller has to guess it: Qwen2-VL writes integers 0..1000, Qwen2.5-VL
absolute pixels of the resized image.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from univg.core.boxes import CoordSystem
from univg.core.errors import UnivgError, UsageError
from univg.core.resize import DEFAULT_MAX_PIXELS, DEFAULT_MIN_PIXELS
from univg.models.checkpoint import ADAPTER_CONFIG_FILE, ModelLoadError, check_checkpoint, read_json_file

# Imported here, not lazily: importing this module must register the processor with AutoProcessor, so
# TRL can reload a checkpoint directory we wrote from its path.
from univg.models.processor import UnivgQwenVLProcessor, load_processor

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel

logger = logging.getLogger(__name__)

# model_type -> how the family writes boxes.
FAMILY_COORDS: dict[str, CoordSystem] = {"qwen2_vl": CoordSystem.QWEN2VL, "qwen2_5_vl": CoordSystem.PIXELS}
_MODEL_CLASSES = {
    "qwen2_vl": "Qwen2VLForConditionalGeneration",
    "qwen2_5_vl": "Qwen2_5_VLForConditionalGeneration",
}
DTYPES = ("auto", "float32", "bfloat16", "float16")


class UnsupportedModelError(ModelLoadError):
    """A checkpoint of an architecture univg does not run."""


class LoadedModel(NamedTuple):
    """A model ready for inference or training, its processor, and how it writes boxes."""

    model: PreTrainedModel
    processor: UnivgQwenVLProcessor
    coords: CoordSystem


def _looks_like_hub_id(name: str) -> bool:
    """`owner/name` and nothing else; anything else is meant as a local path."""
    parts = name.split("/")
    return len(parts) == 2 and all(parts) and not name.startswith((".", "~")) and not Path(name).exists()


def _config_dict(name: str, hub_kwargs: dict[str, Any]) -> dict[str, Any]:
    """The raw config of a checkpoint, read without instantiating any model-specific class."""
    from transformers import PretrainedConfig

    try:
        config, _ = PretrainedConfig.get_config_dict(name, **hub_kwargs)
    except OSError as exc:
        raise ModelLoadError(
            f"{name!r} is neither a local checkpoint directory nor loadable from the Hugging Face Hub "
            f"or its cache ({exc})"
        ) from None
    return config


def model_family(config: dict[str, Any] | Any, name: str = "model") -> str:
    """The supported `model_type` of a config (dict or object), or `UnsupportedModelError`."""
    model_type = config.get("model_type") if isinstance(config, dict) else getattr(config, "model_type", None)
    if model_type not in FAMILY_COORDS:
        supported = ", ".join(f"{t} ({_MODEL_CLASSES[t]})" for t in FAMILY_COORDS)
        raise UnsupportedModelError(
            f"{name!r} is a {model_type or 'model of unknown type'} checkpoint; univg runs only {supported}"
        )
    return str(model_type)


def coord_system(config: dict[str, Any] | Any) -> CoordSystem:
    """How a model of this config writes boxes."""
    return FAMILY_COORDS[model_family(config)]


def _resolve_dtype(dtype: str | torch.dtype) -> str | torch.dtype:
    import torch

    if isinstance(dtype, torch.dtype) or dtype == "auto":
        return dtype
    if dtype not in DTYPES:
        raise UsageError(f"{{option}} {dtype!r} is not one of {DTYPES} or a torch.dtype", option="dtype")
    return getattr(torch, dtype)


def load_model_and_processor(
    path_or_hub_id: str | Path,
    *,
    dtype: str | torch.dtype = "auto",
    device_map: str | dict[str, Any] | None = None,
    attn_implementation: str | None = None,
    adapter: str | Path | None = None,
    merge_adapter: bool = True,
    min_pixels: int = DEFAULT_MIN_PIXELS,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    revision: str | None = None,
    local_files_only: bool = False,
    quantization_config: Any = None,
) -> LoadedModel:
    """Load a Qwen2-VL / Qwen2.5-VL checkpoint in eval mode, with its processor and coordinate system.

    `path_or_hub_id` is a local directory (a full checkpoint, or a LoRA adapter directory whose
    adapter_config.json names its base) or a hub id. `adapter` adds a LoRA adapter on top; with
    `merge_adapter` it is folded into the weights, which makes generation as fast as the base model.
    `min_pixels` / `max_pixels` set the processor's image budget (the paper trains at 401,408).
    `quantization_config` (a transformers BitsAndBytesConfig) loads the weights quantized, for QLoRA.
    """
    name = str(path_or_hub_id)
    hub_kwargs: dict[str, Any] = {"local_files_only": local_files_only}
    if revision is not None:
        hub_kwargs["revision"] = revision
    base = name

    def supported(config: dict[str, Any]) -> None:
        model_family(config, name)

    if not _looks_like_hub_id(name) and check_checkpoint(Path(name), supported) == "adapter":
        if adapter is not None:
            raise ModelLoadError(f"{name!r} is itself a LoRA adapter; do not pass another adapter")
        adapter = name
        base = read_json_file(Path(name) / "adapter_config.json").get("base_model_name_or_path") or ""
        if not base:
            raise ModelLoadError(f"{name!r}: adapter_config.json does not name its base model")
        if not _looks_like_hub_id(base):
            check_checkpoint(Path(base), supported)
    if adapter is not None and not _looks_like_hub_id(str(adapter)):
        folder = Path(adapter)
        if folder.is_dir() and not (folder / ADAPTER_CONFIG_FILE).is_file():
            raise ModelLoadError(
                f"{str(adapter)!r} is not a LoRA adapter directory: it holds no {ADAPTER_CONFIG_FILE}",
                option="adapter",
                hint="check {option}",
            )
        check_checkpoint(folder)

    family = model_family(_config_dict(base, hub_kwargs), base)
    import transformers

    processor_source = base
    if adapter is not None:
        # Trainers save the processor next to the adapter; it wins over the base's when complete.
        saved = Path(str(adapter))
        has_images = any((saved / f).is_file() for f in ("processor_config.json", "preprocessor_config.json"))
        if has_images and (saved / "tokenizer_config.json").is_file():
            processor_source = str(adapter)
    # The processor first: it is quick, so a broken tokenizer fails before the weights are read.
    with _library_errors(processor_source, "processor"):
        processor = load_processor(
            processor_source, min_pixels=min_pixels, max_pixels=max_pixels, **hub_kwargs
        )
    model_class = getattr(transformers, _MODEL_CLASSES[family])
    torch_dtype = _resolve_dtype(dtype)
    with _library_errors(base, "weights"):
        model = model_class.from_pretrained(
            base,
            dtype=torch_dtype,
            device_map=device_map,
            attn_implementation=attn_implementation,
            **({"quantization_config": quantization_config} if quantization_config is not None else {}),
            **hub_kwargs,
        )
    if adapter is not None:
        model = _with_adapter(model, str(adapter), merge=merge_adapter)
    model.eval()
    logger.info("loaded %s (%s, %s, boxes in %s)", name, family, model.dtype, FAMILY_COORDS[family].value)
    return LoadedModel(model=model, processor=processor, coords=FAMILY_COORDS[family])


@contextmanager
def _library_errors(source: str, part: str) -> Iterator[None]:
    """Whatever transformers raises on a checkpoint it cannot use, as a `ModelLoadError` naming it.

    The folder was checked before (`check_checkpoint`), so what is left is damage inside a file (a
    corrupt tokenizer.json, tensors of the wrong shape) or, for hub ids, the hub itself.
    """
    try:
        yield
    except UnivgError:
        raise
    except Exception as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise ModelLoadError(f"{source!r}: its {part} cannot be loaded: {reason[:500]}") from exc


def _with_adapter(model: PreTrainedModel, adapter: str, *, merge: bool) -> Any:
    """`model` with a LoRA adapter applied (merged into the weights when `merge`)."""
    from peft import PeftModel

    try:
        peft_model = PeftModel.from_pretrained(model, adapter)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot load adapter {adapter!r}: {exc}") from None
    return peft_model.merge_and_unload() if merge else peft_model
