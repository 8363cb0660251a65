"""Every query of the shipped Grafana dashboard and Prometheus rules, run against a real
Prometheus that the SDK fed through our collector.

Each expression must parse and evaluate; when every metric it names was produced by the
instrumented model in this test, it must also return data. The model serves two versions (the
second starts once Prometheus has seen the first, so the version comparison has a newest and a
previous one), and Prometheus also loads the drift rules `modelotel rules` writes for its
baseline (their expressions are those of the shipped example, examples/drift-rules.yml).
A metric named by a dashboard or rule that the test does not produce must be listed in
NOT_PRODUCED with the reason, so a misspelled or mistranslated name (say `ml_feature_drift`
vs `ml_feature_drift_ratio`) fails.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from harness import (
    GRAFANA_DIR,
    PROMETHEUS_DIR,
    RULE_FILES,
    RULE_TESTS,
    Proc,
    Stack,
    start_model_app,
    wait_until,
)
from model_app import training_baseline

from modelotel import attributes as A  # noqa: N812
from modelotel import cli

pytestmark = pytest.mark.integration

MODEL = "churn-dashboards"

#: Metrics named in dashboards / rules that this test's model does not produce, and why.
NOT_PRODUCED: dict[str, str] = {
    # the collector's failure counters appear only once something failed or was refused
    "otelcol_exporter_send_failed_spans": "appears only after a failed export",
    "otelcol_exporter_send_failed_log_records": "appears only after a failed export",
    "otelcol_exporter_send_failed_metric_points": "appears only after a failed export",
    "ml_telemetry_errors_total": "appears only when modelotel swallows an internal error",
}

DASHBOARDS = sorted(GRAFANA_DIR.glob("*.json"))
#: What `modelotel rules` writes (for the shipped example's baselines); the test generates the
#: same rules for its own model's baseline.
DRIFT_EXAMPLE = PROMETHEUS_DIR / "examples" / "drift-rules.yml"
VERSIONS = ("2", "3")

_LABELS = {
    v.replace(".", "_")
    for k, v in vars(A).items()
    if isinstance(v, str) and not k.startswith(("METRIC_", "EVENT_", "SPAN_", "SCOPE_"))
} | {"ml_bins", "ml_previous_version", "ml_version_role"}  # labels the rules make
_METRIC = re.compile(r"\b((?:ml|otelcol)_[a-z0-9_]+)\b(?!:)")
_COMPARISON = re.compile(r"^(.*?)\s*(?:>|<|==|!=|>=|<=)\s*-?[0-9.]+\s*$", re.S)
_GRAFANA_VARS = {
    "$__rate_interval": "1m",
    "$__range": "5m",
    "$model": ".+",
    "$version": ".+",
    "$feature": ".+",
    "$method": ".+",
    "$drift_range": "1h",
}
_OWNER_JOIN = re.compile(
    r"\s*\*\s*on \([^)]*\) group_left \((?:ml_model_owner|ml_model_owner, ml_model_runbook_url)\)"
    r"\s*topk by \([^)]*\) \(1,\s*max by \([^)]*\) \(ml_model_info\)\)\s*$"
)


def metric_names(expr: str) -> set[str]:
    return {m for m in _METRIC.findall(expr) if m not in _LABELS}


def grafana_expr(expr: str) -> str:
    for var, value in _GRAFANA_VARS.items():
        expr = expr.replace(var, value)
    assert "$" not in expr, f"unknown dashboard variable in {expr!r}"
    return expr


def _strip_parens(expr: str) -> str:
    while expr.startswith("(") and expr.endswith(")"):
        depth = 0
        for i, ch in enumerate(expr):
            depth += ch == "("
            depth -= ch == ")"
            if depth == 0 and i < len(expr) - 1:
                return expr  # the first "(" closes before the end: not one wrapping pair
        expr = expr[1:-1].strip()
    return expr


def data_part(expr: str) -> str:
    """The part of an alert that must return data on a healthy model: without the owner join,
    the first operand of a top-level and / or / unless, before its threshold."""
    e = _strip_parens(_OWNER_JOIN.sub("", expr.strip()).strip())
    while True:
        depth, first = 0, e
        for i, ch in enumerate(e):
            depth += ch == "("
            depth -= ch == ")"
            if depth == 0 and not ch.isspace() and re.match(r"\s+(and|or|unless)\b", e[i + 1:]):
                first = e[: i + 1]
                break
        first = _strip_parens(first.strip())
        if first == e:
            break
        e = first
    match = _COMPARISON.match(e)
    return match.group(1) if match else e


def rule_queries() -> list[tuple[str, str]]:
    out = []
    for path in [*RULE_FILES, DRIFT_EXAMPLE]:
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                name = rule.get("alert") or rule["record"]
                out.append((f"{path.stem}:{name}", rule["expr"].strip()))
    return out


def dashboard_queries() -> list[tuple[str, str]]:
    out = []
    for path in DASHBOARDS:
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel.get("targets", []):
                out.append((f"{path.stem}:{panel['title']}:{target['refId']}", target["expr"]))
    return out


@pytest.fixture(scope="module")
def live_model(stack: Stack) -> Iterator[list[Proc]]:
    """The instrumented model, versions 2 then 3, each predicting 20 times a second for the
    whole module, with the drift rules for its baseline loaded into Prometheus."""
    stop = stack.workdir / "dashboards.stop"
    baseline = stack.workdir / "dashboards.baseline.json"
    training_baseline().save(baseline)
    drift_rules = stack.workdir / "dashboards-drift-rules.yml"
    specs = [f"{MODEL}@{v}={baseline}" for v in VERSIONS]
    assert cli.main(["rules", *specs, "-o", str(drift_rules), "--interval", "1s"]) == 0
    stack.prometheus.load_rules(drift_rules)
    procs: list[Proc] = []
    try:
        for version in VERSIONS:
            args = (f"--model {MODEL} --version {version} --rate 20 --error-every 7 "
                    f"--baseline-file {baseline} --outcomes --payload-rps 5 --max-seconds 600")
            procs.append(start_model_app(
                stack.workdir,
                [*args.split(), "--rows", "12", "--stop-file", str(stop)],
                stack.otlp_env("grpc"),
            ))
            first_seen = (f'ml_model:version_first_seen{{ml_model_name="{MODEL}",'
                          f'ml_model_version="{version}"}}')
            wait_until(
                lambda q=first_seen: stack.prometheus.query(q)["data"]["result"],
                90,
                what=f"{first_seen} (the version ordering rules saw it)",
            )
        wait_until(
            lambda: stack.prometheus.query(
                f'ml_model:version_role{{ml_model_name="{MODEL}",ml_version_role="previous"}}'
            )["data"]["result"],
            60,
            what=f"{MODEL} v{VERSIONS[0]} as the previous version",
        )
        sel = f'ml_prediction_calls_total{{ml_model_name="{MODEL}"}}'
        wait_until(
            lambda: stack.prometheus.query(f"rate({sel}[1m]) > 0")["data"]["result"],
            60,
            what=f"a rate of {sel} in Prometheus",
        )
        wait_until(
            lambda: stack.prometheus.query("otelcol_exporter_queue_capacity")["data"]["result"],
            30,
            what="the collector's own metrics, scraped",
        )
        yield procs
    finally:
        stop.touch()
        for proc in procs:
            proc.stop(timeout=40)


@pytest.fixture(scope="module")
def produced(stack: Stack, live_model: list[Proc]) -> set[str]:
    """The metric names in Prometheus once every ml_* series the model makes has at least two
    samples in the last minute (so rate() and increase() over it return data)."""
    seen: list[set[str]] = []

    def settled() -> set[str] | None:
        names = stack.prometheus.metric_names()
        ml = sorted(n for n in names if n.startswith("ml_"))
        if not all(
            stack.prometheus.query(f"count_over_time({n}[1m]) >= 2")["data"]["result"] for n in ml
        ):
            return None
        seen.append(set(ml))
        # the same names on two looks 3 s apart: nothing new is still appearing
        return names if len(seen) >= 2 and seen[-1] == seen[-2] else None

    names: set[str] = wait_until(settled, 90, interval=3.0, what="every ml_* series rate-able")
    assert "ml_prediction_calls_total" in names
    return names


def test_promtool_accepts_the_rule_files(promtool_binary: Path) -> None:
    assert RULE_FILES
    for path in [*RULE_FILES, DRIFT_EXAMPLE]:
        cp = subprocess.run(
            [str(promtool_binary), "check", "rules", str(path)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert cp.returncode == 0, cp.stdout + cp.stderr


def test_alerts_fire_on_bad_models_and_stay_quiet_on_good_ones(promtool_binary: Path) -> None:
    """promtool's unit tests of the alerts on synthetic series (*.test.yml)."""
    assert RULE_TESTS
    for path in RULE_TESTS:
        cp = subprocess.run(
            [str(promtool_binary), "test", "rules", path.name],
            cwd=path.parent,
            capture_output=True,
            text=True,
            check=False,
        )
        assert cp.returncode == 0, cp.stdout + cp.stderr
        assert "SUCCESS" in cp.stdout


def test_prometheus_loaded_and_evaluates_every_rule(stack: Stack, produced: set[str]) -> None:
    expected = {name.split(":", 1)[1] for name, _ in rule_queries()}

    def evaluated() -> dict[str, Any] | None:
        rules = {
            r["name"]: r
            for g in stack.prometheus.api("rules")["data"]["groups"]
            for r in g["rules"]
            if r.get("lastEvaluation", "").startswith("20") and r.get("health") != "unknown"
        }
        return rules if set(rules) >= expected else None

    rules = wait_until(evaluated, 90, interval=1.0, what="every rule evaluated once")
    for name in expected:
        assert rules[name]["health"] == "ok", (name, rules[name].get("lastError"))


def test_every_named_metric_is_produced_or_explained(produced: set[str]) -> None:
    named: set[str] = set()
    for _, expr in [*rule_queries(), *dashboard_queries()]:
        named |= metric_names(expr)
    unexplained = sorted(n for n in named if n not in produced and n not in NOT_PRODUCED)
    assert unexplained == [], (
        f"named in dashboards/rules but not in Prometheus: {unexplained}; "
        f"Prometheus has: {sorted(n for n in produced if n.startswith(('ml_', 'otelcol_')))}"
    )
    stale = sorted(n for n in NOT_PRODUCED if n in produced)
    assert stale == [], f"produced now, remove from NOT_PRODUCED: {stale}"


@pytest.mark.parametrize(("name", "expr"), rule_queries(), ids=[n for n, _ in rule_queries()])
def test_rule_expression_runs_and_returns_data(
    stack: Stack, produced: set[str], name: str, expr: str
) -> None:
    answer = stack.prometheus.query(expr)
    assert answer.get("status") == "success", answer
    # For an alert, the part before its threshold must return data (the alert itself fires
    # only on bad models); a recording rule's whole expression must.
    is_alert = name.split(":", 1)[1][:1].isupper()  # alerts are CamelCase, records are not
    lhs = data_part(expr) if is_alert else expr
    if metric_names(expr) <= produced:
        result = stack.prometheus.query(lhs)
        assert result.get("status") == "success", result
        assert result["data"]["result"], f"{name}: no data for {lhs}"


@pytest.mark.parametrize(
    ("name", "expr"), dashboard_queries(), ids=[n for n, _ in dashboard_queries()]
)
def test_dashboard_query_runs_and_returns_data(
    stack: Stack, produced: set[str], name: str, expr: str
) -> None:
    answer = stack.prometheus.query(grafana_expr(expr))
    assert answer.get("status") == "success", (name, answer)
    if metric_names(expr) <= produced:
        assert answer["data"]["result"], f"{name}: no data for {expr}"


@pytest.mark.parametrize("path", DASHBOARDS, ids=[p.stem for p in DASHBOARDS])
def test_dashboard_variables_resolve(stack: Stack, produced: set[str], path: Path) -> None:
    """label_values(<selector>, <label>) variables, run as Prometheus label-values queries."""
    variables = json.loads(path.read_text())["templating"]["list"]
    queries = [v["query"]["query"] for v in variables if v["type"] == "query"]
    assert queries
    for query in queries:
        m = re.fullmatch(r"label_values\((.+), ([a-z_]+)\)", query)
        assert m, query
        selector = grafana_expr(m.group(1))
        answer = stack.prometheus.api(f"label/{m.group(2)}/values", **{"match[]": selector})
        assert answer.get("status") == "success", answer
        if metric_names(selector) <= produced:
            assert answer["data"], query
