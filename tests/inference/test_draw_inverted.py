from PIL import Image

from univg.inference.draw import draw_box


def test_inverted_corners_are_drawn_not_refused():
    image = Image.new("RGB", (100, 80), "white")
    drawn = draw_box(image, (70, 60, 10, 20))
    assert drawn.getpixel((10, 40)) != (255, 255, 255)  # left edge drawn
    assert drawn.getpixel((69, 40)) != (255, 255, 255)  # right edge drawn
    assert drawn.getpixel((40, 40)) == (255, 255, 255)  # inside left untouched
