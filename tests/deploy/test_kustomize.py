"""Kustomize manifests: every overlay renders, passes the Kubernetes schemas, and keeps the
promises the code relies on (grace period, per-pod health key, probes, KEDA on ready backlog,
Prometheus Operator scrape targets, workload identity in prod)."""

from __future__ import annotations

import copy
from typing import Any

import jsonschema  # type: ignore[import-untyped]  # no stubs installed
import pytest
from kubernetes_validate import utils as kv

from producer.api.settings import ApiSettings
from tests.deploy.support import (
    ALL_SETTINGS,
    CRD_SCHEMAS,
    KUBERNETES_VERSION,
    OVERLAYS,
    Doc,
    console_scripts,
    find,
    load_json,
    one,
    settings_env_names,
)
from worker.metrics import METRICS
from worker.settings import AzureMLConfig, WorkerSettings

CRD_GROUPS = ("keda.sh/", "monitoring.coreos.com/")
DEPLOYMENTS = {
    "base": {"retrainq-api", "retrainq-worker"},
    "overlays/dev": {"retrainq-api", "retrainq-worker", "retrainq-emulator", "redis", "azurite"},
    "overlays/prod": {"retrainq-api", "retrainq-worker"},
}


def kubernetes_errors(doc: Doc) -> str | None:
    """Why ``doc`` fails strict validation against the Kubernetes schemas (None: it passes)."""
    try:
        kv.validate(doc, KUBERNETES_VERSION, strict=True)
    except kv.ValidationError as exc:
        return f"{doc['kind']}/{doc['metadata']['name']} at {exc.json_path}: {exc.message}"
    return None


def custom_resource_errors(doc: Doc) -> list[str]:
    """Violations of the project schema of the document's kind (deploy/schemas/)."""
    assert doc["kind"] in CRD_SCHEMAS, f"no schema for custom resource {doc['kind']}"
    validator = jsonschema.Draft202012Validator(load_json(CRD_SCHEMAS[doc["kind"]]))
    return [f"{e.json_path}: {e.message}" for e in validator.iter_errors(doc)]


def config_value(docs: list[Doc], key: str, default: Any) -> str:
    """A setting from the rendered ConfigMap, or the settings class default."""
    data = one(docs, "ConfigMap", "retrainq-config")["data"]
    return str(data.get(key, default))


def container(deployment: Doc) -> dict[str, Any]:
    """The single container of a Deployment's pod template."""
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    result: dict[str, Any] = containers[0]
    return result


def port_number(cont: dict[str, Any], port: int | str) -> int:
    """A probe's port as a number (named ports resolved against the container)."""
    if isinstance(port, int):
        return port
    named = {p["name"]: p["containerPort"] for p in cont.get("ports", [])}
    assert port in named, f"probe port {port!r} is not a container port"
    return int(named[port])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders_the_expected_resources(
    rendered: dict[str, list[Doc]], overlay: str
) -> None:
    """Each overlay renders its Deployments, both PDBs, the ConfigMap and the NetworkPolicies."""
    docs = rendered[overlay]
    assert {d["metadata"]["name"] for d in find(docs, "Deployment")} == DEPLOYMENTS[overlay]
    assert {d["metadata"]["name"] for d in find(docs, "PodDisruptionBudget")} == {
        "retrainq-api",
        "retrainq-worker",
    }
    one(docs, "Service", "retrainq-api")
    one(docs, "ConfigMap", "retrainq-config")
    assert {"retrainq-api", "retrainq-worker", "retrainq-redis"} <= {
        d["metadata"]["name"] for d in find(docs, "NetworkPolicy")
    }
    if overlay != "base":
        assert all(d["metadata"].get("namespace") for d in docs), "overlays set a namespace"
    else:
        assert not any(d["metadata"].get("namespace") for d in docs), "base is namespace-agnostic"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_builtin_resource_passes_strict_kubernetes_schemas(
    rendered: dict[str, list[Doc]], overlay: str
) -> None:
    """kubernetes-validate --strict passes on every non-CRD document (unknown fields fail)."""
    builtin = [d for d in rendered[overlay] if not d["apiVersion"].startswith(CRD_GROUPS)]
    assert builtin
    errors = [e for e in map(kubernetes_errors, builtin) if e]
    assert not errors, "\n".join(errors)


@pytest.mark.parametrize("overlay", ["base", "overlays/prod"])
def test_custom_resources_match_the_project_schemas(
    rendered: dict[str, list[Doc]], overlay: str
) -> None:
    """The KEDA ScaledObject, the two PodMonitors and the PrometheusRule validate against
    deploy/schemas/."""
    crds = [d for d in rendered[overlay] if d["apiVersion"].startswith(CRD_GROUPS)]
    kinds = ["PodMonitor", "PodMonitor", "PrometheusRule", "ScaledObject"]
    assert sorted(d["kind"] for d in crds) == kinds
    errors = [
        f"{d['kind']}/{d['metadata']['name']} {e}" for d in crds for e in custom_resource_errors(d)
    ]
    assert errors == []


def test_validators_reject_broken_documents(rendered: dict[str, list[Doc]]) -> None:
    """The checks have teeth: a typo'd Deployment field, a numeric KEDA threshold, a redis
    trigger, a typo'd PodMonitor endpoint field and a port number instead of a name fail."""
    worker = copy.deepcopy(one(rendered["base"], "Deployment", "retrainq-worker"))
    worker["spec"]["template"]["spec"]["terminationGracePeriod"] = 60
    assert kubernetes_errors(worker) is not None
    scaled = copy.deepcopy(one(rendered["base"], "ScaledObject", "retrainq-worker"))
    scaled["spec"]["triggers"][0]["metadata"]["threshold"] = 200
    assert custom_resource_errors(scaled)
    scaled = copy.deepcopy(one(rendered["base"], "ScaledObject", "retrainq-worker"))
    scaled["spec"]["triggers"][0]["type"] = "redis"
    assert custom_resource_errors(scaled)
    monitor = copy.deepcopy(one(rendered["base"], "PodMonitor", "retrainq-worker"))
    monitor["spec"]["podMetricsEndpoints"][0]["intervall"] = "15s"
    assert custom_resource_errors(monitor)
    monitor = copy.deepcopy(one(rendered["base"], "PodMonitor", "retrainq-worker"))
    monitor["spec"]["podMetricsEndpoints"][0]["port"] = 9100
    assert custom_resource_errors(monitor)


@pytest.mark.parametrize("overlay", ["base", "overlays/prod"])
def test_pod_monitors_scrape_each_metrics_port(
    rendered: dict[str, list[Doc]], overlay: str
) -> None:
    """The Prometheus Operator scrapes /metrics of the worker pods on RETRAINQ_HEALTH_PORT (the
    KEDA trigger's gauge) and of the API pods on RETRAINQ_METRICS_PORT, by container port
    name (never the API port)."""
    docs = rendered[overlay]
    ports = {
        "retrainq-worker": config_value(
            docs, "RETRAINQ_HEALTH_PORT", WorkerSettings.model_fields["health_port"].default
        ),
        "retrainq-api": config_value(
            docs, "RETRAINQ_METRICS_PORT", ApiSettings.model_fields["metrics_port"].default
        ),
    }
    for name, port in ports.items():
        monitor = one(docs, "PodMonitor", name)
        selector = monitor["spec"]["selector"]["matchLabels"]
        pods = [
            d
            for d in find(docs, "Deployment")
            if selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert [d["metadata"]["name"] for d in pods] == [name]
        assert monitor["metadata"].get("namespace") == pods[0]["metadata"].get("namespace")
        endpoints = monitor["spec"]["podMetricsEndpoints"]
        assert [e.get("path", "/metrics") for e in endpoints] == ["/metrics"]
        assert port_number(container(pods[0]), endpoints[0]["port"]) == int(port)


def test_prod_workers_get_arm_tokens_from_workload_identity(
    rendered: dict[str, list[Doc]],
) -> None:
    """prod: ARM_AUTH is azure_identity, and the worker pods carry the workload identity label
    and run as a ServiceAccount annotated with a client id; base and dev keep the default
    ServiceAccount and the static token (the emulator accepts it)."""
    docs = rendered["overlays/prod"]
    auth = config_value(docs, "RETRAINQ_AZUREML__ARM_AUTH", "static")
    assert AzureMLConfig(arm_auth=auth).arm_auth == "azure_identity"
    worker = one(docs, "Deployment", "retrainq-worker")
    template = worker["spec"]["template"]
    assert template["metadata"]["labels"]["azure.workload.identity/use"] == "true"
    account = one(docs, "ServiceAccount", template["spec"]["serviceAccountName"])
    assert account["metadata"]["annotations"]["azure.workload.identity/client-id"]
    assert account["metadata"]["namespace"] == worker["metadata"]["namespace"]
    for overlay in ("base", "overlays/dev"):
        other = rendered[overlay]
        pod = one(other, "Deployment", "retrainq-worker")["spec"]["template"]["spec"]
        assert "serviceAccountName" not in pod, overlay
        assert config_value(other, "RETRAINQ_AZUREML__ARM_AUTH", "static") == "static", overlay


@pytest.mark.parametrize("overlay", ["base", "overlays/prod"])
def test_keda_scales_the_worker_on_the_ready_backlog(
    rendered: dict[str, list[Doc]], overlay: str
) -> None:
    """The ScaledObject targets the worker Deployment, reads retrainq_backlog{kind="ready"} and
    never scales to zero (workers run the reconciler and export the gauge themselves)."""
    docs = rendered[overlay]
    scaled = one(docs, "ScaledObject", "retrainq-worker")
    target = scaled["spec"]["scaleTargetRef"]
    assert target.get("kind", "Deployment") == "Deployment"
    worker = one(docs, "Deployment", target["name"])
    assert "replicas" not in worker["spec"], "KEDA owns the worker replica count"
    trigger = scaled["spec"]["triggers"][0]
    backlog = next(iter(METRICS.backlog.describe())).name
    query = trigger["metadata"]["query"]
    assert f"{backlog}{{" in query
    assert 'kind="ready"' in query
    assert scaled["spec"]["minReplicaCount"] >= 1
    assert scaled["spec"]["maxReplicaCount"] > scaled["spec"]["minReplicaCount"]


def test_dev_runs_without_keda_and_prod_ships_no_secret(rendered: dict[str, list[Doc]]) -> None:
    """dev has one worker and no ScaledObject or PodMonitor; prod never applies the placeholder
    Secret and dev's Secret carries no placeholder."""
    dev, prod = rendered["overlays/dev"], rendered["overlays/prod"]
    assert find(dev, "ScaledObject") == []
    assert find(dev, "PodMonitor") == [], "dev has no Prometheus Operator"
    assert one(dev, "Deployment", "retrainq-worker")["spec"]["replicas"] == 1
    assert one(dev, "Deployment", "retrainq-api")["spec"]["replicas"] == 1
    assert find(prod, "Secret") == []
    assert one(prod, "Deployment", "retrainq-api")["spec"]["replicas"] >= 2
    dev_secret = one(dev, "Secret", "retrainq-secrets")["stringData"]
    assert not [k for k, v in dev_secret.items() if "REPLACE" in v]
    base_secret = one(rendered["base"], "Secret", "retrainq-secrets")["stringData"]
    assert all("REPLACE" in v for v in base_secret.values()), "the example holds placeholders"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_worker_grace_period_lets_running_steps_finish(
    rendered: dict[str, list[Doc]], overlay: str
) -> None:
    """terminationGracePeriodSeconds >= job_completion_wait (the job timeout) + 30 s."""
    docs = rendered[overlay]
    default = WorkerSettings.model_fields["job_timeout_seconds"].default
    timeout = int(config_value(docs, "RETRAINQ_JOB_TIMEOUT_SECONDS", default))
    pod = one(docs, "Deployment", "retrainq-worker")["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] >= timeout + 30


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_worker_pod_name_probes_and_resources(rendered: dict[str, list[Doc]], overlay: str) -> None:
    """Each worker gets its pod name (its health key) from the downward API, probes hit
    /healthz on RETRAINQ_HEALTH_PORT, and memory is bounded."""
    docs = rendered[overlay]
    worker = container(one(docs, "Deployment", "retrainq-worker"))
    env = {e["name"]: e for e in worker.get("env", [])}
    assert env["RETRAINQ_POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    health_port = int(
        config_value(
            docs, "RETRAINQ_HEALTH_PORT", WorkerSettings.model_fields["health_port"].default
        )
    )
    for probe in ("livenessProbe", "readinessProbe"):
        get = worker[probe]["httpGet"]
        assert get["path"] == "/healthz"
        assert port_number(worker, get["port"]) == health_port
    assert worker["resources"]["requests"]["memory"]
    assert worker["resources"]["limits"]["memory"]
    assert worker["command"] == ["retrainq-worker"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_api_serves_its_port_with_health_and_readiness(
    rendered: dict[str, list[Doc]], overlay: str
) -> None:
    """API probes: liveness /healthz, readiness /readyz, on RETRAINQ_PORT bound to 0.0.0.0."""
    docs = rendered[overlay]
    api = container(one(docs, "Deployment", "retrainq-api"))
    port = int(config_value(docs, "RETRAINQ_PORT", ApiSettings.model_fields["port"].default))
    assert config_value(docs, "RETRAINQ_HOST", "127.0.0.1") == "0.0.0.0"
    assert port_number(api, api["livenessProbe"]["httpGet"]["port"]) == port
    assert api["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert api["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert port_number(api, api["readinessProbe"]["httpGet"]["port"]) == port


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pod_security(rendered: dict[str, list[Doc]], overlay: str) -> None:
    """Every pod runs as non-root with RuntimeDefault seccomp, a read-only root filesystem,
    no privilege escalation and all capabilities dropped."""
    for deployment in find(rendered[overlay], "Deployment"):
        name = deployment["metadata"]["name"]
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", name
        assert pod.get("automountServiceAccountToken") is False, name
        for cont in pod["containers"]:
            ctx = cont["securityContext"]
            assert ctx["readOnlyRootFilesystem"] is True, name
            assert ctx["allowPrivilegeEscalation"] is False, name
            assert ctx["capabilities"]["drop"] == ["ALL"], name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_disruption_budgets(rendered: dict[str, list[Doc]], overlay: str) -> None:
    """PDBs select their Deployment's pods; the worker's allows one eviction at a time and
    always lets unhealthy pods go."""
    docs = rendered[overlay]
    for name in ("retrainq-api", "retrainq-worker"):
        pdb = one(docs, "PodDisruptionBudget", name)["spec"]
        labels = one(docs, "Deployment", name)["spec"]["template"]["metadata"]["labels"]
        assert pdb["selector"]["matchLabels"].items() <= labels.items()
    worker = one(docs, "PodDisruptionBudget", "retrainq-worker")["spec"]
    assert worker["maxUnavailable"] == 1
    assert worker["unhealthyPodEvictionPolicy"] == "AlwaysAllow"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_services_select_existing_pods_and_ports(
    rendered: dict[str, list[Doc]], overlay: str
) -> None:
    """Every Service selects a Deployment's pods and targets a port its container declares."""
    docs = rendered[overlay]
    for service in find(docs, "Service"):
        selector = service["spec"]["selector"]
        matches = [
            d
            for d in find(docs, "Deployment")
            if selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert len(matches) == 1, service["metadata"]["name"]
        declared = {p["name"] for p in container(matches[0]).get("ports", [])}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in declared, service["metadata"]["name"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_policies(rendered: dict[str, list[Doc]], overlay: str) -> None:
    """API ingress only on its port; workers egress to Redis, HTTPS and DNS; Redis only from
    the API and the workers."""
    docs = rendered[overlay]

    def ports(rules: list[dict[str, Any]]) -> set[int]:
        return {p["port"] for rule in rules for p in rule.get("ports", [])}

    api = one(docs, "NetworkPolicy", "retrainq-api")["spec"]
    assert ports(api["ingress"]) == {
        int(config_value(docs, "RETRAINQ_PORT", 8080)),
        int(config_value(docs, "RETRAINQ_METRICS_PORT", 9102)),
    }
    worker = one(docs, "NetworkPolicy", "retrainq-worker")["spec"]
    assert {6379, 443, 53} <= ports(worker["egress"])
    assert "Egress" in worker["policyTypes"]
    redis = one(docs, "NetworkPolicy", "retrainq-redis")["spec"]
    sources = {
        peer["podSelector"]["matchLabels"]["app.kubernetes.io/name"]
        for rule in redis["ingress"]
        for peer in rule["from"]
    }
    assert sources == {"retrainq-api", "retrainq-worker"}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_settings_and_commands_exist_in_the_code(
    rendered: dict[str, list[Doc]], overlay: str
) -> None:
    """Every RETRAINQ_ variable in ConfigMaps, Secrets and container env is a real setting, and
    every command of the retrainq image is a console script (a typo would be ignored silently)."""
    docs = rendered[overlay]
    known = settings_env_names(*ALL_SETTINGS)
    names: set[str] = set()
    for doc in find(docs, "ConfigMap") + find(docs, "Secret"):
        names |= set(doc.get("data", {})) | set(doc.get("stringData", {}))
    scripts = console_scripts()
    for deployment in find(docs, "Deployment"):
        cont = container(deployment)
        names |= {e["name"] for e in cont.get("env", [])}
        if "retrainq" in cont["image"].rsplit("/", 1)[-1]:
            assert cont["command"][0] in scripts, deployment["metadata"]["name"]
    unknown = sorted(n for n in names if n.startswith("RETRAINQ_") and n not in known)
    assert unknown == []
