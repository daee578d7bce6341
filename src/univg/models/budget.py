"""A loaded processor's pixel budget, and what an image costs in tokens under it.

The predictor (to refuse prompts that cannot fit) and SFT (to drop conversations longer than
`max_length`) count image tokens the same way, from image sizes alone. No transformers import: the
processor is only read.
"""

from __future__ import annotations

from typing import Any

from univg.core.resize import image_token_count


def pixel_budget(processor: Any) -> tuple[int, int]:
    """(min_pixels, max_pixels) the processor resizes every image into."""
    size = processor.image_processor.size
    return int(size.shortest_edge), int(size.longest_edge)


def image_tokens(processor: Any, size: tuple[int, int]) -> int:
    """How many tokens an image of (width, height) `size` becomes in the sequence this processor builds."""
    min_pixels, max_pixels = pixel_budget(processor)
    image_processor = processor.image_processor
    return image_token_count(
        size,
        min_pixels=min_pixels,
        max_pixels=max_pixels,
        merge_size=int(image_processor.merge_size),
        patch_size=int(image_processor.patch_size),
    )
