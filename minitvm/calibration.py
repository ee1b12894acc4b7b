"""int8 calibration data from where users keep it: an ``.npz`` of input arrays, a folder of
images (the standard ImageNet preprocessing), an iterable of input dicts, or -- explicitly, for
timing only -- random inputs.

:func:`minitvm.compile`, the ``minitvm`` command and ``examples/quantize_accuracy.py`` all read
calibration data through :func:`load_calibration`. A sample is one dict ``{input name: array}``
of the model's input shapes (so one sample of a batch-16 model holds 16 images).
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass

import numpy as np

from .errors import DtypeError, ShapeError, UsageError

__all__ = ["RandomCalibration", "load_calibration", "check_calibration_source", "image_files",
           "preprocess_image", "IMAGENET_MEAN", "IMAGENET_STD", "RANDOM_WARNING"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")
RANDOM_WARNING = ("int8 calibrated on random noise: the scales fit noise, not your data, so the model's "
                  "accuracy means nothing (use this for timing only)")


@dataclass(frozen=True)
class RandomCalibration:
    """Calibrate on ``samples`` random standard-normal inputs (seeded by ``seed``): for timing
    only, since the scales then fit noise. ``minitvm.compile(..., calibration="random")`` is
    ``RandomCalibration()``; loading it warns that the accuracy means nothing."""
    samples: int = 4
    seed: int = 0


def _pillow():
    try:
        from PIL import Image
    except ImportError:
        raise UsageError("calibrating on a folder of images needs Pillow: pip install 'minitvm[images]' "
                         "(or give an .npz of input arrays)") from None
    return Image


def image_files(folder) -> list:
    """The image files under ``folder`` (recursively, sorted; by extension: .jpg, .png ...)."""
    found = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        found += [os.path.join(root, f) for f in sorted(files) if f.lower().endswith(IMAGE_EXTENSIONS)]
    return found


def check_calibration_source(source, what: str = "calibration") -> None:
    """Refuse a calibration path that cannot work (missing, not an ``.npz`` or a folder, a folder
    without images, images without Pillow) before any compile work; ``what`` names the option."""
    if isinstance(source, RandomCalibration) or not isinstance(source, (str, os.PathLike)):
        return
    path = os.fspath(source)
    if path == "random":
        return
    if os.path.isdir(path):
        if not image_files(path):
            raise UsageError(f"{what} {path}: the folder holds no images ({', '.join(IMAGE_EXTENSIONS)})")
        _pillow()
        return
    if not path.endswith(".npz"):
        raise UsageError(f"{what} {path}: give a folder of images or an .npz of input arrays")
    if not os.path.isfile(path):
        raise UsageError(f"{what} {path}: no such file")


def preprocess_image(path, height: int = 224, width: int = 224) -> np.ndarray:
    """Image file ``path`` as a float32 ``(3, height, width)`` array, preprocessed as the
    torchvision ImageNet models expect: RGB, the shorter side resized to 256/224 of the crop
    (bilinear), the center ``height`` x ``width`` crop, scaled to [0, 1], then normalized by
    the ImageNet mean and standard deviation per channel."""
    Image = _pillow()
    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            w, h = im.size
            short = round(max(height, width) * 256 / 224)
            scale = short / min(w, h)
            rw, rh = max(width, round(w * scale)), max(height, round(h * scale))
            im = im.resize((rw, rh), Image.BILINEAR)
            left, top = (rw - width) // 2, (rh - height) // 2
            im = im.crop((left, top, left + width, top + height))
            arr = np.asarray(im, dtype=np.float32) / 255.0
    except (OSError, ValueError) as exc:
        raise UsageError(f"calibration image {path}: cannot be read ({exc})") from None
    arr = (arr - np.asarray(IMAGENET_MEAN, np.float32)) / np.asarray(IMAGENET_STD, np.float32)
    return np.ascontiguousarray(arr.transpose(2, 0, 1))


def _images(folder: str, inputs: dict, limit, progress) -> list:
    """Samples of a one-image-input model from the images under ``folder``."""
    name, t = next(iter(inputs.items()))
    if len(inputs) != 1 or len(t.shape) != 4 or t.shape[1] != 3 or t.dtype != "float32":
        have = ", ".join(f"{n!r} {v.dtype}{list(v.shape)}" for n, v in inputs.items())
        raise UsageError(f"calibration {folder}: a folder of images calibrates a model with one float32 image "
                         f"input (N, 3, H, W); this model takes {have}; give an .npz of input arrays instead")
    batch, _, height, width = t.shape
    files = image_files(folder)
    usable = len(files) // batch * batch
    if limit is not None:
        usable = min(usable, limit * batch)
    if usable == 0:
        raise UsageError(f"calibration {folder}: {len(files)} images, fewer than the model's batch of {batch}")
    files = files[:usable]
    images = []
    for k, f in enumerate(files):
        images.append(preprocess_image(f, height, width))
        if progress:
            progress("reading images", k + 1, len(files))
    stacked = np.stack(images)
    return [{name: stacked[k:k + batch]} for k in range(0, usable, batch)]


def _samples_of(path: str, name: str, arr: np.ndarray, shape: tuple) -> list:
    """Split one input's calibration array into samples of ``shape``."""
    if arr.shape == shape:
        return [arr]
    if arr.shape[1:] == shape:
        return list(arr)
    if shape and arr.ndim == len(shape) and arr.shape[1:] == shape[1:] and arr.shape[0] % shape[0] == 0:
        return [arr[k:k + shape[0]] for k in range(0, arr.shape[0], shape[0])]
    stacked = ", ".join(map(str, ("K",) + shape))
    raise ShapeError(f"calibration {path}: array {name!r} has shape {list(arr.shape)}; expected {list(shape)}, "
                     f"K samples of it [{stacked}]" + (f", or a multiple of the batch {shape[0]} of single items"
                                                       if shape else ""))


def _npz(path: str, inputs: dict) -> list:
    """Samples from an ``.npz`` holding each input's samples by input name."""
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError) as exc:
        raise UsageError(f"calibration {path}: not a readable .npz ({exc})") from None
    if len(inputs) == 1 and len(arrays) == 1:
        arrays = {next(iter(inputs)): next(iter(arrays.values()))}
    missing = [n for n in inputs if n not in arrays]
    if missing:
        raise UsageError(f"calibration {path}: no array for model input(s) {missing}; it has {sorted(arrays)}")
    per = {n: _samples_of(path, n, arrays[n], tuple(inputs[n].shape)) for n in inputs}
    counts = {n: len(v) for n, v in per.items()}
    if len(set(counts.values())) > 1:
        raise ShapeError(f"calibration {path}: the inputs have different numbers of samples {counts}")
    return [{n: per[n][k] for n in inputs} for k in range(next(iter(counts.values())))]


def _random(source: RandomCalibration, inputs: dict) -> list:
    warnings.warn(RANDOM_WARNING, UserWarning, stacklevel=4)
    if source.samples < 1:
        raise UsageError(f"random calibration: samples must be at least 1, got {source.samples}")
    rng = np.random.default_rng(source.seed)
    return [{n: rng.standard_normal(tuple(t.shape)).astype(t.dtype) for n, t in inputs.items()}
            for _ in range(source.samples)]


def load_calibration(source, inputs: dict, limit: int | None = None, progress=None) -> list:
    """Input dicts (``{input name: array}``, each of the model's input shapes) for calibrating
    a model whose inputs are ``inputs`` (name -> :class:`~minitvm.graph.types.TensorType`).

    ``source`` is a folder of images (one float32 NCHW image input; :func:`preprocess_image`,
    needs Pillow), an ``.npz`` (key = input name, or any single key for a one-input model; each
    array one sample, K stacked samples, or a multiple of the batch of single items), an
    iterable of input dicts (numpy arrays or DLPack tensors), or :class:`RandomCalibration`
    (also spelled ``"random"``; warns). At most ``limit`` samples are taken. ``progress``, if
    given, is called ``progress(phase, done, total)`` while images are read."""
    if isinstance(source, str) and source == "random":
        source = RandomCalibration()
    if isinstance(source, RandomCalibration):
        items = _random(source if limit is None else RandomCalibration(limit, source.seed), inputs)
    elif isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        check_calibration_source(path)
        items = _images(path, inputs, limit, progress) if os.path.isdir(path) else _npz(path, inputs)
    else:
        try:
            items = list(source)
        except TypeError:
            raise UsageError(f"calibration must be a folder of images, an .npz path, an iterable of input dicts "
                             f"or 'random'; got a {type(source).__name__}") from None
    if limit is not None:
        items = items[:limit]
    out = [_checked(k, item, inputs) for k, item in enumerate(items)]
    if not out:
        raise UsageError("calibration holds no samples")
    return out


def _checked(k: int, item, inputs: dict) -> dict:
    """Sample ``k`` as numpy arrays of the inputs' dtypes, its names and shapes checked."""
    if not isinstance(item, dict):
        raise UsageError(f"calibration sample {k} is a {type(item).__name__}, not a dict by input name "
                         f"({list(inputs)})")
    missing = [n for n in inputs if n not in item]
    if missing:
        raise UsageError(f"calibration sample {k} has no {missing}; the model's inputs are {list(inputs)}")
    sample = {}
    for n, t in inputs.items():
        value = item[n]
        if hasattr(value, "__dlpack__") and not isinstance(value, np.ndarray):
            from .runtime.ndarray import from_dlpack
            value = from_dlpack(value).numpy()
        a = np.asarray(value)
        if tuple(a.shape) != tuple(t.shape):
            raise ShapeError(f"calibration sample {k}: input {n!r} has shape {list(a.shape)}, the model "
                             f"takes {list(t.shape)}")
        if a.dtype.kind not in "fiub":
            raise DtypeError(f"calibration sample {k}: input {n!r} has dtype {a.dtype}, not a number")
        sample[n] = a.astype(t.dtype, copy=False)
    return sample
