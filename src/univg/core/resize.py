"""Qwen2-VL's image resizing rule, as pure arithmetic.

The processor resizes every image so both sides are multiples of 28 (14-pixel patches merged 2x2) and
the pixel count lies in [min_pixels, max_pixels]. Qwen2.5-VL boxes are absolute pixels of *this*
resized image, so prompt building and parsing need the same numbers the processor uses.
"""

from __future__ import annotations

import math

from univg.core.errors import UsageError

PATCH_FACTOR = 28
DEFAULT_MIN_PIXELS = 56 * 56
# The paper's training setting (and the official training scripts); the processor's own default is
# 14 * 14 * 4 * 1280 = 1,003,520 and the official zero-shot scripts used 640,000.
DEFAULT_MAX_PIXELS = 401_408
MAX_ASPECT_RATIO = 200


def check_pixel_budget(min_pixels: int, max_pixels: int) -> None:
    """A `UsageError` naming the option unless 1 <= min_pixels <= max_pixels."""
    if min_pixels < 1:
        raise UsageError(f"{{option}} must be at least 1, got {min_pixels}", option="min_pixels")
    if max_pixels < min_pixels:
        raise UsageError(
            f"{{option}} must be at least min_pixels ({min_pixels}), got {max_pixels}", option="max_pixels"
        )


def smart_resize(
    height: int,
    width: int,
    factor: int = PATCH_FACTOR,
    min_pixels: int = DEFAULT_MIN_PIXELS,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> tuple[int, int]:
    """The (height, width) Qwen2-VL's processor resizes an image of `height` x `width` to."""
    check_pixel_budget(min_pixels, max_pixels)
    if height <= 0 or width <= 0:
        raise ValueError(f"image size must be positive, got {height}x{width}")
    ratio = max(height, width) / min(height, width)
    if ratio > MAX_ASPECT_RATIO:
        raise ValueError(f"aspect ratio must be below {MAX_ASPECT_RATIO}, got {ratio:.1f}")
    h_bar = round(height / factor) * factor
    w_bar = round(width / factor) * factor
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def resized_size(
    size: tuple[int, int], *, min_pixels: int = DEFAULT_MIN_PIXELS, max_pixels: int = DEFAULT_MAX_PIXELS
) -> tuple[int, int]:
    """The (width, height) the processor resizes an image of (width, height) `size` to.

    What Qwen2.5-VL pixel boxes refer to. An already resized size stays as it is.
    """
    width, height = size
    new_height, new_width = smart_resize(height, width, min_pixels=min_pixels, max_pixels=max_pixels)
    return new_width, new_height


def image_token_count(
    size: tuple[int, int],
    *,
    min_pixels: int = DEFAULT_MIN_PIXELS,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    merge_size: int = 2,
    patch_size: int = 14,
) -> int:
    """How many tokens the LLM sees for an image of (width, height) `size` (resized or not).

    The processor resizes it (`smart_resize`), cuts it into patch_size patches and merges
    merge_size x merge_size of them into one token.
    """
    width, height = size
    new_height, new_width = smart_resize(
        height, width, factor=patch_size * merge_size, min_pixels=min_pixels, max_pixels=max_pixels
    )
    return (new_height // patch_size) * (new_width // patch_size) // (merge_size * merge_size)
