"""Images: a batch of pictures read as a few numeric descriptors per image.

Example:
    >>> import numpy as np
    >>> from modelotel.stats.image import image_table
    >>> skipped: dict[str, int] = {}
    >>> t = image_table(np.zeros((8, 3, 16, 16), dtype=np.uint8), skipped)
    >>> t.rows, t.shape, t.names[:3], t.names[-3:]
    (8, (16, 16, 3), ('image.channel.0.mean', 'image.channel.0.std', 'image.channel.1.mean'), \
('image.brightness', 'image.height', 'image.width'))

A batch of N images is N rows, never ``C`` or ``H`` features and never one feature per
pixel. Each image becomes numeric features with the bins, drift, checks and fleet counters
of any numeric feature (:data:`PREFIX` is ``image``):

- ``image.channel.{c}.mean`` and ``image.channel.{c}.std``: the mean and the (population)
  standard deviation of channel ``c``'s pixels, for each channel ``c``;
- ``image.brightness``: mean luma, ``0.299 R + 0.587 G + 0.114 B`` (ITU-R BT.601) of the
  channel means for 3 or 4 channels (RGB order assumed; alpha ignored), the channel mean
  for 1 channel (the first channel's for 2);
- ``image.height``, ``image.width``: in pixels.

Pixel values are taken on the scale given, never normalised: uint8 images stay 0-255,
float images keep their range (a pipeline that switches from 0-255 to 0-1 shows as drift).

What is an image (:func:`layout`): a numeric array or CPU tensor of 4 dimensions whose
channel axis is axis 1 (``N,C,H,W``) or axis 3 (``N,H,W,C``); a channel axis has 1, 3 or 4
entries and is strictly smaller than both spatial axes, which decides the order (at most
one axis can qualify: ``(N,3,32,32)`` is NCHW, ``(N,32,32,3)`` NHWC; ``(N,3,8,3)`` is
neither and stays unread). On the input side a 3-dimensional array by the same rule
(``C,H,W`` or ``H,W,C``) is one image; a ``(N,H,W)`` stack without a channel axis is not
read as images (it cannot be told from a batch of sequences). A ``PIL.Image.Image`` is one
image (its mode gives the channels; a palette image is read as RGB, or RGBA with
transparency); a list of them, or of 3-dimensional arrays or tensors, is a batch when all
have the same shape (else ``stats.ragged_rows``). Neither PIL nor torch is imported here:
both are recognised by the names and modules of their classes.

The descriptors cost one pass over the pixels in numpy, over the whole batch at once (a sum
and a sum of squares per image and channel, in float32 for 8- and 16-bit and float32
pixels, else float64; a nearly flat channel, whose variance the one-pass formula would lose
to cancellation, is redone in two passes in float64): no Python loop over pixels or images
(except to convert a list). An image with a NaN or inf pixel has null channel descriptors and
brightness, and is counted in ``stats.nonfinite_image``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from modelotel.stats.reasons import (
    SKIP_EMPTY,
    SKIP_GPU,
    SKIP_NONFINITE_IMAGE,
    SKIP_RAGGED,
    SKIP_TENSOR,
    add,
)
from modelotel.stats.table import Table

PREFIX = "image"
BRIGHTNESS = f"{PREFIX}.brightness"
HEIGHT = f"{PREFIX}.height"
WIDTH = f"{PREFIX}.width"
#: Not a feature: what a schema check names when the number of channels changes.
CHANNELS = f"{PREFIX}.channels"
#: Channel counts of a channel axis.
CHANNEL_COUNTS = (1, 3, 4)
NCHW, NHWC = "NCHW", "NHWC"
#: ITU-R BT.601 luma weights of R, G, B.
_LUMA = np.array([0.299, 0.587, 0.114])

#: The types of a list's first item that tell at once it is no list of images.
_NOT_IMAGES = frozenset({list, tuple, dict, str, int, float, bool, type(None)})

Array = np.ndarray[Any, Any]
_NAMES: dict[int, tuple[str, ...]] = {}


def names(channels: int) -> tuple[str, ...]:
    """The descriptor names of images with ``channels`` channels, in column order."""
    got = _NAMES.get(channels)
    if got is None:
        per = [f"{PREFIX}.channel.{c}.{s}" for c in range(channels) for s in ("mean", "std")]
        got = _NAMES[channels] = (*per, BRIGHTNESS, HEIGHT, WIDTH)
    return got


def is_image_name(name: str) -> bool:
    """True for the name of an image descriptor (or of :data:`CHANNELS`)."""
    return name.startswith(PREFIX + ".")


class ImageTable(Table):
    """The descriptors of a batch of images, and the images' ``shape`` (height, width,
    channels), which a side checks against its schema's."""

    __slots__ = ("shape",)

    def __init__(self, matrix: Array, shape: tuple[int, int, int]) -> None:
        super().__init__(matrix.shape[0], names(shape[2]), matrix=matrix, named=True)
        self.shape = shape


def _channel_axis(n: int, spatial: tuple[int, int]) -> bool:
    return n in CHANNEL_COUNTS and n < spatial[0] and n < spatial[1]


def layout(shape: tuple[int, ...], single: bool) -> str | None:
    """``"NCHW"`` / ``"NHWC"`` for the shape of a batch of images (``single``: of one image,
    3 dimensions, read as a batch of one), None when it is not one (see the module doc)."""
    if single:
        if len(shape) != 3:
            return None
        shape = (1, *shape)
    elif len(shape) != 4:
        return None
    _, a, b, c = shape
    if _channel_axis(a, (b, c)):
        return NCHW
    if _channel_axis(c, (a, b)):
        return NHWC
    return None


def _work_dtype(dtype: np.dtype[Any]) -> type[np.floating[Any]]:
    """float32 for pixels it holds exactly enough (uint8, int16, float16, float32 ...),
    float64 for the rest (float64, 32- and 64-bit integers)."""
    return np.float32 if dtype.itemsize <= 2 or dtype == np.float32 else np.float64


#: Channels whose variance is below this share of their mean square are redone in two
#: passes in float64 (the one-pass variance, E[x^2] - E[x]^2, loses digits to cancellation
#: there: a nearly flat channel); above it, float32 sums keep the std to about 1e-3.
_FLAT = 1e-2


def _moments(rows: Array) -> tuple[Array, Array]:
    """Per row of a contiguous float ``rows x pixels`` array: mean and population std, in
    two passes (mean, then the squares of the deviations)."""
    pixels = rows.shape[1]
    mean = np.einsum("ij->i", rows) / pixels
    dev = rows - mean[:, np.newaxis]
    var = np.einsum("ij,ij->i", dev, dev) / pixels
    return mean.astype(np.float64), np.sqrt(var.astype(np.float64))


def _fast_moments(rows: Array) -> tuple[Array, Array]:
    """:func:`_moments` in one pass (a sum and a sum of squares, half the memory traffic),
    nearly flat rows redone by :func:`_moments` in float64."""
    pixels = rows.shape[1]
    mean = np.einsum("ij->i", rows).astype(np.float64) / pixels
    square = np.einsum("ij,ij->i", rows, rows).astype(np.float64) / pixels
    var = square - mean * mean
    flat = np.flatnonzero(var < _FLAT * square)  # (NaN compares False: handled by caller)
    if flat.size:
        mean[flat], std = _moments(rows[flat].astype(np.float64))
        var[flat] = std * std
    return mean, np.sqrt(np.maximum(var, 0.0))


def describe(images: Array, order: str) -> tuple[Array, int]:
    """``(descriptors, nonfinite)``: a rows x k float64 matrix in the order of
    :func:`names`, and how many images had a NaN or inf pixel (their channel descriptors
    and brightness are NaN). ``images`` is a numeric ``N,C,H,W`` or ``N,H,W,C`` array."""
    if order == NHWC:
        n, h, w, c = images.shape
        channels_first = images.transpose(0, 3, 1, 2)
    else:
        n, c, h, w = images.shape
        channels_first = images
    work = _work_dtype(images.dtype)
    # one row per image and channel, contiguous, in the working float type: a view of a
    # contiguous float batch, else one copy (the cast and, for channels last, the transpose:
    # a reduction over a strided channels-last batch costs several times more)
    rows = np.asarray(channels_first, dtype=work, order="C").reshape(n * c, h * w)
    with np.errstate(all="ignore"):  # inf pixels: inf - inf (the row is made NaN below)
        mean, std = _fast_moments(rows)
        if not (np.isfinite(mean).all() and np.isfinite(std).all()):
            # a NaN / inf pixel, or an overflow of the one-pass sums of large pixels: two
            # passes in float64 tell them apart
            mean, std = _moments(rows if work is np.float64 else rows.astype(np.float64))
    mean, std = mean.reshape(n, c), std.reshape(n, c)
    out = np.empty((n, 2 * c + 3), dtype=np.float64)
    out[:, 0 : 2 * c : 2] = mean
    out[:, 1 : 2 * c : 2] = std
    if c >= 3:
        out[:, 2 * c] = mean[:, :3] @ _LUMA
    else:
        out[:, 2 * c] = mean[:, 0]
    out[:, 2 * c + 1] = h
    out[:, 2 * c + 2] = w
    bad = ~(np.isfinite(mean).all(axis=1) & np.isfinite(std).all(axis=1))
    nonfinite = int(bad.sum())
    if nonfinite:
        out[bad, : 2 * c + 1] = np.nan
    return out, nonfinite


def _table(images: Array, order: str, skipped: dict[str, int]) -> ImageTable | None:
    if images.size == 0:
        add(skipped, SKIP_EMPTY)
        return None
    matrix, nonfinite = describe(images, order)
    shape = images.shape
    hwc = (shape[2], shape[3], shape[1]) if order == NCHW else (shape[1], shape[2], shape[3])
    if nonfinite:
        add(skipped, SKIP_NONFINITE_IMAGE, nonfinite)
    return ImageTable(matrix, hwc)


def is_images(a: Array, single: bool) -> bool:
    """True when the numeric array ``a`` is a batch of images by its shape (``single``: a
    3-dimensional array is one image), or a 4-dimensional batch without pixels."""
    if a.dtype.kind not in "fiub":
        return False
    if a.ndim == 4:
        return a.size == 0 or layout(a.shape, False) is not None
    return single and a.ndim == 3 and layout(a.shape, True) is not None


def image_table(a: Array, skipped: dict[str, int]) -> ImageTable | None:
    """The descriptors of an array that :func:`is_images`, or None when it holds no pixel
    (``stats.empty_batch`` added to ``skipped``)."""
    if a.size == 0:
        add(skipped, SKIP_EMPTY)  # (0,3,32,32), (8,3,0,0): images without pixels
        return None
    if a.ndim == 3:
        a = a[np.newaxis]
    order = layout(a.shape, False)
    assert order is not None
    return _table(a, order, skipped)


def is_pil(x: object) -> bool:
    """True for a ``PIL.Image.Image``, its subclasses included (recognised by the class's
    name and module, without importing PIL)."""
    return any(c.__name__ == "Image" and c.__module__ == "PIL.Image" for c in type(x).__mro__)


def tensor_array(x: Any, skipped: dict[str, int]) -> Array | None:
    """A CPU torch tensor as a numpy array (a view when torch allows), or None: a tensor on
    another device (``.cpu()`` would synchronise the device: never done) or one that does
    not convert, added to ``skipped``."""
    device = getattr(x, "device", None)
    if getattr(device, "type", "cpu") != "cpu":
        add(skipped, SKIP_GPU)
        return None
    try:
        t = x.detach()
        if str(t.dtype) in ("torch.bfloat16", "torch.complex32"):
            t = t.float()
        arr: Array = t.numpy()
    except Exception:  # noqa: BLE001 - any failure of a foreign tensor is a counted skip
        add(skipped, SKIP_TENSOR)
        return None
    return arr


def _pil_array(img: Any) -> Array:
    """One PIL image as ``H,W,C`` pixels (a copy: PIL hands its bytes over)."""
    mode = img.mode
    if mode in ("P", "PA"):  # palette indices are no intensities: the colours they index
        img = img.convert("RGBA" if mode == "PA" or "transparency" in img.info else "RGB")
    a = np.asarray(img)
    return a[:, :, np.newaxis] if a.ndim == 2 else a


def pil_table(images: Sequence[Any], skipped: dict[str, int]) -> ImageTable | None:
    """The descriptors of PIL images of one size and mode, or None (``stats.ragged_rows``
    when they differ, ``stats.empty_batch`` for no pixel)."""
    arrays = [_pil_array(img) for img in images]
    return _stack(arrays, NHWC, skipped)


def _stack(arrays: list[Array], order: str, skipped: dict[str, int]) -> ImageTable | None:
    first = arrays[0].shape
    if any(a.shape != first for a in arrays) or arrays[0].dtype.kind not in "fiub":
        add(skipped, SKIP_RAGGED)
        return None
    if arrays[0].size == 0:
        add(skipped, SKIP_EMPTY)
        return None
    batch = arrays[0][np.newaxis] if len(arrays) == 1 else np.stack(arrays)
    return _table(batch, order, skipped)


def looks_like_images(values: Sequence[Any]) -> bool:
    """True when a list's first item is an image: a PIL image, or a numeric 3-dimensional
    array (or tensor) with a channel axis (the list is then read by :func:`list_table`)."""
    first = values[0]
    if type(first) in _NOT_IMAGES:  # rows, records, texts, numbers: the common lists
        return False
    if is_pil(first):
        return True
    shape = getattr(first, "shape", None)
    if isinstance(first, np.ndarray) or type(first).__module__.startswith("torch"):
        try:
            return layout(tuple(shape), True) is not None  # type: ignore[arg-type]
        except TypeError:
            return False
    return False


def list_table(values: Sequence[Any], skipped: dict[str, int]) -> ImageTable | None:
    """The descriptors of a list of images (see :func:`looks_like_images`): PIL images,
    or arrays / CPU tensors of one shape; None with the reason added to ``skipped``
    (``stats.ragged_rows`` for a mix of kinds or shapes)."""
    if all(is_pil(v) for v in values):
        return pil_table(values, skipped)
    arrays: list[Array] = []
    for v in values:
        if isinstance(v, np.ndarray):
            arrays.append(v)
        elif type(v).__module__.startswith("torch"):
            arr = tensor_array(v, skipped)
            if arr is None:
                return None
            arrays.append(arr)
        else:
            add(skipped, SKIP_RAGGED)
            return None
    order = layout(arrays[0].shape, True)
    if order is None:
        add(skipped, SKIP_RAGGED)
        return None
    return _stack(arrays, order, skipped)


__all__ = [
    "BRIGHTNESS",
    "CHANNELS",
    "HEIGHT",
    "NCHW",
    "NHWC",
    "PREFIX",
    "WIDTH",
    "ImageTable",
    "describe",
    "image_table",
    "is_images",
    "is_image_name",
    "is_pil",
    "layout",
    "list_table",
    "looks_like_images",
    "names",
    "pil_table",
    "tensor_array",
]
