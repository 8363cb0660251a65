"""A model's registered name and version from an MLflow model registry (``model_uri=``).

Example:
    >>> from modelotel._mlflow import registered_model
    >>> registered_model("models:/churn/3")
    RegisteredModel(name='churn', version='3', uri='models:/churn/3')

``models:/NAME/VERSION`` is read from the text alone: no registry is contacted and mlflow need
not be installed. ``models:/NAME@ALIAS`` and a loaded ``mlflow.pyfunc.PyFuncModel`` are resolved
through ``mlflow.MlflowClient`` (its tracking and registry URIs, ``MLFLOW_TRACKING_URI`` /
``MLFLOW_REGISTRY_URI``), once, when the model is wrapped: mlflow is imported only then, never by
``import modelotel`` nor by wrapping anything else (a pyfunc model is recognised by its class
name). Every failure here is a setup error that says what to fix.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

SCHEME = "models:/"
PYFUNC_CLASS = "mlflow.pyfunc.PyFuncModel"

# MLflow flavors (the pyfunc loader module mlflow.<flavor>) -> ml.model.framework
_FLAVORS = {
    "sklearn": "sklearn",
    "xgboost": "xgboost",
    "lightgbm": "lightgbm",
    "catboost": "catboost",
    "pytorch": "pytorch",
    "transformers": "transformers",
    "tensorflow": "tensorflow",
    "keras": "keras",
    "onnx": "onnxruntime",
}
_VERSION = re.compile(r"[1-9][0-9]*")


@dataclass(frozen=True)
class RegisteredModel:
    """One version of a registered model: its ``name``, its ``version`` (a number, as text)
    and the ``uri`` it was named by (``models:/churn@champion`` keeps its alias)."""

    name: str
    version: str
    uri: str


def _client() -> Any:
    try:
        import mlflow  # heavy and optional: imported only when a registry must be read
    except ImportError:
        raise ModuleNotFoundError(
            "modelotel: model_uri= with an alias, or wrap() of an MLflow pyfunc model, reads "
            "the MLflow model registry: install mlflow (pip install mlflow-skinny), or pass "
            "model_uri='models:/NAME/VERSION' with a version number"
        ) from None
    try:
        return mlflow.MlflowClient()
    except Exception as exc:  # noqa: BLE001 - MlflowException: an unknown or malformed URI
        raise ValueError(
            f"modelotel: cannot open the MLflow registry ({_why(exc)}); check "
            "MLFLOW_TRACKING_URI / MLFLOW_REGISTRY_URI (or mlflow.set_tracking_uri), or pass "
            "model_uri='models:/NAME/VERSION' with a version number"
        ) from None


def _why(exc: BaseException) -> str:
    first = (str(exc).splitlines() or [""])[0]
    return f"{type(exc).__name__}: {first[:300]}"


def _where(client: Any) -> str:
    try:
        return f"the registry at {client._registry_uri}"  # private: for the message only
    except Exception:  # noqa: BLE001 - the message still says what went wrong
        return "the MLflow registry"


def registered_model(uri: str) -> RegisteredModel:
    """The registered model that ``uri`` names: ``models:/NAME/VERSION`` (read from the text)
    or ``models:/NAME@ALIAS`` (the alias resolved to its version now, through the registry).

    Raises:
        TypeError: ``uri`` is not a str.
        ValueError: ``uri`` is not a registered-model URI with a pinned version or an alias,
            or the registry does not know the model or the alias.
        ModuleNotFoundError: an alias needs mlflow, which is not installed.
    """
    if not isinstance(uri, str):
        raise TypeError(f"modelotel: model_uri= must be a str, got {type(uri).__name__}")
    usage = (
        "modelotel: model_uri= must name a registered model version, "
        "'models:/NAME/VERSION' (e.g. models:/churn/3) or 'models:/NAME@ALIAS' "
        f"(e.g. models:/churn@champion), got {uri!r}"
    )
    if not uri.startswith(SCHEME) or uri.startswith(SCHEME + "/"):
        # runs:/, file paths, models:/m-<id> and models://<registry>/ name no registry version
        raise ValueError(usage)
    path = uri[len(SCHEME):].rstrip("/")
    if "@" in path:
        name, alias = path.rsplit("@", 1)
        if not name or not alias or "/" in name or "/" in alias:
            raise ValueError(usage)
        client = _client()
        try:
            found = client.get_model_version_by_alias(name, alias)
        except Exception as exc:  # noqa: BLE001 - MlflowException, a connection error, ...
            raise ValueError(
                f"modelotel: model_uri={uri!r}: {_where(client)} has no alias {alias!r} of "
                f"model {name!r} ({_why(exc)}); "
                "check the name and alias (MlflowClient().set_registered_model_alias) and "
                "MLFLOW_TRACKING_URI / MLFLOW_REGISTRY_URI"
            ) from None
        return RegisteredModel(name=name, version=str(found.version), uri=uri)
    name, _, version = path.rpartition("/")
    if not name or "/" in name:
        raise ValueError(usage)
    if not _VERSION.fullmatch(version):
        raise ValueError(
            f"{usage}: {version!r} is not a version number. A stage or 'latest' moves while "
            "this process keeps serving what it loaded: pin the version, or use an alias "
            "(resolved once, when the model is wrapped)"
        )
    return RegisteredModel(name=name, version=version, uri=uri)


def is_pyfunc_model(obj: Any) -> bool:
    """Whether ``obj`` is a loaded MLflow pyfunc model (by class name: imports nothing)."""
    return any(f"{c.__module__}.{c.__qualname__}" == PYFUNC_CLASS for c in type(obj).__mro__)


def pyfunc_framework(obj: Any) -> str:
    """The framework under a pyfunc model (its loader module ``mlflow.<flavor>``), or
    ``"mlflow"`` when the flavor is not one modelotel names."""
    try:
        loader = obj.metadata.flavors["python_function"]["loader_module"]
        flavor = str(loader).rsplit(".", 1)[-1]
    except Exception:  # noqa: BLE001 - metadata written by another MLflow version
        return "mlflow"
    return _FLAVORS.get(flavor, "mlflow")


def pyfunc_registered_model(obj: Any) -> RegisteredModel | None:
    """The registered version a loaded pyfunc model was logged as, found in the registry by
    its run id and MLflow model id, or None when it is not registered.

    Raises:
        ValueError: the registry cannot be read, or the model is registered more than once
            (several names or versions: ``model_uri=`` must say which one is served).
    """
    meta = getattr(obj, "metadata", None)
    run_id = getattr(meta, "run_id", None)
    model_id = getattr(meta, "model_id", None) or getattr(meta, "model_uuid", None)
    if not run_id:
        return None  # saved with save_model(), or logged outside a run: never registered here
    client = _client()
    try:
        versions = list(client.search_model_versions(f"run_id = '{run_id}'"))
    except Exception as exc:  # noqa: BLE001 - MlflowException, a connection error, ...
        raise ValueError(
            f"modelotel: wrap() of an MLflow pyfunc model (run {run_id}) could not read "
            f"{_where(client)} ({_why(exc)}); "
            "check MLFLOW_TRACKING_URI / MLFLOW_REGISTRY_URI, or pass "
            "model_uri='models:/NAME/VERSION'"
        ) from None
    # a run can log several models: the version whose MLflow model id is this model's
    mine = [v for v in versions if not model_id or getattr(v, "model_id", None) in (None, model_id)]
    found = sorted({(str(v.name), str(v.version)) for v in mine})
    if not found:
        return None
    if len(found) > 1:
        named = ", ".join(f"models:/{n}/{v}" for n, v in found)
        raise ValueError(
            f"modelotel: this MLflow pyfunc model is registered {len(found)} times ({named}); "
            "pass model_uri= with the one this process serves"
        )
    name, version = found[0]
    return RegisteredModel(name=name, version=version, uri=f"{SCHEME}{name}/{version}")
