"""The ``modelotel`` command line.

Example (``modelotel profile train.parquet -o baseline.json --target label`` in a shell)::

    $ modelotel profile train.parquet -o baseline.json --target label
    wrote baseline.json: 12 features, 1 output, 50000 rows, sha256:...

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
