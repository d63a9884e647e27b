"""deploy/k8s/components/monitoring: the dashboard and the alerts read only metrics a running mesh exports,
the dashboard is well formed, the alerts an operator pages on are there, and the component renders into a
PodMonitor per service (each selecting pods that exist, on their `http` port) and the dashboard's ConfigMap.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from collections.abc import Callable, Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from maestro.client import Client, open_client
from maestro.runtime import running_service
from maestro.settings import Settings
from maestro.supervisor import free_port
from proto.v1 import ContextFile, TaskRequest
from services.agents.service import SERVICE as AGENTS
from services.budget.service import SERVICE as BUDGET
from services.guard.service import SERVICE as GUARD
from services.orchestrator.service import SERVICE as ORCHESTRATOR
from tests.deploy.promql import family_of, metric_names
from tests.e2e.conftest import in_state, wait_for_budget

ROOT = Path(__file__).resolve().parents[2]
COMPONENT = ROOT / "deploy" / "k8s" / "components" / "monitoring"
DASHBOARD = COMPONENT / "dashboards" / "maestro.json"
ALERTS = COMPONENT / "alerts.yaml"
PROMETHEUS_OWN = frozenset({"up"})
"""Series Prometheus makes itself for every target, which no service exports."""
PAGED_ON = {
    "MaestroDeadLettersGrowing": "DLQ growth",
    "MaestroConsumerBacklogGrowing": "a consumer's backlog growing",
    "MaestroTenantBudgetAt80Percent": "a tenant at 80% of its budget",
    "MaestroTenantBudgetExhausted": "a tenant at 100% of its budget",
    "MaestroPolicyBundleRefused": "a policy bundle refused",
    "MaestroApprovalsOverdue": "approvals waiting past their time-out (their SLA)",
    "MaestroApprovalsWaitingLong": "approvals waiting longer than the operator's SLA",
    "MaestroTasksStuckRunning": "tasks stuck running past their time-out",
    "MaestroServiceDown": "a service down",
    "MaestroOrchestratorLeaderless": "no orchestrator replica leading (nothing dispatched), or two",
}
AWS = "AKIA" + "Z7Q3RTX5KQWE8PLM"  # not the documented example key, which is allowlisted
TENANT = "acme"


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def panels() -> Iterator[dict[str, Any]]:
    """Every panel that shows data (rows only group them)."""
    for panel in dashboard()["panels"]:
        if panel["type"] != "row":
            yield panel


def rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(ALERTS.read_text())
    assert document["kind"] == "PrometheusRule"
    return [rule for group in document["spec"]["groups"] for rule in group["rules"]]


def queried() -> dict[str, set[str]]:
    """Every metric name the dashboard and the alerts read, with where each is read."""
    where: dict[str, set[str]] = {}
    for panel in panels():
        for target in panel["targets"]:
            for name in metric_names(target["expr"]):
                where.setdefault(name, set()).add(f"panel {panel['title']!r}")
    for variable in dashboard()["templating"]["list"]:
        if variable["type"] == "query":
            # label_values(metric, label): the metric is read, the label is not a metric.
            (metric, _label) = variable["definition"].removeprefix("label_values(").rstrip(")").split(", ")
            where.setdefault(metric, set()).add(f"variable {variable['name']}")
    for rule in rules():
        for name in metric_names(rule["expr"]):
            where.setdefault(name, set()).add(f"alert {rule['alert']}")
    return where


# -- the files themselves ----------------------------------------------------------------------------------


def test_the_dashboard_is_well_formed() -> None:
    board = dashboard()
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert (variables["datasource"]["type"], variables["datasource"]["query"]) == ("datasource", "prometheus")
    assert variables["tenant"]["type"] == "query" and variables["tenant"]["includeAll"]
    for panel in panels():
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"], f"{panel['title']} has no query"
        ref_ids = [t["refId"] for t in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), panel["title"]
        assert all(t["expr"].strip() and t["datasource"] == panel["datasource"] for t in panel["targets"])
        place = panel["gridPos"]
        assert set(place) == {"x", "y", "w", "h"} and place["x"] + place["w"] <= 24, panel["title"]
    # The panels the issue asks for, by what they read.
    read = {name for panel in panels() for t in panel["targets"] for name in metric_names(t["expr"])}
    assert {
        "maestro_tasks_state_total",  # throughput by state
        "maestro_task_seconds_bucket",  # submit -> terminal p50/p99
        "maestro_guard_decisions_total",  # verdicts by rule and tenant
        "maestro_budget_spent_micro_usd",
        "maestro_budget_remaining_micro_usd",
        "maestro_dlq_messages",
        "maestro_consumer_pending_messages",  # lag per consumer (agents-<role>: per role)
        "maestro_approvals_waiting",
        "maestro_approvals_oldest_wait_seconds",
    } <= read
    tenant_panels = [p["title"] for p in panels() if any("$tenant" in t["expr"] for t in p["targets"])]
    assert len(tenant_panels) >= 5, "the tenant variable filters the per-tenant panels"


def test_the_rules_hold_every_alert_an_operator_pages_on_each_saying_what_to_do() -> None:
    by_name = {rule["alert"]: rule for rule in rules()}
    missing = {name: what for name, what in PAGED_ON.items() if name not in by_name}
    assert not missing, f"no alert for {missing}"
    for name, rule in by_name.items():
        assert rule["labels"]["severity"] in ("warning", "critical"), name
        assert {"summary", "description", "runbook"} <= set(rule["annotations"]), name
        assert "`maestro " in rule["annotations"]["runbook"], f"{name} names no command to run"


# -- what a running mesh exports ---------------------------------------------------------------------------


async def test_a_running_mesh_exports_every_metric_the_dashboard_and_alerts_read(settings: Settings) -> None:
    async with AsyncExitStack() as stack:
        ports = await _mesh(settings, stack)
        names, samples = await _scrape_until(ports, _background_reads_caught_up)

    exported = set().union(*names.values())
    unknown = {
        name: sorted(where)
        for name, where in queried().items()
        if name not in PROMETHEUS_OWN and name not in exported and family_of(name) not in exported
    }
    assert not unknown, f"read but never exported: {unknown}"

    # The series the panels split by, after one allowed, one denied and one parked task.
    def has(name: str, **labels: str) -> bool:
        return any(n == name and labels.items() <= sampled.items() for n, sampled, _ in samples)

    for verdict, rule in (("allow", "none"), ("deny", "credentials.aws-access-key"), ("approve", None)):
        wanted = {"verdict": verdict, "tenant": TENANT} | ({"rule": rule} if rule else {})
        assert has("maestro_guard_decisions_total", **wanted), wanted
    assert has("maestro_tasks_state_total", state="succeeded", tenant=TENANT)
    assert has("maestro_tasks_state_total", state="rejected", tenant=TENANT)
    assert has("maestro_task_seconds_bucket", role="planner", state="succeeded")
    assert has("maestro_budget_spent_micro_usd", tenant=TENANT)
    assert has("maestro_approvals_waiting", tenant=TENANT)
    # Each role's tasks waiting for their turn: what KEDA scales the agents on, and the lag panel shows.
    assert has("maestro_consumer_pending_messages", stream="MAESTRO_WAIT", consumer="backlog-planner")


# -- the component, rendered -------------------------------------------------------------------------------


def test_the_component_renders_a_pod_monitor_per_service_and_the_dashboard_config_map() -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed: the component's rendering is not checked here")
    rendered = subprocess.run(
        [kubectl, "kustomize", str(ROOT / "deploy" / "k8s" / "overlays" / "prod")],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    objects = [o for o in yaml.safe_load_all(rendered) if o]
    templates = [o["spec"]["template"] for o in objects if o["kind"] == "Deployment"]
    pods = {t["metadata"]["labels"]["app.kubernetes.io/component"]: t["spec"] for t in templates}
    monitors = {o["metadata"]["name"]: o for o in objects if o["kind"] == "PodMonitor"}
    assert set(monitors) == {f"maestro-{s}" for s in ("guard", "budget", "orchestrator", "agents")}
    scraped: set[str] = set()
    for monitor in monitors.values():
        selector = monitor["spec"]["selector"]
        matched = {c for c in pods if _selects(selector, c)}
        assert matched, f"{monitor['metadata']['name']} selects no pod"
        for component in matched:
            ports = {p["name"] for c in pods[component]["containers"] for p in c.get("ports", [])}
            assert [e["port"] for e in monitor["spec"]["podMetricsEndpoints"]] == ["http"]
            assert "http" in ports, component
        scraped |= matched
    assert scraped == set(pods) - {"nats"}, "every Maestro service is scraped"
    (rule,) = [o for o in objects if o["kind"] == "PrometheusRule"]
    assert rule["metadata"]["namespace"] == "maestro"
    (board,) = [
        o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "maestro-dashboard"
    ]
    assert board["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(board["data"]["maestro.json"]) == dashboard()


def _selects(selector: dict[str, Any], component: str) -> bool:
    labels = {"app.kubernetes.io/name": "maestro", "app.kubernetes.io/component": component}
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        inside = labels.get(expression["key"]) in expression["values"]
        if inside != (expression["operator"] == "In"):
            return False
    return True


# -- the mesh ----------------------------------------------------------------------------------------------

Scraped = list[tuple[str, dict[str, str], float]]


async def _mesh(settings: Settings, stack: AsyncExitStack) -> dict[str, int]:
    """Every service in this process on its own metrics port; one allowed, one denied and one parked task
    run through it. Returns each service's port."""
    settings = settings.with_(backlog_interval_s=0.2)
    ports = {service.name: free_port() for service in (BUDGET, ORCHESTRATOR, AGENTS, GUARD)}
    for service in (BUDGET, ORCHESTRATOR, AGENTS, GUARD):
        await stack.enter_async_context(
            running_service(service, settings.with_(http_port=ports[service.name]))
        )
    client = await stack.enter_async_context(open_client(settings))
    await wait_for_budget(client)
    await _run_tasks(client)
    return ports


async def _run_tasks(client: Client) -> None:
    plain = TaskRequest(
        id="mon-allowed", tenant=TENANT, role="planner", prompt="Plan a CLI that counts words"
    )
    leaky = TaskRequest(
        id="mon-denied",
        tenant=TENANT,
        role="planner",
        prompt="Deploy the app",
        context=[ContextFile(path="deploy/.env", content=f"AWS_ACCESS_KEY_ID={AWS}\n")],
    )
    # No bundle says where the workers run, so data pinned to a region sends the task to a person.
    pinned = TaskRequest(
        id="mon-parked", tenant=TENANT, role="planner", prompt="Plan a CLI", data_region="eu"
    )
    for request in (plain, leaky, pinned):
        await client.submit(request)
    await in_state(client, plain.id, "succeeded")
    await in_state(client, leaky.id, "rejected")
    await in_state(client, pinned.id, "awaiting_approval")


def _background_reads_caught_up(samples: Scraped) -> bool:
    """What the background reads (backlog, parked bucket) export once they caught up with the tasks."""
    present = {(name, labels.get("consumer", labels.get("tenant", ""))) for name, labels, _ in samples}
    return {
        ("maestro_approvals_waiting", TENANT),
        ("maestro_consumer_pending_messages", "guard"),
        ("maestro_consumer_pending_messages", "agents-planner"),
        ("maestro_consumer_pending_messages", "backlog-planner"),
    } <= present


async def _scrape_until(
    ports: dict[str, int], done: Callable[[Scraped], bool], within: float = 10.0
) -> tuple[dict[str, set[str]], Scraped]:
    async with aiohttp.ClientSession() as http, asyncio.timeout(within):
        while True:
            names: dict[str, set[str]] = {}
            samples: Scraped = []
            for service, port in ports.items():
                async with http.get(f"http://127.0.0.1:{port}/metrics") as resp:
                    assert resp.status == 200, service
                    text = await resp.text()
                names[service] = set()
                for family in text_string_to_metric_families(text):
                    names[service] |= _series_names(family.name, family.type)
                    samples.extend((s.name, s.labels, s.value) for s in family.samples)
            if done(samples):
                return names, samples
            await asyncio.sleep(0.1)  # the next scrape, as Prometheus would do it later


def _series_names(family: str, kind: str) -> set[str]:
    """The names a family's series take, whether or not it has any sample yet."""
    match kind:
        case "counter":
            return {family, f"{family}_total"}
        case "histogram":
            return {family, f"{family}_bucket", f"{family}_sum", f"{family}_count"}
        case "info":
            return {family, f"{family}_info"}
        case _:
            return {family}


# -- the alerts' logic, with promtool ----------------------------------------------------------------------

UP = {
    f'up{{job="{job}", pod="{job}-1", app_kubernetes_io_part_of="maestro"}}': "1x30"
    for job in ("orchestrator", "guard", "budget")
}
"""Every service up, so only the alert a case is about fires."""
FRESH = {"maestro_backlog_read_timestamp_seconds": "0+60x30"}
"""Backlog reads on time (promtool's clock starts at 0)."""
# alert: (series -> promtool values, when it must fire, the label sets it fires with, when it must not)
ALERT_CASES: dict[str, tuple[dict[str, str], str, list[dict[str, str]], str]] = {
    "MaestroDeadLettersGrowing": ({"maestro_dlq_messages": "0x15 3x15"}, "20m", [{}], "10m"),
    "MaestroConsumerBacklogGrowing": (
        {'maestro_consumer_pending_messages{stream="MAESTRO_WAIT", consumer="backlog-tester"}': "100+10x30"},
        "20m",
        [{"stream": "MAESTRO_WAIT", "consumer": "backlog-tester"}],
        "10m",
    ),
    "MaestroTasksWaitingLong": (
        {'maestro_dispatch_oldest_wait_seconds{role="tester", priority="5", tenant="acme"}': "0+60x30"},
        "27m",
        [{"role": "tester"}],
        "20m",
    ),
    "MaestroBacklogNotRead": ({"maestro_backlog_read_timestamp_seconds": "0+60x5 300x20"}, "15m", [{}], "5m"),
    "MaestroTenantBudgetAt80Percent": (
        {
            'maestro_budget_spent_micro_usd{tenant="acme", pod="b1"}': "0 50 85 85 100 100",
            'maestro_budget_limit_micro_usd{tenant="acme", pod="b1"}': "100x5",
        },
        "2m",
        [{"tenant": "acme"}],
        "4m",  # at 100% it is the next alert's
    ),
    "MaestroTenantBudgetExhausted": (
        {
            'maestro_budget_spent_micro_usd{tenant="acme", pod="b1"}': "0 50 85 85 100 100",
            'maestro_budget_limit_micro_usd{tenant="acme", pod="b1"}': "100x5",
        },
        "4m",
        [{"tenant": "acme"}],
        "2m",
    ),
    "MaestroPolicyBundleRefused": (
        {'maestro_guard_policy_bundle_updates_total{outcome="refused", pod="g1"}': "0x5 1x25"},
        "10m",
        [{}],
        "4m",
    ),
    "MaestroApprovalsOverdue": ({"maestro_approvals_overdue": "0x5 2x25"}, "12m", [{}], "8m"),
    "MaestroApprovalsWaitingLong": (
        {'maestro_approvals_oldest_wait_seconds{tenant="acme"}': "14000+60x30"},
        "20m",
        [{"tenant": "acme"}],
        "5m",
    ),
    "MaestroTasksStuckRunning": ({"maestro_tasks_running_overdue": "0x5 1x25"}, "12m", [{}], "8m"),
    "MaestroOrchestratorLeaderless": (
        {
            'maestro_orchestrator_leading{pod="o1"}': "1x5 0x25",
            'maestro_orchestrator_leading{pod="o2"}': "0x30",
        },
        "12m",
        [{}],
        "4m",
    ),
    "MaestroServiceDown": (
        {'up{job="guard", pod="guard-1", app_kubernetes_io_part_of="maestro"}': "1x5 0x25"},
        "10m",
        [{"job": "guard", "pod": "guard-1", "app_kubernetes_io_part_of": "maestro"}],
        "6m",
    ),
    "MaestroServiceMissing": (
        # A series that stops is seen for Prometheus' 5 minute look-back: absent from 10m, then 5m pending.
        {'up{job="budget", pod="budget-1", app_kubernetes_io_part_of="maestro"}': "1x5 _x25"},
        "20m",
        [{"job": "budget"}],
        "8m",
    ),
}


def test_each_alert_fires_on_what_it_is_about_and_not_before(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool (Prometheus' rule checker) is not installed: the alerts' logic is not run here")
    assert set(ALERT_CASES) == {rule["alert"] for rule in rules()}, "every alert has a case"
    # Annotations are checked above; promtool would compare them word for word.
    bare = [{k: v for k, v in rule.items() if k != "annotations"} for rule in rules()]
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": [{"name": "maestro", "rules": bare}]}))
    severity = {rule["alert"]: rule["labels"]["severity"] for rule in rules()}
    tests = []
    for alert, (series, fires_at, labels, quiet_at) in ALERT_CASES.items():
        inputs = {**UP, **FRESH, **series}
        expected = [{"exp_labels": {**each, "severity": severity[alert]}} for each in labels]
        tests.append(
            {
                "name": alert,
                "interval": "1m",
                "input_series": [{"series": s, "values": v} for s, v in inputs.items()],
                "alert_rule_test": [
                    {"eval_time": fires_at, "alertname": alert, "exp_alerts": expected},
                    {"eval_time": quiet_at, "alertname": alert, "exp_alerts": []},
                ],
            }
        )
    (tmp_path / "test.yaml").write_text(
        yaml.safe_dump({"rule_files": ["rules.yaml"], "evaluation_interval": "1m", "tests": tests})
    )
    run = subprocess.run(
        [promtool, "test", "rules", "test.yaml"], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stdout + run.stderr


def test_every_dashboard_query_parses(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool (Prometheus' rule checker) is not installed: the queries are not parsed here")
    # Grafana fills in its variables before it sends a query; promtool parses each one as a recording rule.
    filled = {"$__rate_interval": "5m", "$tenant": "acme"}
    recorded = []
    for panel in panels():
        for target in panel["targets"]:
            expr = target["expr"]
            for variable, value in filled.items():
                expr = expr.replace(variable, value)
            recorded.append({"record": f"panel_{panel['id']}_{target['refId']}", "expr": expr})
    (tmp_path / "queries.yaml").write_text(
        yaml.safe_dump({"groups": [{"name": "panels", "rules": recorded}]})
    )
    run = subprocess.run(
        [promtool, "check", "rules", "queries.yaml"], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stdout + run.stderr
