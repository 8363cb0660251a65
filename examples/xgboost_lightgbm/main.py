"""Gradient-boosted models from XGBoost and LightGBM, observed by modelotel, each through its
two APIs (the native Booster and the scikit-learn estimator), each fed a pandas DataFrame and a
numpy array. Prints a JSON summary as the last line.

    bash examples/run_example.sh xgboost_lightgbm            # through the bundled collector
    .venv/bin/python examples/xgboost_lightgbm/main.py --calls 10
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
import xgboost as xgb

import modelotel

FEATURES = ["tenure_months", "monthly_charges", "support_calls", "age"]


def data(rows: int, seed: int) -> tuple[pd.DataFrame, np.ndarray[Any, Any]]:
    rng = np.random.default_rng(seed)
    x = pd.DataFrame(rng.normal(size=(rows, len(FEATURES))), columns=FEATURES)
    y = (x.monthly_charges + 0.5 * x.support_calls - 0.3 * x.tenure_months
         + rng.normal(0, 0.5, rows) > 0).astype(int).to_numpy()
    return x, y


def models(x: pd.DataFrame, y: np.ndarray[Any, Any]) -> dict[str, tuple[Any, list[str]]]:
    """Each model, and the methods wrap() should instrument (the first is the primary one)."""
    params = {"n_estimators": 20, "max_depth": 3}
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 3},
                        xgb.DMatrix(x, label=y), num_boost_round=20)
    lgb_booster = lgb.train({"objective": "binary", "num_leaves": 7, "verbose": -1},
                            lgb.Dataset(x, label=y), num_boost_round=20)
    return {
        # inplace_predict takes the DataFrame or array itself (Booster.predict a DMatrix): it
        # is the primary method, as wrap() would choose for a Booster without methods=
        "xgb-booster": (booster, ["inplace_predict"]),
        "xgb-sklearn": (xgb.XGBClassifier(**params).fit(x, y), ["predict_proba", "predict"]),
        "lgb-booster": (lgb_booster, ["predict"]),
        "lgb-sklearn": (lgb.LGBMClassifier(**params, num_leaves=7, verbose=-1).fit(x, y),
                        ["predict_proba", "predict"]),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--calls", type=int, default=10, help="calls per input kind and model")
    p.add_argument("--rows", type=int, default=100, help="rows per call")
    args = p.parse_args()

    # scikit-learn warns when an estimator fitted on a DataFrame is given a bare array; the
    # example feeds both on purpose (modelotel takes the names from the baseline)
    warnings.filterwarnings("ignore", message="X does not have valid feature names")
    x, y = data(5000, seed=1)
    modelotel.configure(service_name="boosted-models")
    summary: dict[str, Any] = {}
    for name, (model, methods) in models(x, y).items():
        # the baseline's outputs are what the primary method returns on the training data
        primary = getattr(model, methods[0])
        baseline = modelotel.Baseline.from_data(x, outputs=np.asarray(primary(x)))
        clf = modelotel.wrap(model, model=name, version="1", methods=methods, baseline=baseline)
        serving, _ = data(args.calls * args.rows, seed=2)
        out = []
        for k in range(args.calls):
            frame = serving.iloc[k * args.rows:(k + 1) * args.rows]
            out.append(getattr(clf, methods[0])(frame))  # a DataFrame
            out.append(getattr(clf, methods[0])(frame.to_numpy()))  # a numpy array
        # the results are the model's own: modelotel changes nothing
        same = all(np.array_equal(np.asarray(a), np.asarray(primary(serving.iloc[
            (i // 2) * args.rows:(i // 2 + 1) * args.rows]))) for i, a in enumerate(out))
        summary[name] = {"calls": len(out), "rows": len(out) * args.rows,
                         "method": methods[0], "unchanged": same}
        print(f"{name}: {len(out)} {methods[0]} calls ({args.calls} DataFrame, {args.calls} "
              f"numpy) of {args.rows} rows; results unchanged: {same}")
    modelotel.shutdown()
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
