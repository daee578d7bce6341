import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize as reference_smart_resize

from univg.core.resize import DEFAULT_MAX_PIXELS, image_token_count, resized_size, smart_resize


@settings(max_examples=300)
@given(st.integers(1, 5000), st.integers(1, 5000), st.sampled_from([3136, 56 * 56 * 4]),
       st.sampled_from([DEFAULT_MAX_PIXELS, 640_000, 1_003_520, 12_544]))  # fmt: skip
def test_smart_resize_matches_transformers(height, width, min_pixels, max_pixels):
    if max(height, width) / min(height, width) > 200:
        with pytest.raises(ValueError, match="aspect ratio"):
            smart_resize(height, width)
        return
    ours = smart_resize(height, width, min_pixels=min_pixels, max_pixels=max_pixels)
    assert ours == reference_smart_resize(height, width, min_pixels=min_pixels, max_pixels=max_pixels)
    assert ours[0] % 28 == 0 and ours[1] % 28 == 0


def test_resized_image_is_a_fixed_point():
    height, width = smart_resize(1080, 1920)
    assert smart_resize(height, width) == (height, width)
    assert height * width <= DEFAULT_MAX_PIXELS
    assert resized_size((width, height)) == (width, height)


@pytest.mark.parametrize(
    ("size", "pixels", "tokens"),
    [
        ((112, 112), {}, 16),  # 112 / 14 = 8 patches a side, merged 2x2
        ((100, 100), {}, 16),  # resized to 112 x 112 first
        ((1920, 1080), {}, 480),  # 840 x 448 within 401,408 pixels: 60 x 32 patches / 4
        ((1920, 1080), {"max_pixels": 1_003_520}, 1222),  # 1316 x 728: 94 x 52 patches / 4
    ],
)
def test_image_token_count(size, pixels, tokens):
    assert image_token_count(size, **pixels) == tokens


@settings(max_examples=100, deadline=None)
@given(st.integers(28, 3000), st.integers(28, 3000), st.sampled_from([DEFAULT_MAX_PIXELS, 1_003_520]))
def test_image_token_count_matches_the_image_processor(width, height, max_pixels):
    if max(width, height) / min(width, height) > 200:
        return
    processor = Qwen2VLImageProcessorPil(min_pixels=3136, max_pixels=max_pixels)
    expected = processor.get_number_of_image_patches(height, width, {}) // processor.merge_size**2
    assert image_token_count((width, height), max_pixels=max_pixels) == expected


def test_core_imports_no_torch_and_nothing_of_ours_outside_core():
    code = (
        "import sys, univg.core.boxes, univg.core.parsing, univg.core.rewards, univg.core.phi, "
        "univg.core.metrics, univg.core.resize\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('torch', 'transformers', 'numpy') or "
        "(m.startswith('univg.') and not m.startswith('univg.core'))]\n"
        "print(bad)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
