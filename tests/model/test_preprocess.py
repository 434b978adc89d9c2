import numpy as np
import pytest
from PIL import Image

from deeplens.model import get_model
from deeplens.model.preprocess import fit, fit_array, to_input

LITE0 = get_model()


def test_to_input_normalises_per_channel_into_nchw() -> None:
    crops = np.zeros((2, 224, 224, 3), np.uint8)
    crops[..., 0], crops[..., 1], crops[..., 2] = 0, 127, 255
    x = to_input(crops, LITE0)
    assert x.dtype == np.float32
    assert x.shape == (2, 3, 224, 224)
    assert x.flags.c_contiguous
    np.testing.assert_allclose(x[:, 0], -127 / 128)
    np.testing.assert_allclose(x[:, 1], 0.0)
    np.testing.assert_allclose(x[:, 2], 1.0)


def test_to_input_imagenet_scale_bgr_nhwc() -> None:
    spec = LITE0.model_copy(
        update={
            "scale": 1 / 255,
            "mean": (0.406, 0.456, 0.485),  # in the model's channel order: BGR
            "std": (0.225, 0.224, 0.229),
            "channel_order": "BGR",
            "layout": "NHWC",
        }
    )
    crops = np.zeros((1, 4, 4, 3), np.uint8)
    crops[..., 0], crops[..., 1], crops[..., 2] = 10, 20, 30  # R, G, B
    x = to_input(crops, spec)
    assert x.shape == (1, 4, 4, 3)
    expected = [(30 / 255 - 0.406) / 0.225, (20 / 255 - 0.456) / 0.224, (10 / 255 - 0.485) / 0.229]
    np.testing.assert_allclose(x[0, 0, 0], expected, rtol=1e-5)


def test_fit_scales_short_side_and_centre_crops() -> None:
    # 256 wide, 512 tall: the short side is already 256, so the crop is an exact 224 window
    # starting at column 16 and row 144; encode the column in red and the row in green.
    cols = np.broadcast_to(np.arange(256, dtype=np.uint8)[None, :], (512, 256))
    rows = np.broadcast_to((np.arange(512) // 2).astype(np.uint8)[:, None], (512, 256))
    array = np.stack([cols, rows, np.zeros_like(cols)], axis=-1)
    crop = fit(Image.fromarray(array, "RGB"), LITE0)
    assert crop.shape == (224, 224, 3) and crop.dtype == np.uint8
    np.testing.assert_array_equal(crop[0, :, 0], np.arange(16, 240))
    np.testing.assert_array_equal(crop[:, 0, 1], np.arange(144, 368) // 2)


def test_fit_downscales_large_images_to_the_input_size() -> None:
    image = Image.new("RGB", (1920, 1080), (200, 100, 50))
    crop = fit(image, LITE0)
    assert crop.shape == (224, 224, 3)
    assert (crop == (200, 100, 50)).all()


def test_fit_array_checks_its_input() -> None:
    with pytest.raises(ValueError, match="uint8"):
        fit_array(np.zeros((10, 10, 3), np.float32), LITE0)
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        fit_array(np.zeros((10, 10), np.uint8), LITE0)
    assert fit_array(np.zeros((300, 400, 3), np.uint8), LITE0).shape == (224, 224, 3)
