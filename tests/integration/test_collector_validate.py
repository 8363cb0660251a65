"""`otelcol-modelotel validate` on every shipped config, with dummy secrets.

validate resolves the config (environment expansion, merging of several --config files),
checks every component's settings (OTTL conditions, redaction regexes, queue settings) and
builds the pipeline graph, without opening ports.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from harness import COLLECTOR_CONFIG

from modelotel import attributes as A  # noqa: N812

pytestmark = pytest.mark.integration

BACKENDS = sorted((COLLECTOR_CONFIG / "backends").glob("*.yaml"))
_REQUIRED_ENV = re.compile(r"\$\{env:([A-Z0-9_]+)\}")


def dummy_env(tmp_path: Path, *configs: Path) -> dict[str, str]:
    """Every ${env:NAME} without a default gets a dummy value shaped like the real one."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELOTEL_COLLECTOR_")}
    env["MODELOTEL_COLLECTOR_STORAGE_DIR"] = str(tmp_path / "queue")
    for cfg in configs:
        for name in _REQUIRED_ENV.findall(cfg.read_text()):
            if (
                name.endswith(("_URL", "_ENDPOINT"))
                and "AGENT" not in name
                and "GATEWAY" not in name
            ):
                value = "https://backend.invalid/otlp"
                if "JAEGER" in name or "TEMPO" in name:
                    value = "backend.invalid:4317"
            elif name.endswith("ENDPOINT"):
                value = "backend.invalid:4317"
            elif name.endswith("_FILE"):
                value = "/etc/hostname"
            elif name == "SPLUNK_REALM":
                value = "us0"
            else:
                value = "dummy-secret"
            env.setdefault(name, value)
    return env


def validate(
    binary: Path, env: dict[str, str], *configs: Path | str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(binary), "validate", *(f"--config={c}" for c in configs)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_every_backend_overlay_is_tested() -> None:
    names = {p.name for p in BACKENDS}
    expected = {
        "jaeger.yaml",
        "tempo.yaml",
        "prometheus-remote-write.yaml",
        "grafana-cloud.yaml",
        "honeycomb.yaml",
        "newrelic.yaml",
        "datadog.yaml",
        "datadog-agentless.yaml",
        "elastic.yaml",
        "dynatrace.yaml",
        "splunk.yaml",
        "axiom.yaml",
        "otlp.yaml",
    }
    assert names == expected


def test_base_config_validates(otelcol_binary: Path, tmp_path: Path) -> None:
    base = COLLECTOR_CONFIG / "base.yaml"
    cp = validate(otelcol_binary, dummy_env(tmp_path, base), base)
    assert cp.returncode == 0, cp.stderr


@pytest.mark.parametrize("overlay", BACKENDS, ids=[p.stem for p in BACKENDS])
def test_base_plus_backend_overlay_validates(
    otelcol_binary: Path, tmp_path: Path, overlay: Path
) -> None:
    base = COLLECTOR_CONFIG / "base.yaml"
    cp = validate(otelcol_binary, dummy_env(tmp_path, base, overlay), base, overlay)
    assert cp.returncode == 0, cp.stderr


def test_agent_config_validates(otelcol_binary: Path, tmp_path: Path) -> None:
    agent = COLLECTOR_CONFIG / "agent.yaml"
    cp = validate(otelcol_binary, dummy_env(tmp_path, agent), agent)
    assert cp.returncode == 0, cp.stderr


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_gateway_config_validates(otelcol_binary: Path, tmp_path: Path, tls: bool) -> None:
    configs = [COLLECTOR_CONFIG / "base.yaml", COLLECTOR_CONFIG / "gateway.yaml"]
    if tls:
        configs.append(COLLECTOR_CONFIG / "gateway-tls.yaml")
    cp = validate(otelcol_binary, dummy_env(tmp_path, *configs), *configs)
    assert cp.returncode == 0, cp.stderr


def test_gateway_plus_backend_overlay_validates(otelcol_binary: Path, tmp_path: Path) -> None:
    configs = [
        COLLECTOR_CONFIG / "base.yaml",
        COLLECTOR_CONFIG / "gateway.yaml",
        COLLECTOR_CONFIG / "backends" / "dynatrace.yaml",
    ]
    cp = validate(otelcol_binary, dummy_env(tmp_path, *configs), *configs)
    assert cp.returncode == 0, cp.stderr


def test_validate_rejects_a_broken_filter_condition(otelcol_binary: Path, tmp_path: Path) -> None:
    """validate really parses OTTL: a config error fails it (so the passes above mean something)."""
    base = COLLECTOR_CONFIG / "base.yaml"
    broken = 'yaml:processors::filter/payload_only::logs::log_record: ["no_such_path == 1"]'
    cp = validate(otelcol_binary, dummy_env(tmp_path, base), base, broken)
    assert cp.returncode != 0
    assert "no_such_path" in cp.stderr


def test_validate_rejects_a_broken_redaction_regex(otelcol_binary: Path, tmp_path: Path) -> None:
    base = COLLECTOR_CONFIG / "base.yaml"
    broken = 'yaml:processors::redaction/payload::blocked_values: ["(unclosed"]'
    cp = validate(otelcol_binary, dummy_env(tmp_path, base), base, broken)
    assert cp.returncode != 0
    assert "redaction/payload" in cp.stderr


def test_built_components_are_the_manifests(otelcol_binary: Path) -> None:
    """The binary holds exactly the components of builder.yaml, at the pinned release."""
    manifest = yaml.safe_load((COLLECTOR_CONFIG / "builder.yaml").read_text())
    cp = subprocess.run(
        [str(otelcol_binary), "components"], capture_output=True, text=True, timeout=60, check=True
    )
    built = yaml.safe_load(cp.stdout)
    for kind in ("receivers", "processors", "exporters", "extensions", "connectors"):
        want = sorted(entry["gomod"] for entry in manifest[kind])
        got = sorted(entry["module"] for entry in built[kind])
        assert got == want, kind
    versions = {
        entry["gomod"].split()[1]
        for kind in ("receivers", "processors", "exporters", "extensions", "connectors")
        for entry in manifest[kind]
    }
    assert versions == {"v0.161.0"}


def test_shipped_configs_use_only_built_components(otelcol_binary: Path) -> None:
    """Every component type named in a shipped config is compiled into the binary."""
    cp = subprocess.run(
        [str(otelcol_binary), "components"], capture_output=True, text=True, timeout=60, check=True
    )
    built = yaml.safe_load(cp.stdout)
    for path in [*COLLECTOR_CONFIG.glob("*.yaml"), *BACKENDS]:
        if path.name == "builder.yaml":
            continue
        cfg = yaml.safe_load(path.read_text()) or {}
        for kind in ("receivers", "processors", "exporters", "extensions", "connectors"):
            names = {entry["name"] for entry in built[kind]}
            for component_id in cfg.get(kind) or {}:
                assert component_id.split("/")[0] in names, f"{path.name}: {kind} {component_id}"


def test_receivers_bind_localhost_by_default() -> None:
    for name in ("base.yaml", "agent.yaml"):
        cfg = yaml.safe_load((COLLECTOR_CONFIG / name).read_text())
        for proto in ("grpc", "http"):
            endpoint = cfg["receivers"]["otlp"]["protocols"][proto]["endpoint"]
            assert endpoint.startswith("${env:MODELOTEL_COLLECTOR_HOST:-127.0.0.1}:"), (
                name,
                endpoint,
            )


def _merge(a: dict[str, object], b: dict[str, object]) -> dict[str, object]:
    """The collector's merge of several --config files: maps deep, lists replaced."""
    out = dict(a)
    for k, v in b.items():
        old = out.get(k)
        out[k] = _merge(old, v) if isinstance(old, dict) and isinstance(v, dict) else v
    return out


@pytest.mark.parametrize(
    "configs",
    [["agent.yaml"], ["base.yaml"]] + [["base.yaml", f"backends/{p.name}"] for p in BACKENDS],
    ids=lambda c: "+".join(Path(x).stem for x in c),
)
def test_every_exporter_in_use_has_a_persistent_queue_and_retries(configs: list[str]) -> None:
    """Every OTLP exporter in a pipeline (they all may leave the host) queues on disk and retries
    forever; remote write to another host keeps a write-ahead log."""
    cfg: dict[str, object] = {}
    for name in configs:
        cfg = _merge(cfg, yaml.safe_load((COLLECTOR_CONFIG / name).read_text()))
    exporters = cfg["exporters"]
    pipelines = cfg["service"]["pipelines"]  # type: ignore[index]
    assert isinstance(exporters, dict)
    used = {e for p in pipelines.values() for e in p["exporters"]}
    checked = 0
    for exporter_id in sorted(used):
        if exporter_id.startswith("forward/"):
            continue  # a connector
        settings = exporters[exporter_id]
        kind = exporter_id.split("/")[0]
        if kind in ("otlp_grpc", "otlp_http"):
            assert settings["sending_queue"]["storage"] == "file_storage/queue", exporter_id
            assert settings["sending_queue"]["block_on_overflow"] is True, exporter_id
            assert settings["retry_on_failure"]["enabled"] is True, exporter_id
            assert settings["retry_on_failure"]["max_elapsed_time"] == 0, exporter_id
            checked += 1
        elif kind == "prometheus_remote_write" and "127.0.0.1" not in str(settings["endpoint"]):
            assert settings["wal"]["directory"], exporter_id
            checked += 1
    assert checked >= 1


def test_payload_pipeline_is_redacted_and_has_no_debug_exporter() -> None:
    for name in ("base.yaml", "agent.yaml"):
        cfg = yaml.safe_load((COLLECTOR_CONFIG / name).read_text())
        pipeline = cfg["service"]["pipelines"]["logs/payload"]
        assert pipeline["processors"][-1] == "redaction/payload"
        assert not any(e.startswith("debug") for e in pipeline["exporters"])
        for pipeline_cfg in cfg["service"]["pipelines"].values():
            if "receivers" in pipeline_cfg and "otlp" in pipeline_cfg["receivers"]:
                assert pipeline_cfg["processors"][0] == "memory_limiter"


def test_redaction_never_touches_the_payload_records_fixed_keys() -> None:
    """The keys that docs/payloads.md lists as never carrying user data are ignored_keys."""
    fixed = {
        A.ML_MODEL_NAME,
        A.ML_MODEL_VERSION,
        A.ML_PREDICTION_ID,
        A.ML_PAYLOAD_SAMPLE_REASON,
        A.ML_PAYLOAD_TRUNCATED,
        A.ML_PAYLOAD_ORIGINAL_ROWS,
        A.ML_PAYLOAD_ORIGINAL_BYTES,
        A.ML_PAYLOAD_BYTES,
        A.ML_PAYLOAD_REDACTED,
        A.ML_CHECKS_FIRED,
        A.ERROR_TYPE,
    }
    for name in ("base.yaml", "agent.yaml"):
        cfg = yaml.safe_load((COLLECTOR_CONFIG / name).read_text())
        assert set(cfg["processors"]["redaction/payload"]["ignored_keys"]) == fixed, name
