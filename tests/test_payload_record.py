"""The ml.prediction.payload record: shape, span link, caps, hostile inputs."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pytest

from _payload_support import MISSING, Sink, fake_call, no_logger, run
from modelotel import attributes as tn
from modelotel._options import model_config
from modelotel._payload import PayloadConfig, PayloadPart, payload_part
from modelotel._payload.sampling import id_hash, threshold
from modelotel._safety import health

BIG = {"max_records_per_second": 1e9, "max_bytes_per_second": 1e12}


def _hook(
    cfg: PayloadConfig | None = None, *, names: tuple[str, ...] | None = None, rate: float = 1.0
) -> PayloadPart:
    return PayloadPart(
        model="churn",
        version="3",
        rate=rate,
        config=cfg or PayloadConfig(**BIG),
        feature_names=names,
        logger=no_logger,
    )


def _one(sink: Sink, hook: PayloadPart, **kw: Any) -> dict[str, Any]:
    before = len(sink.logs())
    run(hook, fake_call(logger=sink.logger, **kw))
    logs = sink.logs()
    assert len(logs) == before + 1
    rec = logs[-1]
    assert rec.event_name == tn.EVENT_PREDICTION_PAYLOAD
    attrs = dict(rec.attributes)
    payload = [k for k in attrs if k.startswith(("ml.payload.input", "ml.payload.output"))]
    assert attrs[tn.ML_PAYLOAD_BYTES] == sum(len(attrs[k].encode("utf-8")) for k in payload)
    for k in payload:
        json.loads(attrs[k])  # every payload value is valid JSON text
    return attrs


@pytest.fixture
def sink() -> Any:
    with Sink() as s:
        yield s


def test_record_is_linked_to_the_span_and_carries_the_fixed_attributes(sink: Sink) -> None:
    hook = _hook()
    with sink.tracer.start_as_current_span("predict churn") as span:
        call = fake_call(
            inputs={"age": 41, "plan": "gold"},
            outputs=0.75,
            span=span,
            logger=sink.logger,
            pid="00000000000000aa",
        )
        run(hook, call)
    (rec,) = sink.logs()
    ctx = span.get_span_context()
    assert rec.trace_id == ctx.trace_id
    assert rec.span_id == ctx.span_id
    assert rec.severity_number is not None
    assert rec.severity_number.name == "INFO"
    assert rec.body is None
    assert dict(rec.attributes) == {
        tn.ML_MODEL_NAME: "churn",
        tn.ML_MODEL_VERSION: "3",
        tn.ML_PREDICTION_ID: "00000000000000aa",
        tn.ML_PAYLOAD_SAMPLE_REASON: "rate",
        "ml.payload.input.age": "41",
        "ml.payload.input.plan": '"gold"',
        tn.ML_PAYLOAD_OUTPUTS: "0.75",
        tn.ML_PAYLOAD_BYTES: 2 + 6 + 4,
    }
    assert call.span_attributes == {tn.ML_PAYLOAD_SAMPLED: True}


def test_unsampled_call_emits_nothing_and_sets_no_span_attribute(sink: Sink) -> None:
    hook = _hook(rate=0.0, cfg=PayloadConfig(**BIG))
    call = fake_call(inputs=[1], outputs=[1], logger=sink.logger)
    run(hook, call)
    assert sink.logs() == []
    assert call.span_attributes == {}


def test_a_model_with_payloads_off_has_no_payload_part() -> None:
    off = model_config(model="payload-off", payload_sample_rate=0.0)
    assert payload_part(off, no_logger) is None
    on = model_config(model="payload-on", payload=PayloadConfig(), payload_sample_rate=0.25)
    part = payload_part(on, no_logger)
    assert isinstance(part, PayloadPart)
    assert part.end.__name__ == "payload"  # the component name if it ever raises
    ids = [f"{i * 0x9E3779B97F4A7C15 % (1 << 64):016x}" for i in range(1, 400)]
    kept = [pid for pid in ids if part.decide(fake_call(pid=pid, inputs=[1])) == "rate"]
    assert kept == [pid for pid in ids if id_hash(pid) < threshold(0.25)]


def test_numpy_pandas_lists_dicts_and_tensor_like(sink: Sink) -> None:
    hook = _hook(names=("a", "b"))
    attrs = _one(sink, hook, inputs=np.array([[1.5, 2.0], [3.0, np.nan]]), outputs=np.array([1, 0]))
    assert attrs["ml.payload.input.a"] == "[1.5,3.0]"
    assert attrs["ml.payload.input.b"] == '[2.0,"NaN"]'
    assert attrs[tn.ML_PAYLOAD_OUTPUTS] == "[1,0]"
    assert attrs[tn.ML_PAYLOAD_ORIGINAL_ROWS] == 2

    df = pd.DataFrame(
        {"x": [1, 2], "when": pd.to_datetime(["2026-01-01", "2026-01-02"]), "s": ["p", None]}
    )
    attrs = _one(sink, hook, inputs=df, outputs=pd.Series([0.1, 0.2]))
    assert attrs["ml.payload.input.x"] == "[1,2]"
    assert json.loads(attrs["ml.payload.input.when"])[0].startswith("2026-01-01")
    assert attrs["ml.payload.input.s"] in ('["p",null]', '["p","NaN"]')  # pandas 2 vs 3
    assert attrs[tn.ML_PAYLOAD_OUTPUTS] == "[0.1,0.2]"

    attrs = _one(sink, hook, inputs=[{"u": 1, "v": "x"}, {"u": 2}], outputs=[True, False])
    assert attrs["ml.payload.input.u"] == "[1,2]"
    assert attrs["ml.payload.input.v"] == '["x",null]'

    class FakeTensor:  # duck-typed like torch.Tensor
        def __init__(self, a: np.ndarray) -> None:
            self.a = a
            self.shape = a.shape

        def __getitem__(self, i: Any) -> FakeTensor:
            return FakeTensor(self.a[i])

        def detach(self) -> FakeTensor:
            return self

        def cpu(self) -> FakeTensor:
            return self

        def numpy(self) -> np.ndarray:
            return self.a

    attrs = _one(
        sink,
        hook,
        inputs=FakeTensor(np.arange(30, dtype=np.float32).reshape(15, 2)),
        outputs=np.float64(0.5),
    )
    assert json.loads(attrs["ml.payload.input.a"]) == [float(2 * i) for i in range(10)]
    assert attrs[tn.ML_PAYLOAD_ORIGINAL_ROWS] == 15
    assert attrs[tn.ML_PAYLOAD_TRUNCATED] is True
    assert attrs[tn.ML_PAYLOAD_OUTPUTS] == "0.5"

    @dataclass
    class Req:
        user: str
        n: int

    attrs = _one(sink, hook, inputs=Req("ann", 3), outputs=MISSING)
    assert attrs["ml.payload.input.user"] == '"ann"'
    assert tn.ML_PAYLOAD_OUTPUTS not in attrs


def test_caps_rows_items_strings_depth_and_original_size(sink: Sink) -> None:
    cfg = PayloadConfig(max_rows=3, max_items=4, max_string_length=5, max_depth=3, **BIG)
    hook = _hook(cfg)
    attrs = _one(sink, hook, inputs=[list(range(10)) for _ in range(8)], outputs=["abcdefghij"])
    assert json.loads(attrs[tn.ML_PAYLOAD_INPUTS]) == [[0, 1, 2, 3]] * 3
    assert attrs[tn.ML_PAYLOAD_OUTPUTS] == '["abcde"]'
    assert attrs[tn.ML_PAYLOAD_TRUNCATED] is True
    assert attrs[tn.ML_PAYLOAD_ORIGINAL_ROWS] == 8
    assert attrs[tn.ML_PAYLOAD_ORIGINAL_BYTES] > attrs[tn.ML_PAYLOAD_BYTES]
    assert health.skipped[tn.REASON_PAYLOAD_ROWS] == 1
    assert health.skipped[tn.REASON_PAYLOAD_ITEMS] == 1
    assert health.skipped[tn.REASON_PAYLOAD_STRING] == 1
    attrs = _one(sink, hook, inputs={"a": {"b": {"c": {"d": 1}}}}, outputs=1)
    assert json.loads(attrs["ml.payload.input.a"]) == {"b": {"c": "[depth]"}}
    assert health.skipped[tn.REASON_PAYLOAD_DEPTH] == 1
    small = _one(sink, hook, inputs=[1, 2], outputs=1)
    assert tn.ML_PAYLOAD_TRUNCATED not in small
    assert tn.ML_PAYLOAD_ORIGINAL_BYTES not in small


@pytest.mark.slow
def test_max_bytes_bounds_every_record(sink: Sink) -> None:
    cfg = PayloadConfig(
        max_bytes=2000, max_rows=1000, max_items=1000, max_string_length=100_000, **BIG
    )
    hook = _hook(cfg)
    for inputs in (
        ["é" * 3000],
        {f"f{i}": '"\\' * 300 for i in range(50)},  # escapes double the JSON size
        [[float(i)] * 50 for i in range(1000)],
        np.arange(100_000.0),
        {"text": "x" * 50_000, "n": 1},
    ):
        attrs = _one(sink, hook, inputs=inputs, outputs=[0])
        assert attrs[tn.ML_PAYLOAD_BYTES] <= 2000
        assert attrs[tn.ML_PAYLOAD_TRUNCATED] is True


def test_bad_text_is_replaced_so_the_batch_encodes(sink: Sink) -> None:
    hook = _hook()
    attrs = _one(
        sink,
        hook,
        inputs={
            "s": "ok\ud800\x00\x1b[31m\x7f\u0085tab\tnl\n",
            "b": b"\xff\xfe bytes \xc3(",
            "k\udfff": 1,
        },
        outputs=["\udc80"],
    )
    text = json.loads(attrs["ml.payload.input.s"])
    assert text == "ok\ufffd\ufffd\ufffd[31m\ufffd\ufffdtab\tnl\n"
    assert "\ufffd" in json.loads(attrs["ml.payload.input.b"])
    assert "ml.payload.input.k\ufffd" in attrs
    assert attrs[tn.ML_PAYLOAD_OUTPUTS] == '["\ufffd"]'
    for k, v in attrs.items():
        (k + str(v)).encode("utf-8")  # strict: raises on a lone surrogate
    assert len(sink.otlp_bytes()) > 0


class RaisingRepr:
    def __repr__(self) -> str:
        raise RuntimeError("repr exploded")


class RaisingEq:
    def __eq__(self, other: object) -> bool:
        raise RuntimeError("eq exploded")

    __hash__ = object.__hash__

    def __repr__(self) -> str:
        return "RaisingEq()"


def _hostile() -> list[tuple[str, Any]]:
    circ_list: list[Any] = [1]
    circ_list.append(circ_list)
    circ_dict: dict[str, Any] = {"a": 1}
    circ_dict["self"] = circ_dict
    return [
        ("50MB float array", np.zeros(50 * 2**20 // 8)),
        ("50MB string", "s" * (50 * 2**20)),
        ("50MB bytes", b"b" * (50 * 2**20)),
        ("50MB list", [1.5] * (50 * 2**20 // 8)),
        ("object array", np.array([RaisingRepr(), {"x": [1, 2]}, None, "t"], dtype=object)),
        ("circular list", circ_list),
        ("circular dict", circ_dict),
        ("raising repr", RaisingRepr()),
        ("raising eq", [RaisingEq()]),
        ("generator", (i for i in range(10))),
        ("huge int", 10**5000),
        ("complex", np.array([1 + 2j])),
        ("structured", np.array([(1, 2.0)], dtype=[("a", "i4"), ("b", "f8")])),
        ("set", {1, 2, 3}),
        ("deep", [[[[[[[[[[[[1]]]]]]]]]]]]),
    ]


@pytest.mark.parametrize(("name", "value"), _hostile(), ids=[n for n, _ in _hostile()])
def test_hostile_inputs_are_capped_or_replaced_never_raise(
    sink: Sink, name: str, value: Any
) -> None:
    hook = _hook(PayloadConfig(max_bytes=4096, **BIG))
    attrs = _one(sink, hook, inputs=value, outputs=value)
    assert attrs[tn.ML_PAYLOAD_BYTES] <= 4096
    if name.startswith("50MB"):
        assert attrs[tn.ML_PAYLOAD_TRUNCATED] is True
        assert attrs[tn.ML_PAYLOAD_ORIGINAL_BYTES] >= 50 * 2**20
    if name == "generator":
        assert attrs[tn.ML_PAYLOAD_INPUTS] == '"[iterator]"'
        assert next(value) == 0  # not consumed
    if name == "raising repr":
        assert attrs[tn.ML_PAYLOAD_INPUTS] == '"[unrepresentable RaisingRepr]"'
        assert health.skipped[tn.REASON_PAYLOAD_UNREPRESENTABLE] == 1
    if name.startswith("circular"):
        assert "[circular]" in attrs.get(tn.ML_PAYLOAD_INPUTS, "") + attrs.get(
            "ml.payload.input.self", ""
        )
        assert health.skipped[tn.REASON_PAYLOAD_CIRCULAR] == 1
    assert len(sink.otlp_bytes()) > 0


def test_inputs_are_not_mutated(sink: Sink) -> None:
    hook = _hook(PayloadConfig(deny_fields={"pw"}, hash_fields=(), **BIG))
    data = {"pw": "secret", "email": "a@b.co", "rows": [[1, 2]]}
    arr = np.array([1.0, np.nan])
    _one(sink, hook, inputs=data, outputs=arr)
    assert data == {"pw": "secret", "email": "a@b.co", "rows": [[1, 2]]}
    assert np.isnan(arr[1])
    assert arr.flags.writeable


def test_an_internal_failure_on_the_payload_worker_is_guarded_there_and_counted(
    expect_internal_errors: list[Any],
) -> None:
    hook = _hook()

    class BrokenLogger:
        def emit(self, **kw: Any) -> None:
            raise RuntimeError("exporter bug")

    call = fake_call(inputs=[1], outputs=[1], logger=BrokenLogger())
    run(hook, call)  # returns: the record is built and emitted on the worker, in its guard
    assert call.span_attributes == {tn.ML_PAYLOAD_SAMPLED: True}  # queued, then lost: counted
    assert [(c, str(e)) for c, e in expect_internal_errors] == [("payload", "exporter bug")]
    assert health.errors == {"payload": 1}


def test_field_attributes_are_capped_below_the_sdk_attribute_limit(sink: Sink) -> None:
    hook = _hook(PayloadConfig(max_items=1000, **BIG))
    inputs = {f"in{i}": i for i in range(150)}
    outputs = {f"out{i}": i for i in range(30)}
    attrs = _one(sink, hook, inputs=inputs, outputs=outputs)
    in_keys = [k for k in attrs if k.startswith(tn.ML_PAYLOAD_INPUT_PREFIX)]
    out_keys = [k for k in attrs if k.startswith(tn.ML_PAYLOAD_OUTPUT_PREFIX)]
    assert len(in_keys) == 80
    assert len(out_keys) == 20
    assert in_keys[0] == "ml.payload.input.in0"
    assert attrs[tn.ML_PAYLOAD_TRUNCATED] is True
    assert len(attrs) <= 128  # nothing dropped by the SDK (its warning would fail the test)
    few_out = _one(sink, hook, inputs=inputs, outputs={"score": 1})
    assert len([k for k in few_out if k.startswith(tn.ML_PAYLOAD_INPUT_PREFIX)]) == 99


class ExplodingList(list[Any]):
    def __len__(self) -> int:
        raise RuntimeError("len exploded")


class ExplodingMapping(dict[str, Any]):
    def items(self) -> Any:
        raise RuntimeError("items exploded")


@pytest.mark.parametrize("value", [ExplodingList([1, 2]), ExplodingMapping(a=1)])
def test_user_container_methods_that_raise_drop_the_record_counted(sink: Sink, value: Any) -> None:
    hook = _hook()
    run(hook, fake_call(inputs=value, outputs=[1], logger=sink.logger))
    assert sink.logs() == []
    assert health.dropped[tn.REASON_PAYLOAD_SERIALIZE_ERROR] == 1
    assert health.errors == {}


def test_wide_and_heavy_mappings_are_cut_and_counted(sink: Sink) -> None:
    hook = _hook(PayloadConfig(max_items=5, max_bytes=300, **BIG))
    attrs = _one(sink, hook, inputs=[{f"k{i}": i for i in range(50)}], outputs=0)
    assert [k for k in attrs if k.startswith(tn.ML_PAYLOAD_INPUT_PREFIX)] == [
        f"ml.payload.input.k{i}" for i in range(5)
    ]
    assert health.skipped[tn.REASON_PAYLOAD_ITEMS] >= 1
    attrs = _one(sink, hook, inputs={"a": "x" * 200, "b": "y" * 200, "c": 1}, outputs=0)
    assert "ml.payload.input.c" not in attrs
    assert attrs[tn.ML_PAYLOAD_BYTES] <= 300
    assert health.skipped[tn.REASON_PAYLOAD_BYTES] >= 1


def test_numpy_scalars_of_every_kind(sink: Sink) -> None:
    hook = _hook()
    values = [
        np.datetime64("2026-11-25T10:00"),
        np.timedelta64(3, "s"),
        np.bool_(True),
        np.complex128(1 + 2j),
        np.str_("s"),
        np.float32("inf"),
        {1: "int key", None: "none key", 2.5: "float key", (1, 2): "tuple key"},
    ]
    attrs = _one(sink, hook, inputs=values, outputs=np.int8(3))
    got = json.loads(attrs[tn.ML_PAYLOAD_INPUTS])
    assert got[0] == "2026-11-25T10:00"
    assert got[1] == "3 seconds"
    assert got[2] is True
    assert got[3] == "(1+2j)"
    assert got[4] == "s"
    assert got[5] == "Infinity"
    assert got[6] == {"1": "int key", "None": "none key", "2.5": "float key", "(1, 2)": "tuple key"}
    assert attrs[tn.ML_PAYLOAD_OUTPUTS] == "3"


def test_real_torch_tensors_when_installed(sink: Sink) -> None:
    torch = pytest.importorskip("torch")
    hook = _hook(PayloadConfig(max_rows=2, **BIG))
    attrs = _one(
        sink,
        hook,
        inputs=torch.arange(8.0).reshape(4, 2).requires_grad_(),
        outputs=torch.ones(3, dtype=torch.bfloat16),
    )
    assert json.loads(attrs[tn.ML_PAYLOAD_INPUTS]) == [[0.0, 1.0], [2.0, 3.0]]
    assert attrs[tn.ML_PAYLOAD_OUTPUTS] == "[1.0,1.0]"
    assert attrs[tn.ML_PAYLOAD_ORIGINAL_ROWS] == 4
    scalar = _one(sink, hook, inputs=torch.tensor(7), outputs=torch.tensor(True))
    assert scalar[tn.ML_PAYLOAD_INPUTS] == "7"
    assert scalar[tn.ML_PAYLOAD_OUTPUTS] == "true"


def test_single_dtype_frame_block_path_keeps_values_and_names(sink: Sink) -> None:
    hook = _hook(PayloadConfig(max_rows=2, max_items=3, **BIG))
    df = pd.DataFrame(np.arange(40, dtype=np.int32).reshape(10, 4), columns=["a", "b", "c", "d"])
    attrs = _one(sink, hook, inputs=df, outputs=0)
    fields = {
        k: json.loads(v) for k, v in attrs.items() if k.startswith(tn.ML_PAYLOAD_INPUT_PREFIX)
    }
    assert fields == {
        "ml.payload.input.a": [0, 4],
        "ml.payload.input.b": [1, 5],
        "ml.payload.input.c": [2, 6],
    }
    assert attrs[tn.ML_PAYLOAD_ORIGINAL_ROWS] == 10
    assert attrs[tn.ML_PAYLOAD_TRUNCATED] is True
