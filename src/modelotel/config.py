"""Per-model settings, resolved once when a model is decorated.

Example:
    >>> from modelotel.config import model_config
    >>> cfg = model_config(model="churn", version="3", task="classification")
    >>> (cfg.model, cfg.version, cfg.task, cfg.max_features)
    ('churn', '3', 'classification', 200)

:func:`model_config` is the ONE place where the options of ``instrument`` / ``wrap`` /
``observe`` are validated and resolved: explicit argument > environment (``MODELOTEL_*``,
see :mod:`modelotel.environment_variables`) > default. A bad explicit argument raises
``TypeError`` / ``ValueError`` at decoration time with a message saying what to fix; a bad
environment value warns once and falls back to the default. Nothing here runs per call.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

from modelotel import environment_variables as env
from modelotel._payload.config import resolve_payload
from modelotel._safety import health

TASKS = ("classification", "regression", "other", "")

_DEFAULT_MAX_FEATURES = 200
_DEFAULT_ROW_CAP = 10_000
_DEFAULT_PAYLOAD_SAMPLE_RATE = 0.0


@dataclass(frozen=True)
class ModelConfig:
    """Everything modelotel needs to know about one instrumented model (immutable).

    Attributes:
        model: model name (``ml.model.name``); defaults to the function's qualified name.
        version: model version (``ml.model.version``); ``""`` when unknown.
        task: ``"classification"``, ``"regression"``, ``"other"`` or ``""``.
        owner: team or person owning the model (exported on ``ml.model.info``).
        runbook_url: http(s) address of the model's runbook (exported on ``ml.model.info``;
            the shipped alerts put it in their ``runbook_url`` annotation).
        input_arg: which argument holds the model input: a position (int, counted after
            ``self``/``cls``), a parameter name (str), or ``None`` for the first positional one.
        baseline: a path or a ``modelotel.Baseline`` (loaded by the statistics part), or None.
        feature_names: names of the input columns when the input has none (numpy arrays).
        max_features: most input columns that get statistics.
        row_cap: most rows of one batch reduced for statistics.
        payload_sample_rate: fraction of calls whose payload is emitted as a log record.
        payload: a ``modelotel.PayloadConfig`` or None.
    """

    model: str
    version: str = ""
    task: str = ""
    owner: str = ""
    runbook_url: str = ""
    input_arg: int | str | None = None
    baseline: object = None
    feature_names: tuple[str, ...] | None = None
    max_features: int = _DEFAULT_MAX_FEATURES
    row_cap: int = _DEFAULT_ROW_CAP
    payload_sample_rate: float = _DEFAULT_PAYLOAD_SAMPLE_RATE
    payload: object = None


def _env_str(name: str) -> str | None:
    raw = os.environ.get(name)
    if raw is None:
        return None
    return raw.strip()


def _env_positive_int(name: str, default: int) -> int:
    raw = _env_str(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if value <= 0:
        health.warn_once(
            "env:" + name,
            "modelotel: %s=%r is not a positive integer; using the default %d",
            name,
            raw,
            default,
        )
        return default
    return value


def _env_rate(name: str, default: float) -> float:
    raw = _env_str(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not 0.0 <= value <= 1.0:
        health.warn_once(
            "env:" + name,
            "modelotel: %s=%r is not a number between 0 and 1; using the default %s",
            name,
            raw,
            default,
        )
        return default
    return value


def _check_str(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"modelotel: {name}= must be a str, got {type(value).__name__}")
    return value


def _check_positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"modelotel: {name}= must be an int, got {type(value).__name__}")
    if value <= 0:
        raise ValueError(f"modelotel: {name}= must be a positive int, got {value}")
    return value


def model_config(
    *,
    model: str | None = None,
    default_model: str = "model",
    version: str | None = None,
    task: str | None = None,
    owner: str | None = None,
    runbook_url: str | None = None,
    input_arg: int | str | None = None,
    baseline: object = None,
    feature_names: Any = None,
    max_features: int | None = None,
    row_cap: int | None = None,
    payload_sample_rate: float | None = None,
    payload: object = None,
) -> ModelConfig:
    """Validate the options of ``instrument`` / ``wrap`` / ``observe`` and resolve them once.

    Args:
        model: model name; ``default_model`` (the function's qualified name) when None.
        default_model: the name to use when ``model`` is None.
        version, task, owner, runbook_url, input_arg, baseline, feature_names, max_features,
            row_cap, payload_sample_rate, payload: see :class:`ModelConfig`.

    Returns:
        The frozen :class:`ModelConfig`.

    Raises:
        TypeError: an argument has the wrong type.
        ValueError: an argument has a value outside its range.
    """
    name = _check_str("model", model) if model is not None else default_model
    if not name:
        raise ValueError("modelotel: model= must be a non-empty string")

    raw_version: object = version
    if raw_version is None:
        raw_version = _env_str(env.MODELOTEL_MODEL_VERSION) or ""
    elif isinstance(raw_version, (int, float)) and not isinstance(raw_version, bool):
        raw_version = str(raw_version)  # version=3 is a common, harmless spelling
    version = _check_str("version", raw_version)

    task = "" if task is None else _check_str("task", task).strip().lower()
    if task not in TASKS:
        raise ValueError(
            f"modelotel: task= must be one of 'classification', 'regression', 'other', got {task!r}"
        )

    if owner is None:
        owner = _env_str(env.MODELOTEL_MODEL_OWNER) or ""
    owner = _check_str("owner", owner)

    if runbook_url is None:
        runbook_url = _env_str(env.MODELOTEL_MODEL_RUNBOOK_URL) or ""
    runbook_url = _check_str("runbook_url", runbook_url).strip()
    if runbook_url and not runbook_url.startswith(("http://", "https://")):
        raise ValueError(
            "modelotel: runbook_url= must be an http:// or https:// address (it becomes a link "
            f"in alert notifications), got {runbook_url!r}"
        )

    if input_arg is not None:
        if isinstance(input_arg, bool) or not isinstance(input_arg, (int, str)):
            raise TypeError(
                "modelotel: input_arg= must be a parameter position (int) or name (str), "
                f"got {type(input_arg).__name__}"
            )
        if isinstance(input_arg, int) and input_arg < 0:
            raise ValueError(f"modelotel: input_arg= must be >= 0, got {input_arg}")
        if isinstance(input_arg, str) and not input_arg:
            raise ValueError("modelotel: input_arg= must be a non-empty parameter name")

    names: tuple[str, ...] | None = None
    if feature_names is not None:
        if isinstance(feature_names, str):
            raise TypeError("modelotel: feature_names= must be a sequence of str, not one str")
        try:
            names = tuple(feature_names)
        except TypeError:
            raise TypeError(
                "modelotel: feature_names= must be a sequence of str, "
                f"got {type(feature_names).__name__}"
            ) from None
        for n in names:
            if not isinstance(n, str):
                raise TypeError(
                    f"modelotel: feature_names= must hold str only, got {type(n).__name__}"
                )
        if not names or any(not n for n in names):
            raise ValueError("modelotel: feature_names= must hold non-empty names")
        if len(set(names)) != len(names):
            dup = sorted({n for n in names if names.count(n) > 1})
            raise ValueError(f"modelotel: feature_names= has duplicate names: {dup}")

    # baseline=: a path is loaded now, so a missing, corrupt or future-version file fails
    # at decoration with a message saying what is wrong (BaselineError is a ValueError).
    if baseline is not None:
        from modelotel.stats.baseline import Baseline, BaselineError

        if isinstance(baseline, (str, os.PathLike)):
            try:
                baseline = Baseline.load(baseline)
            except BaselineError as exc:
                raise BaselineError(f"modelotel: baseline=: {exc}") from None
        elif not isinstance(baseline, Baseline):
            raise TypeError(
                "modelotel: baseline= must be a path or a modelotel.Baseline, "
                f"got {type(baseline).__name__}"
            )
        if names is not None and baseline.features and names != baseline.feature_names:
            raise ValueError(
                f"modelotel: feature_names= {list(names)} differ from the baseline's features "
                f"{list(baseline.feature_names)}; drop feature_names= or rebuild the baseline"
            )

    if max_features is None:
        max_features = _env_positive_int(env.MODELOTEL_MAX_FEATURES, _DEFAULT_MAX_FEATURES)
    max_features = _check_positive_int("max_features", max_features)

    if row_cap is None:
        row_cap = _env_positive_int(env.MODELOTEL_ROW_CAP, _DEFAULT_ROW_CAP)
    row_cap = _check_positive_int("row_cap", row_cap)

    # payload_sample_rate= > PayloadConfig.sample_rate > MODELOTEL_PAYLOAD_SAMPLE_RATE > 0;
    # ``payload`` becomes None when payloads are off (see modelotel._payload.config).
    rate, payload = resolve_payload(payload_sample_rate, payload)

    return ModelConfig(
        model=name,
        version=version,
        task=task,
        owner=owner,
        runbook_url=runbook_url,
        input_arg=input_arg,
        baseline=baseline,
        feature_names=names,
        max_features=max_features,
        row_cap=row_cap,
        payload_sample_rate=rate,
        payload=payload,
    )
