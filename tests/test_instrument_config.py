"""_options.model_config: argument > environment (MODELOTEL_*) > default, validated once."""

from __future__ import annotations

import pytest

import modelotel
from modelotel._options import ModelConfig, model_config
from modelotel._runtime import runtime
from modelotel.testing import capture


def test_defaults() -> None:
    cfg = model_config(default_model="pkg.predict")
    assert cfg == ModelConfig(model="pkg.predict")
    assert (cfg.version, cfg.task, cfg.owner, cfg.input_arg) == ("", "", "", None)
    assert (cfg.max_features, cfg.row_cap, cfg.payload_sample_rate) == (200, 1024, 0.0)
    assert cfg.feature_names is None


def test_environment_then_argument(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELOTEL_MODEL_VERSION", "7")
    monkeypatch.setenv("MODELOTEL_MODEL_OWNER", "team-env")
    monkeypatch.setenv("MODELOTEL_MAX_FEATURES", "12")
    monkeypatch.setenv("MODELOTEL_ROW_CAP", "500")
    runtime.reload_settings()
    cfg = model_config(model="m")
    assert (cfg.version, cfg.owner, cfg.max_features, cfg.row_cap) == ("7", "team-env", 12, 500)
    cfg = model_config(model="m", version="8", owner="team-arg", max_features=3, row_cap=9)
    assert (cfg.version, cfg.owner, cfg.max_features, cfg.row_cap) == ("8", "team-arg", 3, 9)


@pytest.mark.parametrize(
    ("name", "value", "field", "default"),
    [
        ("MODELOTEL_MAX_FEATURES", "lots", "max_features", 200),
        ("MODELOTEL_MAX_FEATURES", "-1", "max_features", 200),
        ("MODELOTEL_ROW_CAP", "0", "row_cap", 1024),
    ],
)
def test_bad_environment_warns_once_and_falls_back(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    name: str,
    value: str,
    field: str,
    default: int,
) -> None:
    monkeypatch.setenv(name, value)
    runtime.reload_settings()
    assert getattr(model_config(model="a"), field) == default
    assert getattr(model_config(model="b"), field) == default
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1
    assert name in warnings[0]


def test_version_numbers_are_accepted_as_strings() -> None:
    assert model_config(model="m", version=3).version == "3"  # type: ignore[arg-type]
    assert model_config(model="m", task=" Regression ").task == "regression"


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"model": ""}, ValueError, "model="),
        ({"model": 5}, TypeError, "model="),
        ({"task": "ranking"}, ValueError, "task="),
        ({"owner": 1}, TypeError, "owner="),
        ({"runbook_url": 1}, TypeError, "runbook_url="),
        ({"runbook_url": "wiki/churn"}, ValueError, "runbook_url=.*http"),
        ({"input_arg": -1}, ValueError, "input_arg="),
        ({"input_arg": 1.5}, TypeError, "input_arg="),
        ({"input_arg": True}, TypeError, "input_arg="),
        ({"feature_names": "abc"}, TypeError, "feature_names="),
        ({"feature_names": [1, 2]}, TypeError, "feature_names="),
        ({"max_features": 0}, ValueError, "max_features="),
        ({"row_cap": "10"}, TypeError, "row_cap="),
        ({"payload_sample_rate": -0.1}, ValueError, "payload_sample_rate="),
        ({"payload_sample_rate": "1"}, TypeError, "payload_sample_rate="),
    ],
)
def test_bad_arguments_fail_at_setup(
    kwargs: dict[str, object], error: type[Exception], message: str
) -> None:
    kwargs.setdefault("model", "m")
    with pytest.raises(error, match=message):
        model_config(**kwargs)  # type: ignore[arg-type]


def test_two_instrumentations_of_one_model_share_its_monitor(
    caplog: pytest.LogCaptureFixture,
) -> None:
    @modelotel.instrument(model="config-shared", version="1", owner="a")
    def first(x: int) -> int:
        return x

    @modelotel.instrument(model="config-shared", version="1", owner="b")
    def second(x: int) -> int:
        return x

    with capture() as cap:
        first(1)
        second(2)
        calls = cap.metric("ml.prediction.calls", **{"ml.model.name": "config-shared"})
        info = cap.metric("ml.model.info", **{"ml.model.name": "config-shared"})
    assert calls.value == 2
    assert info.attributes["ml.model.owner"] == "a"  # the first instrumentation's options
    assert any("instrumented twice" in r.getMessage() for r in caplog.records)


def test_runbook_url_from_argument_or_environment_reaches_model_info(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MODELOTEL_MODEL_RUNBOOK_URL", "https://runbooks.example/env")
    runtime.reload_settings()
    assert model_config(model="m").runbook_url == "https://runbooks.example/env"
    monkeypatch.delenv("MODELOTEL_MODEL_RUNBOOK_URL")
    runtime.reload_settings()
    assert model_config(model="m").runbook_url == ""

    @modelotel.instrument(model="config-runbook", runbook_url="https://runbooks.example/churn")
    def predict(x: int) -> int:
        return x

    observed = modelotel.observe("config-runbook-observed", runbook_url="http://wiki/observed")
    with capture() as cap:
        predict(1)
        with observed as call:
            call.record_outputs([1])
        for model, url in (
            ("config-runbook", "https://runbooks.example/churn"),
            ("config-runbook-observed", "http://wiki/observed"),
        ):
            info = cap.metric("ml.model.info", **{"ml.model.name": model})
            assert info.attributes["ml.model.runbook_url"] == url
