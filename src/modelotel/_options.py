"""The options of ``instrument`` / ``wrap`` / ``observe``, declared once and resolved once.

Example:
    >>> from modelotel._options import model_config
    >>> cfg = model_config(model="churn", version="3", task="classification")
    >>> (cfg.model, cfg.version, cfg.task, cfg.max_features)
    ('churn', '3', 'classification', 200)

An option is declared in three places of this module and nowhere else: a key of
:class:`ModelOptions` (what ``instrument(**options)``, ``wrap`` and ``observe`` accept; IDEs
and type checkers read it), a field of :class:`ModelConfig` (its resolved value) and an
entry of :data:`RESOLVERS` (how an argument is checked and what the environment supplies
when it is not given). :func:`model_config` applies the one precedence rule, argument >
environment (:mod:`modelotel._settings`) > default, at decoration time: a bad argument
raises ``TypeError`` / ``ValueError`` there, saying what to fix; nothing here runs per call.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, TypedDict

from modelotel._mlflow import RegisteredModel, registered_model
from modelotel._payload.config import PayloadConfig, resolve_payload
from modelotel._runtime import runtime
from modelotel._settings import Settings, pick
from modelotel.stats.baseline import Baseline, BaselineError

if TYPE_CHECKING:
    from typing_extensions import Unpack

TASKS = ("classification", "regression", "other", "")


class ModelOptions(TypedDict, total=False):
    """Keyword options of ``modelotel.instrument``, ``wrap`` and ``observe``.

    Attributes:
        model_uri: an MLflow registered-model URI, ``models:/NAME/VERSION`` or
            ``models:/NAME@ALIAS`` (the alias resolved once, now, through the registry): the
            model name and version come from it (an explicit ``model=`` or ``version=`` that
            differs is an error). ``wrap()`` of a loaded ``mlflow.pyfunc`` model finds them in
            the registry by itself when neither ``model_uri=`` nor ``version=`` is given.
        version: model version (``ml.model.version``; else ``MODELOTEL_MODEL_VERSION``).
        task: ``"classification"``, ``"regression"`` or ``"other"``.
        owner: owning team or person (else ``MODELOTEL_MODEL_OWNER``), on ``ml.model.info``.
        runbook_url: http(s) address of the page an on-call engineer opens when one of this
            model's alerts fires (else ``MODELOTEL_MODEL_RUNBOOK_URL``); on ``ml.model.info``.
        input_arg: position (after self/cls) or name of the argument holding the input.
        baseline: training baseline (a path or a ``modelotel.Baseline``) for drift.
        feature_names: column names when the input carries none (numpy arrays).
        max_features: most input columns that get statistics (default 200).
        row_cap: most rows of one batch reduced for statistics (default 1,024).
        payload_sample_rate: fraction of calls whose payload is logged (default 0).
        payload: a ``modelotel.PayloadConfig``.
        tokenizer: counts the tokens of text inputs and outputs (the ``tokens`` descriptor):
            a Hugging Face tokenizer, an object with ``encode``, or a callable from a text
            to its tokens. ``wrap()`` of a Hugging Face pipeline takes the pipeline's own.
    """

    model_uri: str | None
    version: str | int | None
    task: str | None
    owner: str | None
    runbook_url: str | None
    input_arg: int | str | None
    baseline: str | os.PathLike[str] | Baseline | None
    feature_names: Sequence[str] | None
    max_features: int | None
    row_cap: int | None
    payload_sample_rate: float | None
    payload: PayloadConfig | None
    tokenizer: Any


@dataclass(frozen=True)
class ModelConfig:
    """Everything modelotel needs to know about one instrumented model (immutable).

    ``model`` is the model name (``ml.model.name``; the function's qualified name by
    default); the other fields are the resolved :class:`ModelOptions` (``model_uri``: the
    registered model version it names, or None).
    """

    model: str
    model_uri: RegisteredModel | None = None
    version: str = ""
    task: str = ""
    owner: str = ""
    runbook_url: str = ""
    input_arg: int | str | None = None
    baseline: Baseline | None = None
    feature_names: tuple[str, ...] | None = None
    max_features: int = 200
    row_cap: int = 1024
    payload_sample_rate: float = 0.0
    payload: PayloadConfig | None = None
    tokenizer: Any = None


# --------------------------------------------------------------------------- checks
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


#: ``resolver(argument or None, settings, options resolved so far) -> value``
Resolver = Callable[[Any, Settings, dict[str, Any]], Any]


def _model_uri(value: Any, s: Settings, done: dict[str, Any]) -> RegisteredModel | None:
    return None if value is None else registered_model(value)


def _version(value: Any, s: Settings, done: dict[str, Any]) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)  # version=3 is a common, harmless spelling
    registered: RegisteredModel | None = done["model_uri"]
    if registered is None:
        return _check_str("version", pick(value, s.model_version))
    # the registry's version is an argument: it wins over MODELOTEL_MODEL_VERSION
    if value is not None and _check_str("version", value) != registered.version:
        raise ValueError(
            f"modelotel: version={value!r} differs from version {registered.version} of "
            f"{registered.uri}; drop version= (the registry's version is used)"
        )
    return registered.version


def _task(value: Any, s: Settings, done: dict[str, Any]) -> str:
    task = "" if value is None else _check_str("task", value).strip().lower()
    if task not in TASKS:
        raise ValueError(
            f"modelotel: task= must be one of 'classification', 'regression', 'other', got {task!r}"
        )
    return task


def _owner(value: Any, s: Settings, done: dict[str, Any]) -> str:
    return _check_str("owner", pick(value, s.model_owner))


def _runbook_url(value: Any, s: Settings, done: dict[str, Any]) -> str:
    url = _check_str("runbook_url", pick(value, s.model_runbook_url)).strip()
    if url and not url.startswith(("http://", "https://")):
        raise ValueError(
            "modelotel: runbook_url= must be an http:// or https:// address (it becomes a link "
            f"in alert notifications), got {url!r}"
        )
    return url


def _input_arg(value: Any, s: Settings, done: dict[str, Any]) -> int | str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise TypeError(
            "modelotel: input_arg= must be a parameter position (int) or name (str), "
            f"got {type(value).__name__}"
        )
    if isinstance(value, int) and value < 0:
        raise ValueError(f"modelotel: input_arg= must be >= 0, got {value}")
    if isinstance(value, str) and not value:
        raise ValueError("modelotel: input_arg= must be a non-empty parameter name")
    return value


def _feature_names(value: Any, s: Settings, done: dict[str, Any]) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        raise TypeError("modelotel: feature_names= must be a sequence of str, not one str")
    try:
        names = tuple(value)
    except TypeError:
        raise TypeError(
            f"modelotel: feature_names= must be a sequence of str, got {type(value).__name__}"
        ) from None
    for n in names:
        if not isinstance(n, str):
            raise TypeError(f"modelotel: feature_names= must hold str only, got {type(n).__name__}")
    if not names or any(not n for n in names):
        raise ValueError("modelotel: feature_names= must hold non-empty names")
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"modelotel: feature_names= has duplicate names: {dup}")
    return names


def _baseline(value: Any, s: Settings, done: dict[str, Any]) -> Baseline | None:
    # a path is loaded now, so a missing, corrupt or future-version file fails at decoration
    # with a message saying what is wrong (BaselineError is a ValueError)
    if value is None:
        return None
    if isinstance(value, (str, os.PathLike)):
        try:
            baseline = Baseline.load(value)
        except BaselineError as exc:
            raise BaselineError(f"modelotel: baseline=: {exc}") from None
    elif isinstance(value, Baseline):
        baseline = value
    else:
        raise TypeError(
            "modelotel: baseline= must be a path or a modelotel.Baseline, "
            f"got {type(value).__name__}"
        )
    names = done["feature_names"]
    if names is not None and baseline.features and names != baseline.feature_names:
        raise ValueError(
            f"modelotel: feature_names= {list(names)} differ from the baseline's features "
            f"{list(baseline.feature_names)}; drop feature_names= or rebuild the baseline"
        )
    return baseline


def _max_features(value: Any, s: Settings, done: dict[str, Any]) -> int:
    return _check_positive_int("max_features", pick(value, s.max_features))


def _row_cap(value: Any, s: Settings, done: dict[str, Any]) -> int:
    return _check_positive_int("row_cap", pick(value, s.row_cap))


def _payload_sample_rate(value: Any, s: Settings, done: dict[str, Any]) -> Any:
    return value  # resolved with payload=, below (the two name one rate)


def _payload(value: Any, s: Settings, done: dict[str, Any]) -> PayloadConfig | None:
    # payload_sample_rate= > PayloadConfig.sample_rate > MODELOTEL_PAYLOAD_SAMPLE_RATE > 0;
    # the config is None when payloads are off (see modelotel._payload.config)
    rate, config = resolve_payload(done["payload_sample_rate"], value, s.payload_sample_rate)
    done["payload_sample_rate"] = rate
    return config


def _tokenizer(value: Any, s: Settings, done: dict[str, Any]) -> Any:
    if value is not None and not callable(value) and not hasattr(value, "encode"):
        raise TypeError(
            "modelotel: tokenizer= must be a Hugging Face tokenizer, an object with encode(), "
            f"or a callable from a text to its tokens, got {type(value).__name__}"
        )
    return value


#: How each option is resolved, in order (a resolver sees the options resolved before it).
RESOLVERS: dict[str, Resolver] = {
    "model_uri": _model_uri,
    "version": _version,
    "task": _task,
    "owner": _owner,
    "runbook_url": _runbook_url,
    "input_arg": _input_arg,
    "feature_names": _feature_names,
    "baseline": _baseline,
    "max_features": _max_features,
    "row_cap": _row_cap,
    "payload_sample_rate": _payload_sample_rate,
    "payload": _payload,
    "tokenizer": _tokenizer,
}


def model_config(
    *, model: str | None = None, default_model: str = "model", **options: Unpack[ModelOptions]
) -> ModelConfig:
    """Validate the options of ``instrument`` / ``wrap`` / ``observe`` and resolve them once.

    Args:
        model: model name; the registered model's name with ``model_uri=``, else
            ``default_model`` (the function's qualified name) when None.
        default_model: the name to use when ``model`` is None.
        **options: see :class:`ModelOptions`.

    Returns:
        The frozen :class:`ModelConfig`.

    Raises:
        TypeError: an unknown option, or an argument of the wrong type.
        ValueError: an argument with a value outside its range.
    """
    unknown = sorted(set(options) - RESOLVERS.keys())
    if unknown:
        raise TypeError(
            f"modelotel: unknown option(s) {', '.join(unknown)}; the options are "
            f"model, {', '.join(RESOLVERS)}"
        )
    name = _check_str("model", model) if model is not None else default_model
    if not name:
        raise ValueError("modelotel: model= must be a non-empty string")
    settings = runtime.settings
    given: dict[str, Any] = dict(options)
    done: dict[str, Any] = {}
    for option, resolve in RESOLVERS.items():
        done[option] = resolve(given.get(option), settings, done)
    registered: RegisteredModel | None = done["model_uri"]
    if registered is not None:
        if model is not None and name != registered.name:
            raise ValueError(
                f"modelotel: model={name!r} differs from the registered model "
                f"{registered.name!r} of {registered.uri}; drop model= (the registry's "
                "name is used)"
            )
        name = registered.name
    return ModelConfig(model=name, **done)


#: The fields of :class:`ModelConfig`: ``model`` and one per option (tests hold them equal).
CONFIG_FIELDS = tuple(f.name for f in fields(ModelConfig))
