"""deploy/k8s: every rendered manifest is valid Kubernetes 1.30, and the files agree with each
other and with the app (ports, paths, labels, timings, secrets)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from deploy_files import (
    K8S,
    KUSTOMIZATIONS,
    OVERLAYS,
    container,
    container_env,
    container_port,
    final_stage,
    instructions,
    mounted_files,
    one,
    overlay,
    pod_spec,
    rendered,
)
from kustomize_lite import Resource

from proxy.app import create_app
from proxy.run.drain import GRACE_S
from proxy.settings import Settings, load

K8S_VERSION = "1.30"
CRDS = {("monitoring.coreos.com/v1", "ServiceMonitor")}
SECRETS = {"upstream-api-key": "sk-upstream", "api-keys": "client-key,other-client-key"}
CONFIG_PATH = "/etc/railproxy/config.yaml"


def settings_in(resources: list[Resource], tmp_path: Path) -> Settings:
    """The settings the container would load: the mounted config, its environment."""
    path = tmp_path / "config.yaml"
    path.write_text(mounted_files(resources)[CONFIG_PATH])
    return load(path, env=container_env(resources, SECRETS))


def labels_match(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and selector.items() <= labels.items()


def pod_labels(resources: list[Resource]) -> dict[str, str]:
    labels: dict[str, str] = one(resources, "Deployment")["spec"]["template"]["metadata"]["labels"]
    return labels


# -- validity ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", OVERLAYS)
def test_every_manifest_validates_against_the_kubernetes_schemas(name: str) -> None:
    checked = 0
    for r in overlay(name):
        if (r["apiVersion"], r["kind"]) in CRDS:
            continue  # no schema bundled: test_service_monitor_* checks it by hand
        try:
            kubernetes_validate.validate(r, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as e:
            where = "/".join(str(p) for p in e.path)
            pytest.fail(f"{r['kind']}/{r['metadata']['name']}: {where}: {e.message}")
        checked += 1
    assert checked >= 6


def test_the_validator_rejects_an_unknown_field() -> None:
    """A control: strict validation is on, so a misspelt field cannot pass unnoticed."""
    deployment = one(overlay("prod"), "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSION, strict=True)


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
@pytest.mark.parametrize("directory", KUSTOMIZATIONS)
def test_the_test_renderer_agrees_with_kubectl_kustomize(directory: str) -> None:
    out = subprocess.run(
        ["kubectl", "kustomize", str(K8S / directory)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout

    def by_name(resources: list[Resource]) -> dict[tuple[str, str], Resource]:
        return {(r["kind"], r["metadata"]["name"]): r for r in resources}

    theirs = [r for r in yaml.safe_load_all(out) if r]
    assert by_name(rendered(directory)) == by_name(theirs)


# -- the app behind the manifests ---------------------------------------------------------


@pytest.mark.parametrize("name", OVERLAYS)
def test_probes_use_routes_the_app_serves_on_the_configured_port(name: str, tmp_path: Path) -> None:
    resources = overlay(name)
    settings = settings_in(resources, tmp_path)
    routes = {
        (r.method, r.resource.canonical)
        for r in create_app(settings).router.routes()
        if r.resource is not None
    }
    c = container(resources)
    probes = [c["startupProbe"], c["livenessProbe"], c["readinessProbe"]]
    assert [p["httpGet"]["path"] for p in probes] == ["/healthz", "/healthz", "/readyz"]
    for probe in probes:
        assert ("GET", probe["httpGet"]["path"]) in routes
        assert container_port(resources, probe["httpGet"]["port"]) == settings.server.port
    assert settings.server.host == "0.0.0.0"


@pytest.mark.parametrize("name", OVERLAYS)
def test_the_service_targets_the_container_port(name: str, tmp_path: Path) -> None:
    resources = overlay(name)
    (port,) = one(resources, "Service")["spec"]["ports"]
    assert (
        container_port(resources, port["targetPort"])
        == settings_in(resources, tmp_path).server.port
    )
    (expose,) = instructions(final_stage(), "EXPOSE")
    assert int(expose.args) == container_port(resources, port["targetPort"])


@pytest.mark.parametrize("name", OVERLAYS)
def test_the_configmap_holds_the_file_the_image_command_reads(name: str) -> None:
    resources = overlay(name)
    (cmd,) = instructions(final_stage(), "CMD")
    assert cmd.exec_form() == ["railproxy", "serve", "--config", CONFIG_PATH]
    c = container(resources)
    assert "command" not in c
    assert "args" not in c
    assert CONFIG_PATH in mounted_files(resources)
    (mount,) = [m for m in c["volumeMounts"] if CONFIG_PATH.startswith(m["mountPath"] + "/")]
    assert "subPath" not in mount  # a subPath mount never sees ConfigMap updates (reload)
    assert mount["readOnly"] is True
    assert mounted_files(resources)[CONFIG_PATH] == (K8S / "base" / "config.yaml").read_text()


@pytest.mark.parametrize("name", OVERLAYS)
def test_selectors_select_the_pods(name: str) -> None:
    resources = overlay(name)
    pods = pod_labels(resources)
    deployment = one(resources, "Deployment")
    assert labels_match(deployment["spec"]["selector"]["matchLabels"], pods)
    assert labels_match(one(resources, "Service")["spec"]["selector"], pods)
    assert labels_match(
        one(resources, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"], pods
    )
    assert labels_match(one(resources, "NetworkPolicy")["spec"]["podSelector"]["matchLabels"], pods)
    target = one(resources, "HorizontalPodAutoscaler")["spec"]["scaleTargetRef"]
    assert (target["apiVersion"], target["kind"]) == ("apps/v1", "Deployment")
    assert target["name"] == deployment["metadata"]["name"]
    for spread in pod_spec(resources).get("topologySpreadConstraints", []):
        assert labels_match(spread["labelSelector"]["matchLabels"], pods)


def test_service_monitor_scrapes_the_metrics_route_of_the_service() -> None:
    resources = overlay("prod")
    monitor = one(resources, "ServiceMonitor")
    service = one(resources, "Service")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert labels_match(monitor["spec"]["selector"]["matchLabels"], service["metadata"]["labels"])
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in [p["name"] for p in service["spec"]["ports"]]
    assert endpoint["path"] == "/metrics"
    routes = {r.resource.canonical for r in create_app(Settings()).router.routes() if r.resource}
    assert "/metrics" in routes
    assert set(endpoint) <= {"port", "path", "interval", "scrapeTimeout"}
    assert _seconds(endpoint["scrapeTimeout"]) < _seconds(endpoint["interval"])


def _seconds(duration: str) -> int:
    assert duration.endswith("s"), duration
    return int(duration[:-1])


@pytest.mark.parametrize("name", OVERLAYS)
def test_the_grace_period_covers_prestop_and_the_whole_drain(name: str, tmp_path: Path) -> None:
    resources = overlay(name)
    prestop = container(resources)["lifecycle"]["preStop"]["exec"]["command"]
    assert prestop[0] == "sleep"
    drain = settings_in(resources, tmp_path).server.drain_timeout_s
    # the drain's own bound: drain_timeout_s, then stopping, grace, cancel, grace
    needed = float(prestop[1]) + drain + 2 * GRACE_S
    assert pod_spec(resources)["terminationGracePeriodSeconds"] > needed


@pytest.mark.parametrize("name", OVERLAYS)
def test_the_pod_runs_locked_down(name: str) -> None:
    resources = overlay(name)
    pod, c = pod_spec(resources), container(resources)
    sc = c["securityContext"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert sc["runAsNonRoot"] is True
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    (user,) = instructions(final_stage(), "USER")
    uid, gid = (int(x) for x in user.args.split(":"))
    assert (pod["securityContext"]["runAsUser"], pod["securityContext"]["runAsGroup"]) == (uid, gid)
    writable = [m["mountPath"] for m in c["volumeMounts"] if not m.get("readOnly")]
    assert writable == ["/tmp"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    (tmp,) = [m for m in c["volumeMounts"] if m["mountPath"] == "/tmp"]
    assert "emptyDir" in volumes[tmp["name"]]
    for kind in ("requests", "limits"):
        assert set(c["resources"][kind]) == {"cpu", "memory"}


@pytest.mark.parametrize("name", OVERLAYS)
def test_keys_come_from_a_secret_and_reach_the_settings(name: str, tmp_path: Path) -> None:
    resources = overlay(name)
    refs = {
        v["name"]: v["valueFrom"]["secretKeyRef"]
        for v in container(resources)["env"]
        if "secretKeyRef" in v.get("valueFrom", {})
    }
    assert set(refs) == {"UPSTREAM_API_KEY", "RAILPROXY_API_KEYS"}
    assert {r["name"] for r in refs.values()} == {"railproxy-secrets"}
    text = mounted_files(resources)[CONFIG_PATH]
    assert "${UPSTREAM_API_KEY:-}" in text
    assert "${RAILPROXY_API_KEYS}" in text  # no default: a missing key stops the pod
    settings = settings_in(resources, tmp_path)
    env = container_env(resources, SECRETS)
    keys = [k.key.get_secret_value() for k in settings.server.api_keys]
    assert keys == env["RAILPROXY_API_KEYS"].split(",")
    key = settings.upstream.api_key
    assert (key.get_secret_value() if key else "") == env["UPSTREAM_API_KEY"]


@pytest.mark.parametrize("name", OVERLAYS)
def test_the_network_policy_allows_only_the_upstream_and_dns(name: str, tmp_path: Path) -> None:
    resources = overlay(name)
    spec = one(resources, "NetworkPolicy")["spec"]
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    (ingress,) = spec["ingress"]
    assert "from" not in ingress
    (port,) = ingress["ports"]
    assert container_port(resources, port["port"]) == settings_in(resources, tmp_path).server.port
    upstream, dns = spec["egress"]
    assert upstream["to"] == [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "vllm"}}}]
    assert upstream["ports"] == [{"port": 8000, "protocol": "TCP"}]
    base_url = settings_in(resources, tmp_path).upstream.base_url
    assert base_url == "http://vllm:8000/v1"
    (peer,) = dns["to"]
    assert peer["podSelector"]["matchLabels"] == {"k8s-app": "kube-dns"}
    assert peer["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "kube-system"
    }
    assert sorted((p["port"], p["protocol"]) for p in dns["ports"]) == [(53, "TCP"), (53, "UDP")]


# -- what the overlays change ------------------------------------------------------------


def _hpa(name: str) -> dict[str, Any]:
    spec: dict[str, Any] = one(overlay(name), "HorizontalPodAutoscaler")["spec"]
    return spec


def _cpu(quantity: str) -> float:
    return float(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)


def test_dev_runs_one_replica_with_debug_logs(tmp_path: Path) -> None:
    assert (_hpa("dev")["minReplicas"], _hpa("dev")["maxReplicas"]) == (1, 1)
    assert "replicas" not in one(overlay("dev"), "Deployment")["spec"]  # the HPA owns it
    settings = settings_in(overlay("dev"), tmp_path)
    assert settings.logging.level == "debug"
    assert settings.server.workers == 1
    assert not [r for r in overlay("dev") if r["kind"] == "ServiceMonitor"]


def test_prod_runs_more_bigger_spread_pods(tmp_path: Path) -> None:
    prod, base = overlay("prod"), rendered("base")
    assert _hpa("prod")["minReplicas"] > one(base, "HorizontalPodAutoscaler")["spec"]["minReplicas"]
    assert _hpa("prod")["maxReplicas"] > _hpa("dev")["maxReplicas"]
    for kind in ("requests", "limits"):
        assert _cpu(container(prod)["resources"][kind]["cpu"]) > _cpu(
            container(base)["resources"][kind]["cpu"]
        )
    spread = {c["topologyKey"]: c for c in pod_spec(prod)["topologySpreadConstraints"]}
    assert set(spread) == {"kubernetes.io/hostname", "topology.kubernetes.io/zone"}
    assert spread["topology.kubernetes.io/zone"]["whenUnsatisfiable"] == "ScheduleAnyway"
    settings = settings_in(prod, tmp_path)
    assert settings.server.workers == 2
    assert settings.logging.level == "info"


def test_prod_also_scales_on_active_streams() -> None:
    metrics = {m["type"]: m for m in _hpa("prod")["metrics"]}
    assert metrics["Resource"]["resource"]["name"] == "cpu"
    assert metrics["Pods"]["pods"]["metric"]["name"] == "railproxy_active_streams"
    assert [m["type"] for m in _hpa("dev")["metrics"]] == ["Resource"]


def test_the_dashboard_ships_as_a_configmap_for_the_grafana_sidecar() -> None:
    dashboard = one(overlay("prod"), "ConfigMap", "railproxy-dashboard")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    expected = (K8S.parent / "grafana" / "railproxy.json").read_text()
    assert dashboard["data"] == {"railproxy.json": expected}
