"""collector-config/k8s/: Kubernetes manifests and Helm values, generated from the shipped configs.

Proven here: the generated files are current (and a change to a config that is not regenerated
is caught), the ConfigMaps hold the shipped files byte for byte, every manifest passes the
Kubernetes API schemas (strict: unknown fields fail) of the oldest and newest version
kubernetes-validate ships, the Helm values embed exactly the shipped config (merged like the
collector merges ``--config`` files), and ``otelcol validate`` accepts every embedded config with
the environment its pod gets.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from harness import COLLECTOR_CONFIG

pytestmark = pytest.mark.integration

K8S = COLLECTOR_CONFIG / "k8s"
GENERATOR = K8S / "generate.py"
MANIFESTS = K8S / "modelotel-collector.yaml"
#: the oldest and the newest Kubernetes versions whose schemas kubernetes-validate ships
K8S_VERSIONS = ("1.29.0", "1.37.0")
MOUNT = "/etc/modelotel"
TAIL_SAMPLING = ("tail-sampling.yaml", "agent-tail-sampling.yaml")


def _docs() -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(MANIFESTS.read_text()) if d]


def _doc(kind: str) -> dict[str, Any]:
    return next(d for d in _docs() if d["kind"] == kind)


def _merge(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(a)
    for k, v in b.items():
        old = out.get(k)
        out[k] = _merge(old, v) if isinstance(old, dict) and isinstance(v, dict) else v
    return out


def _generate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(GENERATOR), *args], capture_output=True, text=True, check=False
    )


def test_generated_files_are_current() -> None:
    cp = _generate("--check")
    assert cp.returncode == 0, cp.stderr


def test_a_config_change_without_regenerating_is_caught(tmp_path: Path) -> None:
    root = tmp_path / "collector-config"
    shutil.copytree(COLLECTOR_CONFIG, root, ignore=shutil.ignore_patterns("*.json", "grafana"))
    agent = root / "agent.yaml"
    text = agent.read_text()
    assert "check_interval: 1s" in text
    agent.write_text(text.replace("check_interval: 1s", "check_interval: 2s"))
    cp = _generate("--check", "--root", str(root))
    assert cp.returncode == 1
    assert "k8s/modelotel-collector.yaml" in cp.stderr
    assert "k8s/helm/agent-values.yaml" in cp.stderr
    assert "gateway-values" not in cp.stderr  # the gateway embeds no agent.yaml


def test_configmaps_hold_the_shipped_files_verbatim() -> None:
    maps = {d["metadata"]["name"]: d["data"] for d in _docs() if d["kind"] == "ConfigMap"}
    configs = maps["modelotel-collector-config"]
    for name in ("base.yaml", "gateway.yaml", "agent.yaml", "tail-sampling.yaml"):
        assert configs[name] == (COLLECTOR_CONFIG / name).read_text(), name
    backends = sorted((COLLECTOR_CONFIG / "backends").glob("*.yaml"))
    assert maps["modelotel-collector-backends"] == {p.name: p.read_text() for p in backends}


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_manifests_pass_the_kubernetes_schemas(version: str) -> None:
    kinds = []
    for doc in _docs():
        kubernetes_validate.validate(doc, version, strict=True)
        kinds.append(doc["kind"])
    assert sorted(kinds) == sorted(
        ["ConfigMap", "ConfigMap", "DaemonSet", "Service", "StatefulSet", "Service",
         "PodDisruptionBudget"]
    )  # fmt: skip


def test_the_schema_check_rejects_an_unknown_field() -> None:
    """strict validation means something: a misspelt field fails it."""
    daemonset = _doc("DaemonSet")
    daemonset["spec"]["template"]["spec"]["containers"][0]["volumeMount"] = []
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(daemonset, K8S_VERSIONS[-1], strict=True)


def test_gateway_queue_and_agent_queue_outlive_their_pods() -> None:
    gateway = _doc("StatefulSet")
    claims = [c["metadata"]["name"] for c in gateway["spec"]["volumeClaimTemplates"]]
    assert claims == ["queue"]
    agent = _doc("DaemonSet")
    queue = next(v for v in agent["spec"]["template"]["spec"]["volumes"] if v["name"] == "queue")
    assert queue["hostPath"]["path"] == "/var/lib/otelcol-modelotel"
    services = {d["metadata"]["name"]: d for d in _docs() if d["kind"] == "Service"}
    service = services["modelotel-gateway"]
    assert service["spec"]["clusterIP"] == "None"  # the agents balance over every gateway pod


def _pod_env(env: list[dict[str, Any]], tmp_path: Path) -> dict[str, str]:
    """The container's environment as Kubernetes builds it: $(VAR) expanded, fields faked."""
    fields = {"spec.nodeName": "node-1", "metadata.namespace": "observability"}
    out: dict[str, str] = {}
    for e in env:
        if "valueFrom" in e:
            out[e["name"]] = fields[e["valueFrom"]["fieldRef"]["fieldPath"]]
        else:
            out[e["name"]] = re.sub(r"\$\((\w+)\)", lambda m: out[m.group(1)], e["value"])
    out["MODELOTEL_COLLECTOR_STORAGE_DIR"] = str(tmp_path / "queue")  # the pod's volume
    out["PATH"] = "/usr/bin:/bin"
    return out


def _validate(binary: Path, env: Mapping[str, str], configs: list[str]) -> None:
    cp = subprocess.run(
        [str(binary), "validate", *configs],
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert cp.returncode == 0, cp.stderr


def _mount_configmaps(tmp_path: Path) -> Path:
    mount = tmp_path / "etc-modelotel"
    (mount / "backends").mkdir(parents=True)
    for d in _docs():
        if d["kind"] == "ConfigMap":
            sub = "backends" if d["metadata"]["name"].endswith("backends") else ""
            for name, text in d["data"].items():
                (mount / sub / name).write_text(text)
    return mount


@pytest.mark.parametrize(
    ("kind", "extra_args"),
    [
        ("DaemonSet", []),
        ("DaemonSet", [f"--config={MOUNT}/{n}" for n in TAIL_SAMPLING]),
        ("StatefulSet", []),
        ("StatefulSet", [f"--config={MOUNT}/backends/tempo.yaml"]),
    ],
    ids=["agent", "agent+tail-sampling", "gateway", "gateway+tempo"],
)  # fmt: skip
def test_embedded_configs_validate_in_their_pods_environment(
    otelcol_binary: Path, tmp_path: Path, kind: str, extra_args: list[str]
) -> None:
    container = _doc(kind)["spec"]["template"]["spec"]["containers"][0]
    mount = _mount_configmaps(tmp_path)
    env = _pod_env(container["env"], tmp_path)
    env.setdefault("TEMPO_OTLP_ENDPOINT", "tempo.observability.svc:4317")  # the overlay's own
    args = [a.replace(MOUNT, str(mount)) for a in [*container["args"], *extra_args]]
    _validate(otelcol_binary, env, args)


@pytest.mark.parametrize("tier", ["agent", "gateway"])
def test_helm_values_embed_the_shipped_config_and_validate(
    otelcol_binary: Path, tmp_path: Path, tier: str
) -> None:
    values = yaml.safe_load((K8S / "helm" / f"{tier}-values.yaml").read_text())
    files = ["agent.yaml"] if tier == "agent" else ["base.yaml", "gateway.yaml"]
    shipped: dict[str, Any] = {}
    for name in files:
        shipped = _merge(shipped, yaml.safe_load((COLLECTOR_CONFIG / name).read_text()))
    assert values["alternateConfig"] == shipped
    # the chart's probes need the health check
    assert "health_check" in values["alternateConfig"]["service"]["extensions"]
    assert values["image"]["tag"] == "0.161.0"  # the release builder.yaml pins
    assert values["mode"] == ("daemonset" if tier == "agent" else "statefulset")
    relay = tmp_path / "relay.yaml"
    relay.write_text(yaml.safe_dump(values["alternateConfig"]))
    _validate(otelcol_binary, _pod_env(values["extraEnvs"], tmp_path), [f"--config={relay}"])
