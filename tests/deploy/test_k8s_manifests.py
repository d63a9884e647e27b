"""deploy/k8s as Kubernetes and Maestro will read it: each overlay rendered once with `kubectl kustomize`,
every object validated offline against Kubernetes' own schemas (kubernetes-validate, a pinned version), and
what the schemas cannot say checked here: hardened pods with probes and limits, grace periods that cover
the drain, settings Maestro accepts, every role served once, KEDA's triggers on consumers Maestro makes,
replicas 3 in prod, and the image the Dockerfile builds."""

from __future__ import annotations

import functools
import importlib.util
import re
import shutil
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from maestro import drain, topics, topology
from maestro.access import nats_config
from maestro.policy import bundle
from maestro.settings import Settings
from proto.v1 import ROLES

ROOT = Path(__file__).parents[2]
K8S = ROOT / "deploy" / "k8s"
KUBERNETES_VERSION = "1.32.0"
"""The Kubernetes whose schemas every object must satisfy (strict: no field it does not know)."""
KUBECTL = shutil.which("kubectl")
OVERLAYS = ("dev", "prod")
CUSTOM_KINDS = {
    ("keda.sh/v1alpha1", "ScaledObject"): "checked below (test_keda_scales_on_consumers_maestro_makes)",
    ("monitoring.coreos.com/v1", "PodMonitor"): "tests/deploy/test_monitoring*.py",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "tests/deploy/test_monitoring*.py",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "tests/deploy/test_monitoring*.py",
}
"""Kinds Kubernetes' schemas do not hold (custom resources), and where they are checked instead."""
WORKLOADS = ("Deployment", "StatefulSet", "Job")

Objects = list[dict[str, Any]]


def render(overlay: str) -> Objects:
    """`kubectl kustomize` of an overlay: its objects (rendered once per test session)."""
    if KUBECTL is None:
        pytest.skip(
            "kubectl is not installed: the overlays cannot be rendered (install kubectl to run these)"
        )
    done = _kustomized(overlay)
    assert done.returncode == 0, f"overlays/{overlay} does not render: {done.stderr}"
    return [o for o in yaml.safe_load_all(done.stdout) if o]


@functools.cache
def _kustomized(overlay: str) -> subprocess.CompletedProcess[str]:
    assert KUBECTL is not None
    return subprocess.run(
        [KUBECTL, "kustomize", str(K8S / "overlays" / overlay)], capture_output=True, text=True, check=False
    )


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request: pytest.FixtureRequest) -> tuple[str, Objects]:
    """Each overlay's objects, rendered once for the module."""
    return request.param, render(request.param)


@pytest.fixture(scope="module")
def prod() -> Objects:
    return render("prod")


@pytest.fixture(scope="module")
def dev() -> Objects:
    return render("dev")


def of_kind(objects: Objects, kind: str) -> Objects:
    return [o for o in objects if o["kind"] == kind]


def named(objects: Objects, kind: str, name: str) -> dict[str, Any]:
    (found,) = [o for o in of_kind(objects, kind) if o["metadata"]["name"] == name]
    return found


def pods(objects: Objects) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(workload, pod spec) of every Deployment, StatefulSet and Job."""
    for o in objects:
        if o["kind"] in WORKLOADS:
            yield o, o["spec"]["template"]["spec"]


MAESTRO_IMAGE = re.compile(r"(^|/)maestro:")


def maestro_pods(objects: Objects) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """The pods running the Maestro image (not NATS): the five services and the policy Job."""
    found = [(w, s) for w, s in pods(objects) if MAESTRO_IMAGE.search(s["containers"][0]["image"])]
    assert len(found) == 6, [w["metadata"]["name"] for w, _ in found]
    yield from found


def settings_map(objects: Objects) -> dict[str, str]:
    (config,) = [
        o for o in of_kind(objects, "ConfigMap") if o["metadata"]["name"].startswith("maestro-settings")
    ]
    return dict(config["data"])


def environ(objects: Objects, container: dict[str, Any]) -> dict[str, str]:
    """The MAESTRO_* environment a container starts with: the settings ConfigMap, then its own env."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        assert source["configMapRef"]["name"].startswith("maestro-settings")
        env |= settings_map(objects)
    env |= {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}
    return env


def test_every_object_validates_against_the_kubernetes_schemas(rendered: tuple[str, Objects]) -> None:
    overlay, objects = rendered
    validated = set()
    for o in objects:
        key = (o["apiVersion"], o["kind"])
        if key in CUSTOM_KINDS:
            continue
        try:
            kubernetes_validate.validate(o, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            pytest.fail(f"overlays/{overlay}: {key}: no Kubernetes schema, and not in CUSTOM_KINDS")
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(
                f"overlays/{overlay}: {o['kind']} {o['metadata']['name']}: {exc.message} at {exc.path}"
            )
        validated.add(o["kind"])
    # Nothing slips through as "unknown": every built-in kind was validated, and there are many.
    assert {
        "Deployment",
        "StatefulSet",
        "Service",
        "ConfigMap",
        "PodDisruptionBudget",
        "NetworkPolicy",
    } <= validated


def test_an_unknown_kind_or_field_is_refused_by_the_validation() -> None:
    """The validation can fail: a misspelt field and a kind Kubernetes does not have are refused."""
    bad = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"}, "spec": {"prots": []}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, KUBERNETES_VERSION, strict=True)
    unknown = {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "metadata": {"name": "x"}}
    with pytest.raises(kubernetes_validate.SchemaNotFoundError):
        kubernetes_validate.validate(unknown, KUBERNETES_VERSION, strict=True)


def test_every_container_is_hardened_limited_and_probed(rendered: tuple[str, Objects]) -> None:
    overlay, objects = rendered
    workloads = list(pods(objects))
    assert len(workloads) >= 7
    for workload, spec in workloads:
        where = f"overlays/{overlay}: {workload['kind']} {workload['metadata']['name']}"
        assert spec.get("automountServiceAccountToken") is False, where
        pod = spec.get("securityContext", {})
        for container in spec["containers"]:
            context = container.get("securityContext", {})
            assert pod.get("runAsNonRoot") or context.get("runAsNonRoot"), where
            assert (pod.get("runAsUser") or context.get("runAsUser") or 0) > 0, where
            assert context.get("readOnlyRootFilesystem") is True, where
            assert context.get("allowPrivilegeEscalation") is False, where
            assert context.get("capabilities", {}).get("drop") == ["ALL"], where
            assert not context.get("capabilities", {}).get("add"), where
            seccomp = context.get("seccompProfile") or pod.get("seccompProfile")
            assert seccomp == {"type": "RuntimeDefault"}, where
            assert set(container["resources"]["requests"]) == {"cpu", "memory"}, where
            assert set(container["resources"]["limits"]) == {"cpu", "memory"}, where
            if workload["kind"] == "Job":
                continue  # a Job runs to its end: nothing to probe
            assert container["readinessProbe"]["httpGet"]["path"].startswith(("/readyz", "/healthz")), where
            assert container["livenessProbe"]["httpGet"]["path"].startswith("/healthz"), where


def test_maestros_services_are_probed_on_their_own_endpoints_on_the_port_named_http(
    rendered: tuple[str, Objects],
) -> None:
    _, objects = rendered
    for workload, spec in maestro_pods(objects):
        if workload["kind"] == "Job":
            continue
        (container,) = spec["containers"]
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
        (port,) = container["ports"]
        assert port["name"] == "http"
        assert environ(objects, container)["MAESTRO_HTTP_PORT"] == str(port["containerPort"])
        assert environ(objects, container)["MAESTRO_HTTP_HOST"] == "0.0.0.0"  # not loopback: probes reach it
        # A read-only root: /tmp is the one place written (the agents' task workspaces).
        tmp = [m for m in container["volumeMounts"] if m["mountPath"] == "/tmp"]
        volumes = {v["name"]: v for v in spec["volumes"]}
        assert len(tmp) == 1 and "emptyDir" in volumes[tmp[0]["name"]], workload["metadata"]["name"]


def test_each_service_starts_with_settings_maestro_accepts(rendered: tuple[str, Objects]) -> None:
    _, objects = rendered
    for _workload, spec in maestro_pods(objects):
        (container,) = spec["containers"]
        command = container["command"]
        if command[:2] == ["python", "-m"]:
            assert importlib.util.find_spec(command[2]) is not None, command
        Settings.from_env(environ(objects, container))  # raises SettingsError naming a bad value


def test_the_grace_period_covers_the_drain(rendered: tuple[str, Objects]) -> None:
    """A pod gets at least the drain `maestro up` gives a service (the ack wait for in-flight work, then
    the NATS drain) before it is killed, so its tasks end or go back whole."""
    _, objects = rendered
    for workload, spec in maestro_pods(objects):
        if workload["kind"] == "Job":
            continue
        (container,) = spec["containers"]
        settings = Settings.from_env(environ(objects, container))
        assert spec["terminationGracePeriodSeconds"] >= drain.default_drain_s(settings) + 5, workload


def test_every_role_is_served_by_exactly_one_agents_deployment(rendered: tuple[str, Objects]) -> None:
    _, objects = rendered
    served: list[str] = []
    for workload, spec in maestro_pods(objects):
        (container,) = spec["containers"]
        if container["command"] == ["python", "-m", "services.agents"]:
            roles = environ(objects, container)["MAESTRO_ROLES"].split(",")
            served += roles
            component = workload["metadata"]["labels"]["app.kubernetes.io/component"]
            assert component.startswith("agents-"), component
            if "tester" in roles:
                assert environ(objects, container).get("MAESTRO_SANDBOX") == "none"  # agents-tester.yaml
    assert sorted(served) == sorted(ROLES)


def test_every_object_is_labelled_and_every_workload_has_a_disruption_budget(
    rendered: tuple[str, Objects],
) -> None:
    _, objects = rendered
    for o in objects:
        labels = o["metadata"].get("labels", {})
        assert labels.get("app.kubernetes.io/name") == "maestro", o["metadata"]["name"]
        assert labels.get("app.kubernetes.io/part-of") == "maestro", o["metadata"]["name"]
    budgets = [b["spec"]["selector"]["matchLabels"] for b in of_kind(objects, "PodDisruptionBudget")]
    for workload in of_kind(objects, "Deployment") + of_kind(objects, "StatefulSet"):
        labels = workload["spec"]["template"]["metadata"]["labels"]
        component = workload["metadata"]["labels"]["app.kubernetes.io/component"]
        assert labels["app.kubernetes.io/component"] == component
        assert workload["spec"]["selector"]["matchLabels"].items() <= labels.items()
        assert sum(b.items() <= labels.items() for b in budgets) == 1, workload["metadata"]["name"]
    # The API: the orchestrator's Service on 8080, to the port named http.
    api = named(objects, "Service", "maestro-orchestrator")
    assert api["spec"]["ports"] == [{"name": "http", "port": 8080, "targetPort": "http"}]
    orchestrator = named(objects, "Deployment", "maestro-orchestrator")
    assert api["spec"]["selector"].items() <= orchestrator["spec"]["template"]["metadata"]["labels"].items()


def test_the_policy_bundle_shipped_to_the_guards_is_valid() -> None:
    assert bundle.parse((K8S / "base" / "policy.yaml").read_text()).version


def _nats_routes(objects: Objects) -> list[str]:
    (config,) = [
        o for o in of_kind(objects, "ConfigMap") if o["metadata"]["name"].startswith("maestro-nats-config")
    ]
    return re.findall(r"nats://(\S+):6222", config["data"]["cluster.conf"])


def test_prod_runs_three_nats_nodes_and_every_stream_at_three_replicas(prod: Objects) -> None:
    nats = named(prod, "StatefulSet", "maestro-nats")
    assert nats["spec"]["replicas"] == 3
    headless = nats["spec"]["serviceName"]
    assert _nats_routes(prod) == [f"maestro-nats-{n}.{headless}" for n in range(3)]
    assert named(prod, "Service", headless)["spec"]["clusterIP"] == "None"
    assert settings_map(prod)["MAESTRO_STREAM_REPLICAS"] == "3"
    for _, spec in maestro_pods(prod):
        settings = Settings.from_env(environ(prod, spec["containers"][0]))
        assert settings.stream_replicas == 3
        made = topology.topology(settings)
        assert {s.num_replicas for s in made.streams} == {3}
        assert {b.replicas for b in made.buckets} == {3} and {s.replicas for s in made.stores} == {3}
    assert named(prod, "Deployment", "maestro-guard")["spec"]["replicas"] > 1
    # A second orchestrator stands by to take the lead over (services/orchestrator/lease.py).
    assert named(prod, "Deployment", "maestro-orchestrator")["spec"]["replicas"] == 2


def test_dev_runs_one_nats_node_without_routes_and_one_of_everything(dev: Objects) -> None:
    assert named(dev, "StatefulSet", "maestro-nats")["spec"]["replicas"] == 1
    assert _nats_routes(dev) == []
    assert settings_map(dev)["MAESTRO_STREAM_REPLICAS"] == "1"
    assert {d["spec"]["replicas"] for d in of_kind(dev, "Deployment")} == {1}
    assert of_kind(dev, "ScaledObject") == []


def test_keda_scales_on_consumers_maestro_makes(prod: Objects) -> None:
    """The ScaledObjects, which no schema checks: each scales a Deployment of the render, on the trigger
    metadata KEDA's nats-jetstream scaler requires, against the NATS Service's monitoring port in the
    account `maestro nats-config` makes, on a consumer Maestro really creates."""
    made = {
        (topics.STREAM_REQUESTS, topics.DURABLE_GUARD),
        (topics.STREAM_EVENTS, topics.DURABLE_ORCHESTRATOR),
        *((topics.STREAM_TASKS, topics.agents_durable(r)) for r in ROLES),
        *((topics.STREAM_WAITING, str(c.durable_name)) for c in topology.backlog_consumers()),
    }
    nats = named(prod, "Service", "maestro-nats")
    monitor = next(p["port"] for p in nats["spec"]["ports"] if p["name"] == "monitor")
    endpoint = f"maestro-nats.{nats['metadata']['namespace']}.svc.cluster.local:{monitor}"
    scaled = of_kind(prod, "ScaledObject")
    assert {s["spec"]["scaleTargetRef"]["name"] for s in scaled} == {
        "maestro-guard",
        "maestro-orchestrator",
        "maestro-agents-models",
        "maestro-agents-tester",
    }
    for so in scaled:
        target = named(prod, "Deployment", so["spec"]["scaleTargetRef"]["name"])
        (container,) = target["spec"]["template"]["spec"]["containers"]
        roles = environ(prod, container).get("MAESTRO_ROLES", "").split(",")
        assert 1 <= so["spec"]["minReplicaCount"] <= so["spec"]["maxReplicaCount"]
        for trigger in so["spec"]["triggers"]:
            meta = trigger["metadata"]
            assert trigger["type"] == "nats-jetstream"
            assert meta["natsServerMonitoringEndpoint"] == endpoint
            assert meta["account"] == nats_config.MAESTRO_ACCOUNT
            assert (meta["stream"], meta["consumer"]) in made, meta
            assert int(meta["lagThreshold"]) >= 1
            if target["metadata"]["name"].startswith("maestro-agents"):
                assert meta["consumer"].split("-", 1)[1] in roles  # its own roles' backlog only
        if target["metadata"]["name"].startswith("maestro-agents"):
            consumers = {t["metadata"]["consumer"] for t in so["spec"]["triggers"]}
            assert consumers == {f"backlog-{r}" for r in roles} | {f"agents-{r}" for r in roles}
            slots = environ(prod, container)["MAESTRO_CONCURRENCY"]
            assert {t["metadata"]["lagThreshold"] for t in so["spec"]["triggers"]} == {slots}


def _pyproject_version() -> str:
    return str(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"])


def test_the_manifests_run_the_image_the_dockerfile_builds(rendered: tuple[str, Objects]) -> None:
    _, objects = rendered
    dockerfile = (ROOT / "Dockerfile").read_text()
    stages = dockerfile.split("\nFROM ")
    final = stages[-1]
    assert final.startswith("python:3.11-slim")
    user = re.findall(r"^USER (\d+)(?::(\d+))?$", final, re.MULTILINE)
    assert user == [("10001", "10001")]
    assert "pip wheel" in stages[-2] and "pip wheel" not in final  # built in the first stage only
    assert not re.search(r"apt-get|gcc|build-essential", final)  # no build tools where it runs
    tag = f"maestro:{_pyproject_version()}"
    assert f"docker build -t {tag} ." in dockerfile
    images = set()
    for _, spec in maestro_pods(objects):
        (container,) = spec["containers"]
        images.add(container["image"])
        assert spec["securityContext"]["runAsUser"] == int(user[0][0])
    assert len(images) == 1 and images.pop().endswith(tag)


def test_the_readme_walks_through_every_secret_the_pods_mount(prod: Objects) -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("### Running it on Kubernetes") :]
    section = section[: section.index("\n### ", 1)]
    assert "kubectl apply -k deploy/k8s/overlays/prod" in section
    mounted = {
        v["secret"]["secretName"] for _, spec in pods(prod) for v in spec.get("volumes", []) if "secret" in v
    }
    assert len(mounted) == 8
    created = set(re.findall(r"create secret generic (maestro-[\w$-]+)", section))
    per_principal = {f"maestro-nats-{p}" for p in ("admin", "guard", "budget", "orchestrator", "agents")}
    if "maestro-nats-$p" in created:  # the README's loop over the principals
        created = (created - {"maestro-nats-$p"}) | per_principal
    assert mounted <= created, f"secrets the README does not create: {mounted - created}"
