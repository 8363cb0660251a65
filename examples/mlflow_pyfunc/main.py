"""A scikit-learn model in an MLflow model registry, served as a pyfunc model and observed by
modelotel, which names each served version by the registry: version 1 serves, then version 2
is promoted (the ``champion`` alias moves) and serves. Prints a JSON summary as the last line.

    bash examples/run_example.sh mlflow_pyfunc               # through the bundled collector
    .venv/bin/python examples/mlflow_pyfunc/main.py --calls 10

The registry is local: an SQLite database and an artifact directory in a temporary directory
(``mlflow-*`` in the run's directory under run_example.sh); no MLflow server runs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

# MLflow sends anonymous usage data to its own servers unless told not to
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

import mlflow
import numpy as np
import pandas as pd
from mlflow.models import infer_signature
from sklearn.linear_model import LogisticRegression

import modelotel

NAME = "churn-mlflow"
ALIAS = "champion"
FEATURES = ["tenure_months", "monthly_charges", "support_calls", "age"]


def data(rows: int, seed: int) -> tuple[pd.DataFrame, np.ndarray[Any, Any]]:
    rng = np.random.default_rng(seed)
    x = pd.DataFrame(rng.normal(size=(rows, len(FEATURES))), columns=FEATURES)
    y = (x.monthly_charges + 0.5 * x.support_calls - 0.3 * x.tenure_months
         + rng.normal(0, 0.5, rows) > 0).astype(int).to_numpy()
    return x, y


def train_and_register(x: pd.DataFrame, y: np.ndarray[Any, Any], c: float) -> str:
    """Fit, log to a new run and register under NAME: the registry's new version number."""
    model = LogisticRegression(C=c).fit(x, y)
    with mlflow.start_run():
        mlflow.log_param("C", c)
        info = mlflow.sklearn.log_model(
            model, name="model", registered_model_name=NAME,
            signature=infer_signature(x, model.predict(x)),
            pip_requirements=["scikit-learn"],  # skips inferring them (a subprocess, seconds)
        )
    return str(info.registered_model_version)


def serve(calls: int, rows: int, seed: int) -> dict[str, Any]:
    """What a serving process does: load the champion, wrap it, predict."""
    uri = f"models:/{NAME}@{ALIAS}"
    loaded = mlflow.pyfunc.load_model(uri)
    # no model= nor version=: wrap() finds the version this pyfunc model was registered as
    # (by its run and model id; model_uri=uri would resolve the alias instead)
    model = modelotel.wrap(loaded)
    serving, _ = data(calls * rows, seed)
    same = True
    for k in range(calls):
        batch = serving.iloc[k * rows:(k + 1) * rows]
        out = model.predict(batch)
        same = same and np.array_equal(np.asarray(out), np.asarray(loaded.predict(batch)))
    return {"loaded": uri, "calls": calls, "rows": calls * rows, "unchanged": same}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--calls", type=int, default=20, help="calls per served version")
    p.add_argument("--rows", type=int, default=100, help="rows per call")
    args = p.parse_args()

    home = Path(tempfile.mkdtemp(prefix="mlflow-", dir=os.environ.get("MODELOTEL_EXAMPLE_DIR")))
    mlflow.set_tracking_uri(f"sqlite:///{home / 'mlflow.db'}")  # the registry lives here too
    mlflow.set_experiment(experiment_id=mlflow.create_experiment(
        "churn", artifact_location=(home / "artifacts").as_uri()))
    client = mlflow.MlflowClient()
    modelotel.configure(service_name="mlflow-pyfunc")

    x, y = data(5000, seed=1)
    summary: dict[str, Any] = {"model": NAME, "served": {}}
    for c, seed in ((1.0, 2), (0.05, 3)):  # version 1, then a retrain: version 2
        version = train_and_register(x, y, c)
        client.set_registered_model_alias(NAME, ALIAS, version)  # promote it
        served = serve(args.calls, args.rows, seed)
        summary["served"][version] = served
        print(f"{NAME}@{ALIAS} -> version {version}: {served['calls']} predict calls of "
              f"{args.rows} rows; results unchanged: {served['unchanged']}")
    modelotel.shutdown()
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
