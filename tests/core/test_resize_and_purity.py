import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize as reference_smart_resize

from univg.core.resize import DEFAULT_MAX_PIXELS, image_token_count, smart_resize


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
    assert image_token_count(112, 112) == 16


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
