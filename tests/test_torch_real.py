"""Real torch tensors through instrument(), stats, payloads and wrap(nn.Module).

Skipped when torch is not installed (it is not a dev extra: the default wheels pull several GB
of CUDA libraries; tests/run.sh installs it best effort). The stats of a tensor must equal the
stats of the same data as numpy, autograd must work through an instrumented model, and
nothing may call ``.cpu()`` or ``.numpy()`` on a tensor in a way that raises or blocks.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import _health as health  # noqa: E402
import modelotel  # noqa: E402
from modelotel import attributes as A  # noqa: E402, N812
from modelotel.stats import Baseline  # noqa: E402
from modelotel.stats.read import extract  # noqa: E402
from modelotel.stats.reasons import SKIP_GPU  # noqa: E402
from modelotel.testing import Captured, MetricPoint, capture  # noqa: E402

_ids = itertools.count()
_STATS_PREFIXES = ("ml.feature.", "ml.output.")


@pytest.fixture
def cap() -> Iterator[Captured]:
    with capture() as c:
        yield c


def _name(prefix: str) -> str:
    return f"torch-{prefix}-{next(_ids)}"


def _stats_points(points: list[MetricPoint], model: str) -> dict[tuple[Any, ...], float]:
    """Every ml.feature.* / ml.output.* point of ``model``, keyed without the model name."""
    out = {}
    for p in points:
        if p.name.startswith(_STATS_PREFIXES) and p.attributes.get(A.ML_MODEL_NAME) == model:
            attrs = tuple(sorted((k, v) for k, v in p.attributes.items() if k != A.ML_MODEL_NAME))
            out[(p.name, attrs)] = p.value
    return out


def _twins(
    fn_torch: Callable[[Any], Any], fn_numpy: Callable[[Any], Any], baseline: Baseline | None
) -> tuple[Callable[[Any], Any], str, Callable[[Any], Any], str]:
    """The same model instrumented twice: once fed tensors, once numpy arrays."""
    t_name, n_name = _name("t"), _name("n")
    return (
        modelotel.instrument(model=t_name, baseline=baseline)(fn_torch), t_name,
        modelotel.instrument(model=n_name, baseline=baseline)(fn_numpy), n_name,
    )


def _data(dtype: Any, shape: tuple[int, ...], seed: int) -> Any:
    gen = torch.Generator().manual_seed(seed)
    if dtype == torch.bool:
        return torch.rand(shape, generator=gen) > 0.3
    if dtype == torch.int64:
        return torch.randint(-5, 20, shape, generator=gen)
    return (torch.randn(shape, generator=gen) * 3 + 1).to(dtype)


CASES = [
    (torch.float32, (64, 3)),
    (torch.float16, (64, 3)),
    (torch.int64, (64, 2)),
    (torch.bool, (64, 4)),
    (torch.float32, (5,)),  # 1-D input: one row of features, as for numpy
    (torch.int64, (7,)),
]


@pytest.mark.parametrize(("dtype", "shape"), CASES, ids=lambda c: str(c))
def test_tensor_in_and_out_has_the_stats_of_the_same_numpy_data(
    cap: Captured, dtype: Any, shape: tuple[int, ...]
) -> None:
    train = _data(dtype, (200, shape[-1]), seed=1)
    x = _data(dtype, shape, seed=2)
    before = x.clone()
    train_out = train[:, 0]
    baseline = Baseline.from_data(train.numpy(), outputs=train_out.numpy())
    returned: list[Any] = []

    def predict_t(t: Any) -> Any:
        out = t if t.dim() == 1 else t[:, 0]
        returned.append(out)
        return out

    def predict_n(a: np.ndarray) -> np.ndarray:
        return a if a.ndim == 1 else a[:, 0]

    pt, t_name, pn, n_name = _twins(predict_t, predict_n, baseline)
    got = pt(x)
    assert got is returned[0]  # the user's tensor itself, not a copy or a conversion
    assert got.dtype == dtype
    assert torch.equal(x, before)  # not mutated
    pn(x.numpy().copy())
    points = cap.collect()
    t_stats, n_stats = _stats_points(points, t_name), _stats_points(points, n_name)
    names = {name for name, _ in t_stats}
    assert {A.METRIC_FEATURE_COUNT, A.METRIC_FEATURE_BIN, A.METRIC_OUTPUT_COUNT,
            A.METRIC_OUTPUT_BIN, A.METRIC_FEATURE_DRIFT} <= names
    assert t_stats == n_stats
    rows = 1 if len(shape) == 1 else shape[0]
    features = shape[0] if len(shape) == 1 else shape[1]
    counts = [v for (name, _), v in t_stats.items() if name == A.METRIC_FEATURE_COUNT]
    assert counts == [rows] * features
    span = next(s for s in cap.spans() if s.attributes[A.ML_MODEL_NAME] == t_name)
    assert span.attributes[A.ML_INPUT_ROWS] == shape[0]
    assert health.skipped(cap) == {}


def test_extract_of_tensors_matches_numpy_without_copying() -> None:
    x = torch.arange(12, dtype=torch.float32).reshape(4, 3)
    t = extract(x)
    assert t is not None
    assert t.matrix is not None
    assert (t.rows, t.names) == (4, ("0", "1", "2"))
    assert np.shares_memory(t.matrix, x.numpy())
    out = extract(torch.tensor([1, 0, 1]), row_vector=False)
    assert out is not None
    assert out.matrix is not None
    assert out.matrix.shape == (3, 1)
    assert out.matrix.dtype == np.int64
    bf = extract(torch.ones(2, 2, dtype=torch.bfloat16))  # no numpy bfloat16: read as float32
    assert bf is not None
    assert bf.matrix is not None
    assert bf.matrix.dtype == np.float32
    scalar = extract(torch.tensor(2.5), row_vector=False)
    assert scalar is not None
    assert scalar.matrix is not None
    assert scalar.matrix.tolist() == [[2.5]]


def test_requires_grad_input_keeps_autograd_and_stats(cap: Captured) -> None:
    weight = torch.tensor([[0.5], [-2.0], [1.0]], requires_grad=True)

    def model(t: Any) -> Any:
        return (t @ weight).squeeze(1)

    x = _data(torch.float32, (16, 3), seed=5).requires_grad_(True)
    x_ref = x.detach().clone().requires_grad_(True)
    pt, t_name, pn, n_name = _twins(model, lambda a: a @ weight.detach().numpy()[:, 0], None)

    y = pt(x)
    assert y.requires_grad
    assert y.grad_fn is not None
    y.sum().backward()
    model(x_ref).sum().backward()
    assert x.grad is not None
    assert x_ref.grad is not None
    assert torch.equal(x.grad, x_ref.grad)
    grad_w = weight.grad
    assert grad_w is not None
    assert torch.allclose(grad_w, 2 * x_ref.detach().sum(0)[:, None])

    pn(x.detach().numpy().copy())
    points = cap.collect()
    t_stats, n_stats = _stats_points(points, t_name), _stats_points(points, n_name)
    assert t_stats
    assert t_stats == n_stats
    out_count = [v for (name, _), v in t_stats.items() if name == A.METRIC_OUTPUT_COUNT]
    assert out_count == [16]


def test_payload_record_serializes_tensors(cap: Captured) -> None:
    name = _name("payload")

    @modelotel.instrument(model=name, payload_sample_rate=1.0)
    def predict(t: Any) -> Any:
        return (t.sum(1) > 0).to(torch.int64)

    x = torch.tensor([[0.5, -1.25], [2.0, 0.25], [-3.0, 1.0]], requires_grad=True)
    out = predict(x)
    half = torch.tensor([[1.5, 2.0]], dtype=torch.float16)
    predict(half)
    flags = torch.tensor([True, False, True])

    @modelotel.instrument(model=name + "-bool", payload_sample_rate=1.0)
    def identity(t: Any) -> Any:
        return t

    identity(flags)
    records = [dict(r.log_record.attributes or {}) for r in cap.logs()]
    assert [r[A.ML_MODEL_NAME] for r in records] == [name, name, name + "-bool"]
    assert all(r[A.ML_PAYLOAD_SAMPLE_REASON] == "rate" for r in records)
    first, second, third = records
    assert json.loads(first[A.ML_PAYLOAD_INPUTS]) == [[0.5, -1.25], [2.0, 0.25], [-3.0, 1.0]]
    assert json.loads(first[A.ML_PAYLOAD_OUTPUTS]) == out.tolist() == [0, 1, 0]
    assert json.loads(second[A.ML_PAYLOAD_INPUTS]) == [[1.5, 2.0]]
    assert json.loads(second[A.ML_PAYLOAD_OUTPUTS]) == [1]
    assert json.loads(third[A.ML_PAYLOAD_INPUTS]) == [True, False, True]
    spans = {s.attributes[A.ML_PREDICTION_ID]: s for s in cap.spans()}
    for rec in records:
        span = spans[rec[A.ML_PREDICTION_ID]]
        assert span.attributes[A.ML_PAYLOAD_SAMPLED] is True
    assert x.grad is None  # serializing a grad tensor did not touch autograd state


class _Recording(torch.nn.Linear):  # type: ignore[misc]
    """nn.Linear that remembers the tensor its forward returned."""

    last: Any = None

    def forward(self, x: Any) -> Any:
        self.last = super().forward(x)
        return self.last


def test_wrap_nn_module_records_spans_and_returns_the_modules_tensor(cap: Captured) -> None:
    torch.manual_seed(0)
    net = _Recording(3, 2)
    name = _name("wrap")
    wrapped = modelotel.wrap(net, model=name, version="7")
    assert isinstance(wrapped, torch.nn.Module)
    assert isinstance(wrapped, torch.nn.Linear)
    x = _data(torch.float32, (4, 3), seed=9)
    y = wrapped(x)
    assert y is net.last  # the identical tensor, not a copy
    assert torch.equal(y, torch.nn.functional.linear(x, net.weight, net.bias))
    # forward() itself is not instrumented; parameters and state are the module's
    assert wrapped.forward(x) is net.last
    assert list(wrapped.parameters()) == list(net.parameters())
    assert wrapped.state_dict().keys() == net.state_dict().keys()
    (span,) = cap.spans()
    assert span.name == f"predict {name}"
    assert span.attributes[A.ML_MODEL_VERSION] == "7"
    assert span.attributes[A.ML_INPUT_ROWS] == 4
    assert span.attributes[A.ML_INPUT_FEATURES] == 3
    info = cap.metric(A.METRIC_MODEL_INFO, **{A.ML_MODEL_NAME: name})
    assert info.attributes[A.ML_MODEL_FRAMEWORK] == "pytorch"
    # backward through the wrapped module: the same gradients as through the module
    wrapped(x).sum().backward()
    grad = net.weight.grad
    assert grad is not None
    assert torch.allclose(grad, x.sum(0).expand(2, 3))


def test_wrap_nn_module_survives_methods_that_return_the_module(cap: Captured) -> None:
    net = torch.nn.Linear(2, 1)
    name = _name("chain")
    # the usual idioms: each of these returns the module itself
    model = modelotel.wrap(net, model=name).eval().to("cpu").requires_grad_(False)
    assert isinstance(model, torch.nn.Linear)
    assert not net.training
    assert not net.weight.requires_grad
    assert model.train(False) is model
    with torch.no_grad():
        model(torch.ones(3, 2))
    assert [s.name for s in cap.spans()] == [f"predict {name}"]
    # methods returning something else are unchanged
    assert model.extra_repr() == net.extra_repr()
    assert list(model.named_parameters()) == list(net.named_parameters())


def test_tensor_off_the_cpu_is_skipped_without_touching_it(cap: Captured) -> None:
    """A tensor on another device is never copied to the host (.cpu() would block the
    device stream): stats skip it, counted. The meta device stands in for a GPU."""
    name = _name("meta")

    @modelotel.instrument(model=name)
    def predict(t: Any) -> Any:
        return t

    x = torch.empty(8, 3, device="meta")
    assert predict(x) is x
    assert health.skipped(cap) == {SKIP_GPU: 2}  # the input and the output
    (span,) = cap.spans()
    assert span.attributes[A.ML_INPUT_ROWS] == 8
    counts = [p for p in cap.collect() if p.name == A.METRIC_FEATURE_COUNT
              and p.attributes.get(A.ML_MODEL_NAME) == name]
    assert counts == []
