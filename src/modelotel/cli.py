"""The ``modelotel`` command line.

Example (``modelotel profile train.parquet -o baseline.json --target label`` in a shell)::

    $ modelotel profile train.parquet -o baseline.json --target label
    wrote baseline.json: 12 features, 1 output, 50000 rows, sha256:...
    $ modelotel rules churn@3=baseline.json -o modelotel-drift-rules.yml
    wrote modelotel-drift-rules.yml: 1 baseline(s), 13 columns, 161 rules, ranges 1h, 1d, lifetime

The same from Python:

    >>> from modelotel.cli import build_parser
    >>> args = build_parser().parse_args(["profile", "train.csv", "-o", "b.json"])
    >>> args.command, args.bins
    ('profile', 10)

Subcommands are registered in :func:`build_parser` (one ``add_parser`` each), so other parts
of modelotel can add theirs next to ``profile``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

from modelotel import _doctor


def _read_table(path: str, fmt: str | None) -> Any:
    kind = fmt or os.path.splitext(path)[1].lower().lstrip(".")
    if kind == "npy":
        import numpy as np

        return np.load(path, allow_pickle=False)
    if kind in ("csv", "tsv", "txt"):
        import pandas as pd

        return pd.read_csv(path, sep="\t" if kind == "tsv" else ",")
    if kind in ("parquet", "pq"):
        import pandas as pd

        return pd.read_parquet(path)
    raise ValueError(
        f"unknown data format {kind!r}: use a .csv, .parquet or .npy file (or --format)"
    )


def _cmd_profile(args: argparse.Namespace) -> int:
    from modelotel.stats.baseline import Baseline, BaselineError

    try:
        data = _read_table(args.data, args.format)
    except FileNotFoundError:
        print(f"modelotel profile: {args.data}: no such file", file=sys.stderr)
        return 2
    except (ValueError, OSError, ImportError) as exc:
        print(f"modelotel profile: cannot read {args.data}: {exc}", file=sys.stderr)
        return 2
    outputs = None
    if args.target:
        if not hasattr(data, "columns"):
            print("modelotel profile: --target needs a CSV or Parquet file with named columns",
                  file=sys.stderr)
            return 2
        missing = [c for c in args.target if c not in data.columns]
        if missing:
            print(f"modelotel profile: --target column(s) not in the data: {', '.join(missing)}",
                  file=sys.stderr)
            return 2
        outputs = data[args.target[0]] if len(args.target) == 1 else data[args.target]
        data = data.drop(columns=args.target)
    names = args.feature_names.split(",") if args.feature_names else None
    try:
        baseline = Baseline.from_data(data, outputs=outputs, feature_names=names, bins=args.bins,
                                      top_k=args.top_k, max_features=args.max_features)
        digest = baseline.save(args.output)
    except (BaselineError, OSError) as exc:
        print(f"modelotel profile: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {args.output}: {len(baseline.features)} features, {len(baseline.outputs)} "
          f"output(s), {baseline.rows} rows, {digest}")
    return 0


def _baseline_ref(spec: str, model: str | None, version: str | None) -> Any:
    """``[MODEL[@VERSION]=]PATH`` -> a BaselineRef (``--model`` / ``--version`` as defaults)."""
    from modelotel.rules import BaselineRef
    from modelotel.stats.baseline import Baseline

    path = spec
    if not os.path.exists(spec) and "=" in spec:
        who, path = spec.split("=", 1)
        model, _, ver = who.rpartition("@") if "@" in who else (who, "", "")
        version = ver if "@" in who else version
    if not model:
        raise ValueError(
            f"{spec}: which model serves with this baseline? Write MODEL@VERSION={spec} "
            "or pass --model (and --version)"
        )
    return BaselineRef(model, version or "", Baseline.load(path))


def _cmd_rules(args: argparse.Namespace) -> int:
    from modelotel.rules import LIFETIME, RulesError, generate
    from modelotel.stats.baseline import BaselineError

    try:
        refs = [_baseline_ref(s, args.model, args.version) for s in args.baselines]
        text = generate(
            refs, ranges=args.range or ("1h", "1d"), interval=args.interval,
            alert_range=args.alert_range, psi_threshold=args.psi_threshold,
            confidence=args.confidence, for_=getattr(args, "for"), sources=args.baselines,
        )
    except (BaselineError, RulesError, ValueError) as exc:
        print(f"modelotel rules: {exc}", file=sys.stderr)
        return 2
    try:
        tmp = f"{args.output}.tmp{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, args.output)
    except OSError as exc:
        print(f"modelotel rules: cannot write {args.output}: {exc}", file=sys.stderr)
        return 1
    columns = sum(len(r.baseline.features) + len(r.baseline.outputs) for r in refs)
    rules = sum(1 for line in text.splitlines() if line.lstrip().startswith(("- record:",
                                                                           "- alert:")))
    ranges = [*dict.fromkeys(r for r in (args.range or ("1h", "1d")) if r != LIFETIME), LIFETIME]
    print(f"wrote {args.output}: {len(refs)} baseline(s), {columns} columns, {rules} rules, "
          f"ranges {', '.join(ranges)}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="modelotel", description="modelotel command line tools")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("profile", help="build a training baseline (JSON) from a data file",
                       description="Profile training data (CSV, Parquet or .npy) into a baseline "
                                   "file for instrument(..., baseline=PATH).")
    p.add_argument("data", help="training data: .csv, .parquet or .npy")
    p.add_argument("-o", "--output", required=True, help="where to write the baseline JSON")
    p.add_argument("--format", choices=["csv", "tsv", "parquet", "npy"], help="override the format")
    p.add_argument("--target", action="append",
                   help="column holding the model output / label (repeatable); profiled as output")
    p.add_argument("--feature-names", help="comma-separated names for unnamed (.npy) columns")
    p.add_argument("--bins", type=int, default=10, help="quantile bins per numeric feature (10)")
    p.add_argument("--top-k", type=int, default=20, help="categories kept per categorical (20)")
    p.add_argument("--max-features", type=int, default=200, help="columns profiled at most (200)")
    p.set_defaults(func=_cmd_profile)

    r = sub.add_parser(
        "rules", help="write Prometheus rules for fleet drift from baselines",
        description="Write a Prometheus rule file holding each baseline's bin shares, the "
                    "fleet drift recording rules (ml_fleet:feature_psi:<range>, ...) and the "
                    "drift alerts. Load it beside collector-config/prometheus/modelotel-rules.yml.",
    )
    r.add_argument("baselines", nargs="+", metavar="[MODEL[@VERSION]=]BASELINE.json",
                   help="a baseline file and the model version serving with it")
    r.add_argument("-o", "--output", required=True, help="where to write the rule file")
    r.add_argument("--model", help="model name for baselines given without MODEL@VERSION=")
    r.add_argument("--version", help="model version for baselines given without MODEL@VERSION=")
    r.add_argument("--range", action="append", metavar="DURATION",
                   help="range of the fleet rules (repeatable; default 1h and 1d; a lifetime "
                        "form is always written)")
    r.add_argument("--alert-range", help="range the drift alerts use (default: the first range)")
    r.add_argument("--interval", default="1m", help="rule evaluation interval (1m)")
    r.add_argument("--psi-threshold", type=float, default=0.2,
                   help="fleet PSI above which drift is large (0.2)")
    r.add_argument("--confidence", type=float, default=0.999,
                   help="level of the chi-square sample-size gate (0.999)")
    r.add_argument("--for", default="15m", help="how long drift must last before alerting (15m)")
    r.set_defaults(func=_cmd_rules)

    _doctor.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``modelotel`` script. Returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    func = args.func
    return int(func(args))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
