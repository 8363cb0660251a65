"""Images: one row per image, numeric descriptors with drift, shape changes as schema checks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from PIL import Image

import _health as health
import modelotel
from modelotel import attributes as A  # noqa: N812
from modelotel.stats import reasons as R  # noqa: N812
from modelotel.stats.baseline import Baseline, BaselineError, _hash
from modelotel.stats.image import NCHW, NHWC, layout, names
from modelotel.stats.profiler import ABSENT, Profiler
from modelotel.stats.read import extract
from modelotel.testing import capture

_RGB = names(3)


def _images(rng: np.random.Generator, n: int, shift: float = 0.0, size: int = 8) -> np.ndarray:
    """``n`` NCHW float32 images: a brightness level per image, a tint per channel, noise."""
    level = rng.uniform(0.2, 0.8, size=(n, 1, 1, 1)) + shift
    tint = np.array([0.05, 0.0, -0.05]).reshape(1, 3, 1, 1)
    noise = rng.normal(size=(n, 3, size, size)) * rng.uniform(0.05, 0.15, size=(n, 1, 1, 1))
    return (level + tint + noise).astype(np.float32)


def _classifier(name: str, **kw: Any) -> Callable[[Any], np.ndarray]:
    @modelotel.instrument(model=name, **kw)
    def predict(images: Any) -> np.ndarray:
        return np.full(len(images), 0.5)

    return predict


def _psi(
    cap: Any, metric: str = A.METRIC_FEATURE_DRIFT, key: str = A.ML_FEATURE
) -> dict[str, float]:
    return {p.attributes[key]: p.value for p in cap.collect()
            if p.name == metric and p.attributes[A.ML_DRIFT_METHOD] == A.DRIFT_PSI}


def _descriptors(x: Any, row_vector: bool = True) -> np.ndarray:
    skipped: dict[str, int] = {}
    t = extract(x, row_vector, skipped=skipped)
    assert t is not None and t.matrix is not None, skipped
    assert not skipped
    return t.matrix


def test_training_images_do_not_drift_and_a_brightness_shift_does() -> None:
    rng = np.random.default_rng(0)
    baseline = Baseline.from_data(_images(rng, 5000))
    assert baseline.feature_names == _RGB
    predict = _classifier("image-drift", baseline=baseline)
    with capture() as cap:
        for _ in range(25):
            predict(_images(rng, 40))  # 1,000 images in the window
        same = _psi(cap)
        for _ in range(25):
            predict(_images(rng, 40, shift=0.15))
        moved = _psi(cap)
    assert set(same) == set(_RGB)
    assert all(v < 0.1 for v in same.values()), same
    assert moved["image.brightness"] > 0.2, moved


def test_nchw_and_nhwc_give_the_same_descriptors() -> None:
    rng = np.random.default_rng(1)
    nchw = _images(rng, 6, size=9)
    nhwc = np.ascontiguousarray(nchw.transpose(0, 2, 3, 1))
    a, b = _descriptors(nchw), _descriptors(nhwc)
    np.testing.assert_allclose(a, b, rtol=1e-12)
    assert a.shape == (6, len(_RGB))
    # a channels-last view of a channels-first batch, and one image on its own (either order)
    np.testing.assert_allclose(_descriptors(nchw.transpose(0, 2, 3, 1)), a, rtol=1e-12)
    np.testing.assert_allclose(_descriptors(nchw[2]), a[2:3], rtol=1e-12)
    np.testing.assert_allclose(_descriptors(nhwc[2]), a[2:3], rtol=1e-12)
    # against a plain float64 per-image reference (float32 pixels are reduced in float32)
    img = nchw[4].astype(np.float64)
    ref = [v for c in img for v in (c.mean(), c.std())]
    luma = 0.299 * img[0].mean() + 0.587 * img[1].mean() + 0.114 * img[2].mean()
    np.testing.assert_allclose(a[4], [*ref, luma, 9, 9], rtol=1e-6)
    np.testing.assert_allclose(_descriptors(nchw.astype(np.float64))[4], [*ref, luma, 9, 9],
                               rtol=1e-12)


def test_a_nearly_flat_channel_keeps_its_small_std() -> None:
    rng = np.random.default_rng(9)
    flat = (0.5 + 1e-3 * rng.random((2, 3, 224, 224))).astype(np.float32)
    ref = flat.astype(np.float64).std(axis=(2, 3))
    np.testing.assert_allclose(_descriptors(flat)[:, 1:6:2], ref, rtol=1e-4)
    # squared deviations overflow float32: the batch is redone in float64, not a null
    huge = np.resize(np.array([1e30, 3e30], dtype=np.float32), (1, 1, 8, 8))
    assert _descriptors(huge)[0, :3].tolist() == pytest.approx([2e30, 1e30, 2e30])


def test_pixels_keep_their_scale_and_brightness_is_luma() -> None:
    img = np.zeros((1, 4, 6, 3), dtype=np.uint8)
    img[..., 0], img[..., 1], img[..., 2] = 200, 100, 10
    row = _descriptors(img)[0]
    assert row.tolist() == [200.0, 0.0, 100.0, 0.0, 10.0, 0.0,
                            pytest.approx(0.299 * 200 + 0.587 * 100 + 0.114 * 10), 4.0, 6.0]
    gray = np.arange(2 * 1 * 5 * 5, dtype=np.uint8).reshape(2, 1, 5, 5)
    m = _descriptors(gray)
    assert names(1) == ("image.channel.0.mean", "image.channel.0.std", "image.brightness",
                        "image.height", "image.width")
    assert m[1, 0] == gray[1].mean() == m[1, 2]  # one channel: brightness is its mean
    assert _descriptors(np.ones((2, 8, 8, 4), dtype=bool))[0, :8].tolist() == [1.0, 0.0] * 4


@pytest.mark.parametrize(
    ("shape", "single", "expected"),
    [
        ((5, 3, 32, 32), False, NCHW),
        ((5, 32, 32, 3), False, NHWC),
        ((5, 1, 28, 28), False, NCHW),
        ((5, 4, 4, 3), False, NHWC),  # 4 is not smaller than the width 3: channels last
        ((5, 3, 8, 3), False, None),  # neither end is smaller than both spatial axes
        ((5, 28, 28), False, None),  # no channel axis: not told from a batch of sequences
        ((3, 16, 16), True, NCHW),
        ((16, 16, 4), True, NHWC),
        ((2, 3, 4), True, None),
    ],
)
def test_the_channel_axis_is_the_small_one_of_1_3_or_4(
    shape: tuple[int, ...], single: bool, expected: str | None
) -> None:
    assert layout(shape, single) == expected


def test_a_list_of_pil_images_is_a_batch_with_a_row_per_image() -> None:
    rng = np.random.default_rng(2)
    pixels = rng.integers(0, 256, size=(5, 10, 12, 3), dtype=np.uint8)
    pil = [Image.fromarray(p) for p in pixels]
    np.testing.assert_allclose(_descriptors(pil), _descriptors(pixels), rtol=1e-12)
    np.testing.assert_allclose(_descriptors(pil[0]), _descriptors(pixels[:1]), rtol=1e-12)
    gray = Image.fromarray(pixels[0, :, :, 0])  # mode L: one channel
    assert _descriptors(gray).shape == (1, len(names(1)))
    palette = pil[0].convert("P")  # palette indices are read as the colours they index
    assert _descriptors(palette).shape == (1, len(_RGB))
    predict = _classifier("image-pil")
    with capture() as cap:
        predict(pil)
        span = cap.spans()[-1]
        assert span.attributes[A.ML_INPUT_ROWS] == 5
        count = cap.metric(A.METRIC_FEATURE_COUNT, **{A.ML_FEATURE: "image.brightness"})
        assert count.value == 5
    assert health.skipped(cap) == {}
    # beyond row_cap, a list of PIL images is row-sampled before it is converted
    converted = []

    class Counted(Image.Image):  # a subclass is a PIL image too
        @property
        def __array_interface__(self) -> dict[str, Any]:
            converted.append(self)
            return super().__array_interface__

    counted = []
    for img in pil:
        c = Counted()
        c.__setstate__(img.__getstate__())  # type: ignore[no-untyped-call]
        counted.append(c)
    sampled = _classifier("image-pil-cap", row_cap=4)
    with capture() as cap:
        sampled(counted * 4)
        assert len(converted) == 4
        span = cap.spans()[-1]
        assert span.attributes[A.ML_STATS_SAMPLE_RATE] == pytest.approx(0.2)
        count = cap.metric(A.METRIC_FEATURE_COUNT, **{A.ML_FEATURE: "image.brightness"})
        assert count.value == 4


def test_rows_are_the_images_and_channels_are_not_features() -> None:
    rng = np.random.default_rng(3)
    predict = _classifier("image-rows")
    with capture() as cap:
        predict(_images(rng, 7))
        predict(_images(rng, 5))
        span = cap.spans()[-1]
        assert span.attributes[A.ML_INPUT_ROWS] == 5
        assert A.ML_INPUT_FEATURES not in span.attributes  # axis 1 is channels, not features
        counts = {p.attributes[A.ML_FEATURE]: p.value for p in cap.collect()
                  if p.name == A.METRIC_FEATURE_COUNT}
    assert counts == dict.fromkeys(_RGB, 12)
    with capture() as cap:
        predict(_images(rng, 1)[0])  # one (C,H,W) image: one row
        assert cap.spans()[-1].attributes[A.ML_INPUT_ROWS] == 1
        count = cap.metric(A.METRIC_FEATURE_COUNT, **{A.ML_FEATURE: "image.brightness"})
        assert count.value == 1


def test_a_shape_change_fires_one_schema_check_per_window_naming_the_dimension() -> None:
    rng = np.random.default_rng(4)
    baseline = Baseline.from_data(_images(rng, 500))
    predict = _classifier("image-shape", baseline=baseline)

    def fired(cap: Any) -> dict[str, float]:
        return {p.attributes[A.ML_FEATURE]: p.value for p in cap.collect()
                if p.name == A.METRIC_CHECK_VIOLATIONS}

    with capture() as cap:
        predict(_images(rng, 4))
        assert fired(cap) == {}
        predict(_images(rng, 4, size=10))  # 10x10: height and width
        predict(_images(rng, 4)[:, :, :, :6])  # 8x6: width again, in the same window
        predict(_images(rng, 4, size=10))
        events = [e for s in cap.spans() for e in s.events]
        assert [(e.attributes[A.ML_CHECK], e.attributes[A.ML_FEATURE]) for e in events] == [
            (A.CHECK_SCHEMA_SHAPE_CHANGE, "image.height"),
            (A.CHECK_SCHEMA_SHAPE_CHANGE, "image.width"),
        ]
        assert fired(cap) == {"image.height": 1, "image.width": 1}
        predict(_images(rng, 4)[:, :1])  # one channel: one check, no missing features
        assert fired(cap) == {"image.height": 1, "image.width": 1, "image.channels": 1}
        assert {p.attributes[A.ML_CHECK] for p in cap.collect()
                if p.name == A.METRIC_CHECK_VIOLATIONS} == {A.CHECK_SCHEMA_SHAPE_CHANGE}
        predict(_images(rng, 4)[:, :, :5])  # a new window: the height again, once more
        assert fired(cap)["image.height"] == 2
    # without a baseline, the first batch's shape is the schema
    p = Profiler()
    assert p.observe(_images(rng, 3), ABSENT) is None
    rep = p.observe(_images(rng, 3)[:, :, :7], ABSENT)
    assert rep is not None and rep.checks == [(A.CHECK_SCHEMA_SHAPE_CHANGE, "image.height", False)]


def test_images_are_never_mutated() -> None:
    rng = np.random.default_rng(5)
    float_batch = _images(rng, 4)
    uint8_nhwc = rng.integers(0, 256, size=(4, 8, 8, 3), dtype=np.uint8)
    strided = _images(rng, 8)[::2]
    with_nan = _images(rng, 2)
    with_nan[0, 1, 2, 3] = np.nan
    pil = [Image.fromarray(u) for u in uint8_nhwc]
    inputs = [float_batch, uint8_nhwc, strided, with_nan, list(float_batch)]
    before = [np.array(x, copy=True) for x in inputs]
    pil_before = [p.tobytes() for p in pil]

    @modelotel.instrument(model="image-mutation")
    def echo(x: Any) -> Any:
        return x  # the images are outputs too

    with capture():
        for x in [*inputs, pil]:
            assert echo(x) is x
    for x, b in zip(inputs, before, strict=True):
        np.testing.assert_array_equal(np.asarray(x), b)
    assert [p.tobytes() for p in pil] == pil_before
    assert with_nan.flags.writeable and float_batch.flags.writeable


@pytest.mark.parametrize(
    ("case", "factory", "skips"),
    [
        ("ragged_list", lambda: [np.zeros((3, 8, 8)), np.zeros((3, 9, 9))], {R.SKIP_RAGGED: 1}),
        ("mixed_list", lambda: [Image.new("RGB", (8, 8)), np.zeros((8, 8, 3))],
         {R.SKIP_RAGGED: 1}),
        ("pil_sizes", lambda: [Image.new("RGB", (8, 8)), Image.new("RGB", (9, 8))],
         {R.SKIP_RAGGED: 1}),
        ("nan_pixel", lambda: np.where(np.arange(3)[:, None, None, None] == 1, np.nan,
                                       np.ones((3, 3, 8, 8))), {R.SKIP_NONFINITE_IMAGE: 1}),
        ("inf_pixel", lambda: np.full((2, 1, 8, 8), np.inf, dtype=np.float32),
         {R.SKIP_NONFINITE_IMAGE: 2}),
        # no image in: no score out either, the output side's empty batch
        ("no_images", lambda: np.zeros((0, 3, 8, 8)), {R.SKIP_EMPTY: 2}),
        ("no_pixels", lambda: np.zeros((4, 3, 0, 0)), {R.SKIP_EMPTY: 1}),
        ("complex_pixels", lambda: np.zeros((2, 3, 8, 8), dtype=complex), {R.SKIP_COMPLEX: 1}),
    ],
)
def test_a_malformed_image_batch_is_a_counted_skip(
    case: str, factory: Callable[[], Any], skips: dict[str, int]
) -> None:
    predict = _classifier(f"image-bad-{case}")
    with capture() as cap:
        out = predict(factory())
        assert out.shape[0] == len(factory())
        cap.collect()
    assert health.skipped(cap) == skips
    assert health.errors(cap) == {}


def test_nan_pixels_are_missing_descriptors_of_their_image_only() -> None:
    x = np.ones((3, 3, 8, 8))
    x[1, 2, 0, 0] = np.nan
    skipped: dict[str, int] = {}
    t = extract(x, skipped=skipped)
    assert t is not None and t.matrix is not None and skipped == {R.SKIP_NONFINITE_IMAGE: 1}
    m = t.matrix
    assert np.isnan(m[1, :7]).all() and m[1, 7:].tolist() == [8.0, 8.0]
    assert not np.isnan(m[[0, 2]]).any()


def test_an_outputs_only_baseline_gives_an_image_model_output_drift() -> None:
    rng = np.random.default_rng(6)
    b = Baseline.from_data(None, outputs=rng.normal(size=2000))
    assert b.features == ()
    shift = {"by": 0.0}

    @modelotel.instrument(model="image-outputs-only", baseline=b)
    def predict(images: np.ndarray) -> np.ndarray:
        return rng.normal(size=len(images)) + shift["by"]

    with capture() as cap:
        for _ in range(20):
            predict(_images(rng, 50))
        same = _psi(cap, A.METRIC_OUTPUT_DRIFT, A.ML_OUTPUT)
        shift["by"] = 2.0
        for _ in range(20):
            predict(_images(rng, 50))
        moved = _psi(cap, A.METRIC_OUTPUT_DRIFT, A.ML_OUTPUT)
        # the images still get their statistics (no input drift: the baseline has no inputs)
        count = cap.metric(A.METRIC_FEATURE_COUNT, **{A.ML_FEATURE: "image.brightness"})
        assert count.value == 2000
        assert _psi(cap) == {}
    assert same["0"] < 0.1 < 1.0 < moved["0"]
    assert health.skipped(cap) == {}


def test_the_image_shape_is_saved_with_the_baseline(tmp_path: Any) -> None:
    rng = np.random.default_rng(7)
    b = Baseline.from_data(_images(rng, 200, size=12), outputs=rng.normal(size=200))
    assert b.image_shape("inputs") == (12, 12, 3) and b.image_shape("outputs") is None
    b.save(tmp_path / "b.json")
    loaded = Baseline.load(tmp_path / "b.json")
    assert loaded == b and loaded.image_shape("inputs") == (12, 12, 3)
    doc = json.loads((tmp_path / "b.json").read_text())
    doc["meta"]["image"]["inputs"]["height"] = "tall"
    body = {k: v for k, v in doc.items() if k not in ("format", "version", "hash")}
    doc["hash"] = _hash(body)
    (tmp_path / "bad.json").write_text(json.dumps(doc))
    with pytest.raises(BaselineError, match="image shape of inputs is malformed"):
        Baseline.load(tmp_path / "bad.json")
    # a baseline of images with an inf pixel: the warnings of inf - inf stay inside
    bad = _images(rng, 50)
    bad[3] = np.inf
    assert Baseline.from_data(bad).rows == 50


def test_torch_images_give_the_descriptors_of_their_numpy_pixels() -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(8)
    x = _images(rng, 6)
    t = torch.from_numpy(x.copy())
    np.testing.assert_array_equal(_descriptors(t), _descriptors(x))
    np.testing.assert_array_equal(_descriptors(t.permute(0, 2, 3, 1)), _descriptors(x))
    np.testing.assert_array_equal(_descriptors(list(t)), _descriptors(x))
    before = t.clone()
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1),
                              torch.nn.Flatten(), torch.nn.Linear(4, 2))
    wrapped = modelotel.wrap(net, model="image-torch")
    with capture() as cap, torch.no_grad():
        y = wrapped(t)
        count = cap.metric(A.METRIC_FEATURE_COUNT, **{A.ML_FEATURE: "image.channel.2.std"})
        assert count.value == 6
    assert y.shape == (6, 2) and torch.equal(t, before)
    assert health.skipped(cap) == {}


def test_reading_images_imports_neither_pil_nor_torch() -> None:
    code = (
        "import sys, numpy as np\n"
        "from modelotel.stats.profiler import ABSENT, Profiler\n"
        "p = Profiler()\n"
        "p.observe(np.zeros((2, 3, 8, 8)), ABSENT)\n"
        "assert p.close().inputs.plan.names[-1] == 'image.width'\n"
        "print('PIL' in sys.modules, 'torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={**os.environ, "MODELOTEL_STATS_KERNEL": "numpy"})
    assert out.stdout.split() == ["False", "False"]
