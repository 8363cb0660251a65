"""Prometheus rules for fleet drift: training baselines in, a rule file out (``modelotel rules``).

Example:
    >>> import numpy as np
    >>> from modelotel.stats.baseline import Baseline
    >>> from modelotel.rules import BaselineRef, generate
    >>> b = Baseline.from_data(np.arange(100.0).reshape(50, 2), feature_names=["a", "b"])
    >>> text = generate([BaselineRef("churn", "3", b)], ranges=["1h"])
    >>> "record: ml_fleet:feature_psi:1h" in text
    True

Every replica exports additive bin counters (``ml_feature_bin_total``, ``ml_output_bin_total``)
on its baseline's bins; summed over replicas they are exactly the fleet's distribution. What
a backend lacks is the baseline's shares, so the file written here holds:

- one ``ml_baseline:feature_bin_share`` / ``ml_baseline:output_bin_share`` series per bin of
  each baseline (labels ``ml_model_name``, ``ml_model_version``, ``ml_feature`` / ``ml_output``,
  ``ml_bin``, ``ml_baseline_hash``), ``ml_baseline:info`` per baseline, and per column the
  sample-size gate: ``ml_baseline:*_chi2_critical`` (the chi-square quantile of the column's
  degrees of freedom) and ``ml_baseline:*_min_rows`` (Cochran's rule);
- the fleet recording rules ``ml_fleet:{feature,output}_{bin,rows,psi,js,chi2}:<range>``, the
  same formulas and epsilon handling as :mod:`modelotel.stats.drift` written in PromQL, over
  the counts of every replica whose ``ml_model_info`` carries the baseline hash of this file
  (a replica serving another baseline has other bins and is left out; an alert says so);
- the drift alerts ``ModelFeatureDrift`` / ``ModelOutputDrift`` on those rules, gated on
  sample size, carrying the model's owner and runbook, and ``ModelBaselineRulesStale``.

Nothing here imports OpenTelemetry: it is numbers and text. See docs/telemetry.md ("Fleet
drift in Prometheus") for the formulas, the range form's measured error and the calibration.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from modelotel.stats.baseline import Baseline, FeatureProfile
from modelotel.stats.drift import PSI_EPS

#: The range name of the exact form: every count of every replica still reporting.
LIFETIME = "lifetime"
DEFAULT_RANGES = ("1h", "1d")
#: PSI above which drift counts as large (the usual rule of thumb).
DEFAULT_PSI_THRESHOLD = 0.2
#: Confidence of the chi-square gate: an alert needs the counts to differ from the baseline
#: at this level (one false alarm in 1,000 evaluations of one column under no drift).
DEFAULT_CONFIDENCE = 0.999
DEFAULT_INTERVAL = "1m"
DEFAULT_FOR = "15m"

_DURATION = re.compile(r"^(?:[0-9]+(?:ms|[smhdwy]))+$")
_MODEL = ("ml_model_name", "ml_model_version")


class RulesError(ValueError):
    """The rules cannot be generated as asked; the message says what to fix."""


@dataclass(frozen=True)
class BaselineRef:
    """A baseline and the model version that serves with it."""

    model: str
    version: str
    baseline: Baseline


@dataclass(frozen=True)
class Side:
    """Inputs (``feature``) or outputs (``output``): metric and label names of one side."""

    kind: str

    @property
    def label(self) -> str:
        return f"ml_{self.kind}"

    @property
    def counter(self) -> str:
        return f"ml_{self.kind}_bin_total"

    @property
    def col(self) -> str:
        """The labels of one column: model, version, feature (or output)."""
        return ", ".join((*_MODEL, self.label))

    @property
    def col_bin(self) -> str:
        return f"{self.col}, ml_bin"

    def rec(self, what: str, rng: str) -> str:
        return f"ml_fleet:{self.kind}_{what}:{rng}"

    def base(self, what: str) -> str:
        return f"ml_baseline:{self.kind}_{what}"


FEATURE = Side("feature")
OUTPUT = Side("output")


# ---- statistics written into the rules ----------------------------------------------------


def _lower_gamma_regularized(a: float, x: float) -> float:
    """P(a, x), the regularized lower incomplete gamma function (series / continued fraction)."""
    if x <= 0.0:
        return 0.0
    log_front = -x + a * math.log(x) - math.lgamma(a)
    if x < a + 1.0:
        term = total = 1.0 / a
        ap = a
        for _ in range(10_000):
            ap += 1.0
            term *= x / ap
            total += term
            if abs(term) < abs(total) * 1e-16:
                break
        return min(1.0, total * math.exp(log_front))
    tiny = 1e-300
    b = x + 1.0 - a
    c = 1.0 / tiny
    d = 1.0 / b
    h = d
    for i in range(1, 10_000):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-16:
            break
    return max(0.0, 1.0 - math.exp(log_front) * h)


def chi2_quantile(p: float, dof: int) -> float:
    """The ``p`` quantile of the chi-square distribution with ``dof`` degrees of freedom."""
    if not 0.0 < p < 1.0:
        raise RulesError(f"confidence must be between 0 and 1, got {p!r}")
    if dof < 1:
        raise RulesError(f"degrees of freedom must be >= 1, got {dof!r}")
    lo, hi = 0.0, float(max(dof, 1))
    while _lower_gamma_regularized(dof / 2.0, hi / 2.0) < p:
        lo, hi = hi, hi * 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if _lower_gamma_regularized(dof / 2.0, mid / 2.0) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-12 * hi:
            break
    return 0.5 * (lo + hi)


def min_rows(shares: Sequence[float]) -> int:
    """Cochran's rule for the chi-square test: every expected count at least 1 and at most
    20% of them below 5. Returns the smallest row count that satisfies it for ``shares``."""
    pos = sorted(s for s in shares if s > 0)
    if not pos:
        return 0
    j = min(len(pos) - 1, int(0.2 * len(pos)))  # bins allowed below 5: the j smallest
    return max(math.ceil(1.0 / pos[0] - 1e-9), math.ceil(5.0 / pos[j] - 1e-9))


def column_bins(prof: FeatureProfile) -> list[tuple[str, float]]:
    """``(ml_bin, baseline share)`` of every bin the SDK counts for this column, in order
    (what ``ml.feature.bin`` / ``ml.output.bin`` carry); empty when it has no drift."""
    if prof.is_categorical:
        labels = [*prof.categories, "other", "unseen"]
        shares = [*prof.shares, 0.0]  # the baseline never saw "unseen"
    elif prof.edges:
        k = len(prof.edges) - 1
        labels = ["below", *(str(i) for i in range(k)), "above"]
        shares = list(prof.shares)
    else:
        return []
    if len(labels) != len(shares) or not any(s > 0 for s in shares):
        return []
    return list(zip(labels, (float(s) for s in shares), strict=True))


# ---- PromQL of the fleet rules --------------------------------------------------------------


def _range_counts(metric: str, rng: str) -> str:
    """Each replica's count in the range, per series.

    ``increase()`` extrapolates to the range's ends, drops a new series' counts before its
    first sample and ignores a series with one sample. Cumulative counters need none of
    that: a series that reported before the range counts ``last - value before the range``
    (whole export intervals, no extrapolation); a series born inside the range (a new or
    short-lived replica) counts its whole value; only a counter reset (a restart that kept
    its ``service.instance.id``) falls back to ``increase()``.
    """
    if rng == LIFETIME:
        return metric
    last = f"last_over_time({metric}[{rng}])"
    before = f"{metric} offset {rng}"
    return f"(({last} - {before}) >= 0) or ({last} unless {before}) or increase({metric}[{rng}])"


def _serving(rng: str) -> str:
    """Replicas (job, instance) that serve a model version with a baseline of this file."""
    info = "ml_model_info" if rng == LIFETIME else f"last_over_time(ml_model_info[{rng}])"
    return (
        f"{info} * on (ml_model_name, ml_model_version, ml_baseline_hash)"
        " group_left ml_baseline:info"
    )


def fleet_rules(side: Side, rng: str) -> list[dict[str, Any]]:
    """The recording rules of one side over one range (see the module docstring)."""
    col, col_bin = side.col, side.col_bin
    share = f"sum by ({col_bin}) ({side.base('bin_share')})"
    counts = side.rec("bin", rng)
    rows = side.rec("rows", rng)
    p = f"({counts} / on ({col}) group_left () ({rows} > 0))"
    pe = f"clamp_min({p}, {PSI_EPS!r})"
    ps = f"({pe} / on ({col}) group_left sum by ({col}) ({pe}))"
    qe = f"clamp_min({share}, {PSI_EPS!r})"
    qs = f"({qe} / on ({col}) group_left sum by ({col}) ({qe}))"
    m = f"(({p} + {share}) / 2)"
    kp = f"sum by ({col}) (({p} > 0) * log2(({p} > 0) / {m}))"
    kq = f"sum by ({col}) (({share} > 0) * log2(({share} > 0) / {m}))"
    per_series = _range_counts(side.counter, rng)
    return [
        {
            "record": counts,
            "expr": (
                f"sum by ({col_bin}) (\n  ({per_series})\n"
                f"  and on (job, instance, ml_model_name, ml_model_version) ({_serving(rng)})\n)\n"
                f"or 0 * {share}"
            ),
        },
        {"record": rows, "expr": f"sum by ({col}) ({counts})"},
        {
            "record": side.rec("psi", rng),
            "expr": f"sum by ({col}) (\n  ({ps} - {qs})\n  * ln({ps} / {qs})\n)",
        },
        {
            "record": side.rec("js", rng),
            "expr": f"sqrt(clamp_min(0.5 * (\n  {kp}\n  + {kq}\n), 0))",
        },
        {
            "record": side.rec("chi2", rng),
            "expr": (
                f"{rows} * on ({col}) sum by ({col}) (\n"
                f"  ({p} - {share}) ^ 2 / {qe}\n)"
            ),
        },
    ]


def version_drift_rule(rng: str) -> dict[str, Any]:
    """PSI of the newest version's outputs against the previous version's (roles from
    ``ml_model:version_role`` in modelotel-rules.yml), for outputs whose two baselines bin
    alike (same ``ml_bins``): both are additive bin counts, so this is exact too."""
    col = OUTPUT.col
    role = "ml_model:version_role"
    p = f"({OUTPUT.rec('bin', rng)} / on ({col}) group_left () ({OUTPUT.rec('rows', rng)} > 0))"
    new = f'({p} and on ({", ".join(_MODEL)}) {role}{{ml_version_role="newest"}})'
    prev = (
        f'sum without (ml_model_version) (label_replace({p} and on ({", ".join(_MODEL)}) '
        f'{role}{{ml_version_role="previous"}}, "ml_previous_version", "$1", '
        '"ml_model_version", "(.*)"))'
    )
    pcol = "ml_model_name, ml_output, ml_previous_version"
    ne = f"clamp_min({new}, {PSI_EPS!r})"
    pe = f"clamp_min({prev}, {PSI_EPS!r})"
    ns = f"({ne} / on ({col}) group_left sum by ({col}) ({ne}))"
    ps = f"({pe} / on ({pcol}) group_left sum by ({pcol}) ({pe}))"
    join = "on (ml_model_name, ml_output, ml_bin) group_left (ml_previous_version)"
    same_bins = (
        f"count by (ml_model_name, ml_output, ml_bins) ({OUTPUT.base('bins')} "
        f"and on ({', '.join(_MODEL)}) {role}) == 2"
    )
    return {
        "record": f"ml_fleet:version_output_psi:{rng}",
        "expr": (
            f"sum by ({col}, ml_previous_version) (\n  ({ns} - {join} {ps})\n"
            f"  * ln({ns} / {join} {ps})\n)\n"
            f"and on (ml_model_name, ml_output) ({same_bins})"
        ),
    }


# ---- rules per baseline ---------------------------------------------------------------------


def _labels(ref: BaselineRef, **extra: str) -> dict[str, str]:
    out = {"ml_model_name": ref.model}
    if ref.version:
        out["ml_model_version"] = ref.version  # an empty label is no label in Prometheus
    out.update(extra)
    return out


def baseline_rules(ref: BaselineRef, confidence: float) -> list[dict[str, Any]]:
    """The shares, the chi-square quantile and the minimum rows of every column of ``ref``."""
    hash_ = ref.baseline.hash
    rules: list[dict[str, Any]] = [
        {"record": "ml_baseline:info", "expr": "vector(1)",
         "labels": _labels(ref, ml_baseline_hash=hash_)},
    ]
    for side, profiles in ((FEATURE, ref.baseline.features), (OUTPUT, ref.baseline.outputs)):
        for prof in profiles:
            bins = column_bins(prof)
            if not bins:
                continue
            shares = [s for _, s in bins]
            for label, s in bins:
                rules.append({
                    "record": side.base("bin_share"), "expr": f"vector({s!r})",
                    "labels": _labels(ref, **{side.label: prof.name, "ml_bin": label,
                                              "ml_baseline_hash": hash_}),
                })
            dof = max(sum(1 for s in shares if s > 0) - 1, 1)
            col = _labels(ref, **{side.label: prof.name})
            rules.append({"record": side.base("chi2_critical"),
                          "expr": f"vector({chi2_quantile(confidence, dof)!r})", "labels": col})
            rules.append({"record": side.base("min_rows"), "expr": f"vector({min_rows(shares)})",
                          "labels": col})
            if side is OUTPUT:
                # what the bins are: two versions' outputs compare only when these are equal
                ident = json.dumps([prof.kind, list(prof.edges), list(prof.categories)])
                bins_id = hashlib.sha256(ident.encode()).hexdigest()[:16]
                rules.append({"record": side.base("bins"), "expr": "vector(1)",
                              "labels": {**col, "ml_bins": bins_id}})
    return rules


# ---- alerts ---------------------------------------------------------------------------------

#: The owner and runbook of every version with a replica reporting now (one per version, even
#: while replicas disagree during a rollout), joined into each alert as modelotel-rules.yml does.
OWNER_JOIN = (
    "* on (ml_model_name, ml_model_version) group_left (ml_model_owner, ml_model_runbook_url)\n"
    "  topk by (ml_model_name, ml_model_version) (1,\n"
    "    max by (ml_model_name, ml_model_version, ml_model_owner, ml_model_runbook_url)"
    " (ml_model_info))"
)


def runbook(alert: str) -> str:
    """The model's ``runbook_url`` (``instrument(..., runbook_url=...)``), else the generic page."""
    return (
        "{{ if $labels.ml_model_runbook_url }}{{ $labels.ml_model_runbook_url }}"
        f"{{{{ else }}}}docs/runbooks.md#{alert.lower()}{{{{ end }}}}"
    )


def drift_alert(side: Side, rng: str, psi_threshold: float, for_: str) -> dict[str, Any]:
    col = side.col
    name = f"Model{side.kind.capitalize()}Drift"
    return {
        "alert": name,
        "expr": (
            f"(\n  {side.rec('psi', rng)} > {psi_threshold!r}\n"
            f"  and on ({col}) {side.rec('chi2', rng)}\n"
            f"    > on ({col}) sum by ({col}) ({side.base('chi2_critical')})\n"
            f"  and on ({col}) {side.rec('rows', rng)}\n"
            f"    >= on ({col}) sum by ({col}) ({side.base('min_rows')})\n)\n{OWNER_JOIN}"
        ),
        "for": for_,
        "labels": {"severity": "ticket"},
        "annotations": {
            "summary": (
                f"{{{{ $labels.ml_model_name }}}} {{{{ $labels.ml_model_version }}}}: "
                f"{side.kind} {{{{ $labels.{side.label} }}}} drifted over {rng} "
                f"(fleet PSI {{{{ $value | printf \"%.3f\" }}}})"
            ),
            "description": (
                f"The {side.kind}'s distribution over every replica in the last {rng} differs "
                f"from the training baseline: PSI above {psi_threshold!r}, and the chi-square "
                "test on the fleet's counts says the difference is not chance (sample-size "
                "gate). Compare ml_fleet:" + side.kind + "_bin:" + rng + " with "
                + side.base("bin_share") + " on the dashboard's fleet histogram."
            ),
            "runbook_url": runbook(name),
        },
    }


def stale_alert() -> dict[str, Any]:
    return {
        "alert": "ModelBaselineRulesStale",
        # a version this file has a baseline for serves with another baseline: its counts are
        # on other bins, so the fleet drift rules leave it out until the file is regenerated
        "expr": (
            "(\n  (\n"
            "    group by (ml_model_name, ml_model_version, ml_baseline_hash) (ml_model_info)\n"
            "    unless on (ml_model_name, ml_model_version, ml_baseline_hash) ml_baseline:info\n"
            "  )\n  and on (ml_model_name, ml_model_version) ml_baseline:info\n)\n" + OWNER_JOIN
        ),
        "for": "10m",
        "labels": {"severity": "ticket"},
        "annotations": {
            "summary": (
                "{{ $labels.ml_model_name }} {{ $labels.ml_model_version }} serves with baseline "
                "{{ $labels.ml_baseline_hash }}, which the drift rules do not know: regenerate "
                "them (modelotel rules)"
            ),
            "runbook_url": runbook("ModelBaselineRulesStale"),
        },
    }


# ---- the file -------------------------------------------------------------------------------


def _check_duration(name: str, value: str) -> str:
    if not _DURATION.match(value):
        raise RulesError(
            f"{name} must be a Prometheus duration such as 30s, 5m, 1h or 1d, got {value!r}"
        )
    return value


def generate(
    baselines: Sequence[BaselineRef],
    ranges: Iterable[str] = DEFAULT_RANGES,
    interval: str = DEFAULT_INTERVAL,
    alert_range: str | None = None,
    psi_threshold: float = DEFAULT_PSI_THRESHOLD,
    confidence: float = DEFAULT_CONFIDENCE,
    for_: str = DEFAULT_FOR,
    sources: Sequence[str] = (),
) -> str:
    """The rule file (YAML text) for ``baselines``; see the module docstring.

    Args:
        baselines: one per model version (two for one version is an error).
        ranges: ranges of the ``ml_fleet:*:<range>`` rules; ``lifetime`` is always added.
        interval: evaluation interval of the rule groups.
        alert_range: the range the drift alerts use (default: the first of ``ranges``).
        psi_threshold: fleet PSI above which drift is large.
        confidence: level of the chi-square gate.
        for_: how long a drift condition must hold before the alert fires.
        sources: the baseline file names, for the header comment.

    Raises:
        RulesError: no baseline, a duplicate model version, a bad range or threshold.
    """
    if not baselines:
        raise RulesError("give at least one baseline")
    seen: dict[tuple[str, str], str] = {}
    for ref in baselines:
        if not ref.model:
            raise RulesError("every baseline needs a model name")
        key = (ref.model, ref.version)
        if key in seen and seen[key] != ref.baseline.hash:
            raise RulesError(
                f"two different baselines for model {ref.model!r} version {ref.version!r}"
            )
        seen[key] = ref.baseline.hash
    uniq = list({(r.model, r.version): r for r in baselines}.values())
    rngs = [_check_duration("a range", r) for r in dict.fromkeys(ranges) if r != LIFETIME]
    if not rngs:
        raise RulesError("give at least one range besides lifetime (e.g. --range 1h)")
    interval = _check_duration("the interval", interval)
    for_ = _check_duration("the for duration", for_)
    alert_range = alert_range or rngs[0]
    if alert_range != LIFETIME and alert_range not in rngs:
        raise RulesError(f"the alert range {alert_range!r} is not one of the ranges {rngs}")
    if not (isinstance(psi_threshold, (int, float)) and math.isfinite(psi_threshold)
            and psi_threshold > 0):
        raise RulesError(f"the PSI threshold must be a positive number, got {psi_threshold!r}")
    if not 0.5 <= confidence < 1.0:
        raise RulesError(f"the confidence must be in [0.5, 1), got {confidence!r}")

    share_rules: list[dict[str, Any]] = []
    for ref in uniq:
        share_rules.extend(baseline_rules(ref, confidence))
    groups = [{"name": "modelotel-baselines", "interval": interval, "rules": share_rules}]
    for rng in [*rngs, LIFETIME]:
        groups.append({"name": f"modelotel-fleet-drift-{rng}", "interval": interval,
                       "rules": fleet_rules(FEATURE, rng) + fleet_rules(OUTPUT, rng)})
    groups.append({"name": "modelotel-version-drift", "interval": interval,
                   "rules": [version_drift_rule(alert_range)]})
    groups.append({"name": "modelotel-drift-alerts", "interval": interval, "rules": [
        drift_alert(FEATURE, alert_range, float(psi_threshold), for_),
        drift_alert(OUTPUT, alert_range, float(psi_threshold), for_),
        stale_alert(),
    ]})
    header = [
        "# Generated by `modelotel rules`: fleet drift against training baselines.",
        "# Regenerate it whenever a baseline changes (ModelBaselineRulesStale fires until then).",
        "# Load it beside collector-config/prometheus/modelotel-rules.yml (version roles).",
    ]
    header += [f"#   baseline: {s}" for s in sources]
    header += [f"#   model {r.model!r} version {r.version!r}: {r.baseline.hash}" for r in uniq]
    return "\n".join(header) + "\n" + render({"groups": groups})


def render(doc: dict[str, Any]) -> str:
    """YAML for a Prometheus rule file: strings quoted as JSON (valid YAML), multi-line
    expressions as literal blocks."""
    out = ["groups:"]
    for g in doc["groups"]:
        out.append(f"  - name: {json.dumps(g['name'])}")
        out.append(f"    interval: {g['interval']}")
        out.append("    rules:")
        for r in g["rules"]:
            first = True
            for key in ("record", "alert", "expr", "for", "labels", "annotations"):
                if key not in r:
                    continue
                lead = "      - " if first else "        "
                first = False
                val = r[key]
                if isinstance(val, dict):
                    out.append(f"{lead}{key}:")
                    out.extend(f"          {k}: {json.dumps(v)}" for k, v in val.items())
                elif key == "expr" and "\n" in val:
                    out.append(f"{lead}{key}: |")
                    out.extend(f"          {line}" for line in val.splitlines())
                elif key in ("record", "alert", "for"):
                    out.append(f"{lead}{key}: {val}")
                else:
                    out.append(f"{lead}{key}: {json.dumps(val)}")
    return "\n".join(out) + "\n"


__all__ = [
    "DEFAULT_RANGES",
    "LIFETIME",
    "BaselineRef",
    "RulesError",
    "chi2_quantile",
    "column_bins",
    "generate",
    "min_rows",
]
