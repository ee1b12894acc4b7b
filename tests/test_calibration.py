"""minitvm.calibration: int8 calibration data from an .npz, a folder of images, input dicts, or
(asked for) random noise -- the one path minitvm.compile, the CLI and the accuracy example share."""
import sys

import numpy as np
import pytest

from minitvm.calibration import (IMAGENET_MEAN, IMAGENET_STD, RandomCalibration, check_calibration_source,
                                 image_files, load_calibration, preprocess_image)
from minitvm.errors import DtypeError, ShapeError, UsageError
from minitvm.graph.types import TensorType

Image = pytest.importorskip("PIL.Image", reason="the image tests need Pillow (pip install 'minitvm[images]')")
IMAGE_INPUT = {"data": TensorType((2, 3, 16, 16), "float32")}


def _save(path, pixels):
    Image.fromarray(pixels).save(path)
    return path


def _rgb(h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_an_image_at_the_resize_size_is_center_cropped_and_normalized(tmp_path):
    # the shorter side is already 256/224 of the crop (16 -> 18): only the crop and the normalization act
    pixels = _rgb(18, 24, seed=1)
    got = preprocess_image(_save(tmp_path / "a.png", pixels), 16, 16)
    crop = pixels[1:17, 4:20].astype(np.float32) / 255.0
    want = ((crop - np.float32(IMAGENET_MEAN)) / np.float32(IMAGENET_STD)).transpose(2, 0, 1)
    assert got.shape == (3, 16, 16) and got.dtype == np.float32 and got.flags.c_contiguous
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def test_images_of_any_size_and_mode_are_resized_and_cropped(tmp_path):
    grey = _save(tmp_path / "grey.jpg", np.full((300, 500), 128, np.uint8))
    got = preprocess_image(grey, 224, 224)
    assert got.shape == (3, 224, 224)
    # a uniform grey image stays uniform: each channel is (128/255 - mean) / std (JPEG may move it a step)
    want = (128 / 255 - np.float32(IMAGENET_MEAN)) / np.float32(IMAGENET_STD)
    np.testing.assert_allclose(got.mean(axis=(1, 2)), want, atol=2 / 255 / 0.2)
    tall = preprocess_image(_save(tmp_path / "tall.png", _rgb(40, 10)), 12, 8)
    assert tall.shape == (3, 12, 8)


def test_a_folder_gives_batches_of_images_in_sorted_order(tmp_path):
    (tmp_path / "b").mkdir()
    for name in ("b/2.png", "1.png", "3.jpeg", "0.PNG"):
        _save(tmp_path / name, _rgb(20, 20, seed=len(name)))
    (tmp_path / "labels.txt").write_text("no image")
    assert [p.rsplit("/", 2)[-1] for p in image_files(tmp_path)] == ["0.PNG", "1.png", "3.jpeg", "2.png"]
    events = []
    samples = load_calibration(tmp_path, IMAGE_INPUT, progress=lambda *e: events.append(e))
    assert len(samples) == 2 and samples[0]["data"].shape == (2, 3, 16, 16)
    np.testing.assert_array_equal(samples[1]["data"][1], preprocess_image(tmp_path / "b/2.png", 16, 16))
    assert events[-1] == ("reading images", 4, 4)
    assert len(load_calibration(tmp_path, IMAGE_INPUT, limit=1)) == 1


def test_a_folder_refuses_what_it_cannot_calibrate(tmp_path):
    _save(tmp_path / "only.png", _rgb(20, 20))
    with pytest.raises(UsageError, match="1 images, fewer than the model's batch of 2"):
        load_calibration(tmp_path, IMAGE_INPUT)
    with pytest.raises(UsageError, match=r"one float32 image input \(N, 3, H, W\); this model takes 'x' "
                                         r"float32\[1, 8\]"):
        load_calibration(tmp_path, {"x": TensorType((1, 8), "float32")})
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UsageError, match="the folder holds no images"):
        check_calibration_source(empty)
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(UsageError, match="broken.png: cannot be read"):
        load_calibration(tmp_path, {"data": TensorType((1, 3, 16, 16), "float32")})


def test_a_folder_without_pillow_says_how_to_get_it(tmp_path, monkeypatch):
    _save(tmp_path / "a.png", _rgb(20, 20))
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(UsageError, match=r"needs Pillow: pip install 'minitvm\[images\]'"):
        check_calibration_source(tmp_path, "--calibration-data")


def test_an_npz_holds_samples_stacked_or_as_single_items(tmp_path):
    x = np.random.default_rng(0).standard_normal((6, 3, 16, 16)).astype("float32")
    np.savez(tmp_path / "batch_items.npz", anything=x)             # one input: any key; 6 items = 3 batches of 2
    samples = load_calibration(tmp_path / "batch_items.npz", IMAGE_INPUT)
    assert len(samples) == 3
    np.testing.assert_array_equal(samples[2]["data"], x[4:6])
    np.savez(tmp_path / "stacked.npz", data=x.reshape(3, 2, 3, 16, 16).astype("float64"))
    samples = load_calibration(tmp_path / "stacked.npz", IMAGE_INPUT)
    assert len(samples) == 3 and samples[0]["data"].dtype == np.float32
    np.savez(tmp_path / "odd.npz", data=x[:5])
    with pytest.raises(ShapeError, match=r"array 'data' has shape \[5, 3, 16, 16\]"):
        load_calibration(tmp_path / "odd.npz", IMAGE_INPUT)
    two = {"a": TensorType((1, 4), "float32"), "b": TensorType((1, 2), "float32")}
    np.savez(tmp_path / "two.npz", a=np.ones((3, 1, 4)), c=np.ones((3, 1, 2)))
    with pytest.raises(UsageError, match=r"no array for model input\(s\) \['b'\]; it has \['a', 'c'\]"):
        load_calibration(tmp_path / "two.npz", two)


def test_input_dicts_are_checked(tmp_path):
    good = {"data": np.zeros((2, 3, 16, 16), "float32") + 1}
    assert len(load_calibration([good, good], IMAGE_INPUT, limit=1)) == 1
    with pytest.raises(ShapeError, match=r"sample 0: input 'data' has shape \[3, 16, 16\]"):
        load_calibration([{"data": np.zeros((3, 16, 16))}], IMAGE_INPUT)
    with pytest.raises(DtypeError, match="has dtype <U1, not a number"):
        load_calibration([{"data": np.full((2, 3, 16, 16), "a")}], IMAGE_INPUT)
    with pytest.raises(UsageError, match="sample 0 is a list, not a dict"):
        load_calibration([[good["data"]]], IMAGE_INPUT)
    with pytest.raises(UsageError, match="holds no samples"):
        load_calibration([], IMAGE_INPUT)
    with pytest.raises(UsageError, match="give a folder of images or an .npz"):
        load_calibration(tmp_path / "calib.npy", IMAGE_INPUT)


def test_random_noise_only_when_asked_for_and_with_a_warning():
    with pytest.warns(UserWarning, match="accuracy means nothing"):
        samples = load_calibration("random", IMAGE_INPUT)
    assert len(samples) == 4 and samples[0]["data"].std() > 0.5
    with pytest.warns(UserWarning):
        again = load_calibration(RandomCalibration(samples=2, seed=0), IMAGE_INPUT)
    np.testing.assert_array_equal(again[1]["data"], samples[1]["data"])      # seeded
