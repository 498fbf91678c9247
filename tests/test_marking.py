import numpy as np
import pytest
from PIL import Image

from modeling_emofusion.marking import clip_box, mark_subject


def test_box_mode_draws_red_rectangle_at_the_box():
    image = Image.new("RGB", (100, 80), (0, 128, 0))
    marked = np.asarray(mark_subject(image, [20, 10, 60, 50], line_width=2))
    red = (marked == [255, 0, 0]).all(-1)
    # Outline on all four sides, inside untouched, source image untouched.
    assert red[10:50, 20:22].all() and red[10:50, 58:60].all()
    assert red[10:12, 20:60].all() and red[48:50, 20:60].all()
    assert not red[15:45, 25:55].any()
    assert not red[:, :19].any() and not red[:, 61:].any()
    assert np.asarray(image).max() == 128


def test_crop_mode_crops_to_the_box():
    image = Image.fromarray(np.arange(100 * 80 * 3, dtype=np.uint8).reshape(80, 100, 3) % 251)
    cropped = mark_subject(image, [20, 10, 60, 50], mode="crop")
    assert cropped.size == (40, 40)
    assert np.array_equal(np.asarray(cropped), np.asarray(image)[10:50, 20:60])


def test_none_mode_and_missing_box_leave_the_image_unchanged():
    image = Image.new("L", (30, 20), 7)
    for marked in (mark_subject(image, [1, 1, 5, 5], mode="none"), mark_subject(image, None)):
        assert marked.mode == "RGB" and np.asarray(marked).max() == 7


def test_clip_box_clips_partly_outside_and_rejects_bad_boxes():
    assert clip_box([-10, -5, 120, 50], (100, 80)) == (0.0, 0.0, 100.0, 50.0)
    with pytest.raises(ValueError, match="wholly outside"):
        clip_box([200, 200, 300, 300], (100, 80))
    with pytest.raises(ValueError, match="zero or negative area"):
        clip_box([10, 10, 10, 40], (100, 80))
    with pytest.raises(ValueError, match="four numbers"):
        clip_box([1, 2, 3], (100, 80))
    with pytest.raises(ValueError, match="finite"):
        clip_box([0, 0, float("nan"), 4], (100, 80))
    with pytest.raises(ValueError, match="Unknown marking mode"):
        mark_subject(Image.new("RGB", (4, 4)), [0, 0, 2, 2], mode="blur")
