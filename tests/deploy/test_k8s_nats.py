"""The NATS configuration shipped in deploy/k8s/nats, run for real: three local nats-servers from its very
files (only the pods' addresses and paths swapped for local ones), with `maestro nats-config`'s accounts
included as the StatefulSet mounts them. Maestro provisions on it at MAESTRO_STREAM_REPLICAS=3 (every
stream, bucket and the object store, also when they were made at one replica first, and their consumers
with them), and the monitoring endpoint shows KEDA the backlog consumers it scales on."""

from __future__ import annotations

import asyncio
import json
import subprocess
import urllib.request
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from maestro import codec, topics, topology
from maestro.access import nats_config
from maestro.bus import Bus
from maestro.embedded import dies_with_caller, nats_server_binary
from maestro.runtime import open_bus
from maestro.settings import Settings
from maestro.supervisor import free_port
from proto.v1 import Decision, TaskAssignment, TaskRequest
from tests.maestro.test_presence import eventually

NATS_DIR = Path(__file__).parents[2] / "deploy" / "k8s" / "nats"
DEV_CLUSTER = NATS_DIR.parent / "overlays" / "dev" / "cluster.conf"
"""What overlays/dev puts in place of the routes: one node, standalone."""
NODES = 3


@dataclass(frozen=True)
class Node:
    """One local node: its client and monitoring ports, and its process."""

    client: int
    monitor: int
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.client}"


def _swapped(text: str, swaps: dict[str, str]) -> str:
    """`text` with each key replaced; a key that is not there fails the test (the shipped file changed)."""
    for old, new in swaps.items():
        assert old in text, f"{old!r} is no longer in the shipped NATS configuration"
        text = text.replace(old, new)
    return text


def _node_files(root: Path, index: int, ports: list[dict[str, int]], accounts: str) -> Path:
    """The files of node `index` of len(ports) laid out as its pod mounts them: config/ (the ConfigMap)
    beside accounts/ (the Secret); returns its nats.conf. One node gets overlays/dev's cluster.conf."""
    mine = ports[index]
    config, secret = root / f"node-{index}" / "config", root / f"node-{index}" / "accounts"
    config.mkdir(parents=True)
    secret.mkdir()
    (secret / "accounts.conf").write_text(accounts)
    conf = _swapped(
        (NATS_DIR / "nats.conf").read_text(),
        {
            "listen: 0.0.0.0:4222": f"listen: 127.0.0.1:{mine['client']}",
            "http: 0.0.0.0:8222": f"http: 127.0.0.1:{mine['monitor']}",
            "/var/run/nats/nats.pid": str(root / f"node-{index}" / "nats.pid"),
            "/data/jetstream": str(root / f"node-{index}" / "jetstream"),
        },
    )
    routes = {
        f"nats://maestro-nats-{n}.maestro-nats-headless:6222": f"nats://127.0.0.1:{ports[n]['route']}"
        for n in range(len(ports))
    }
    cluster = (
        DEV_CLUSTER.read_text()
        if len(ports) == 1
        else _swapped(
            (NATS_DIR / "cluster.conf").read_text(),
            {"listen: 0.0.0.0:6222": f"listen: 127.0.0.1:{mine['route']}", **routes},
        )
    )
    (config / "nats.conf").write_text(conf)
    (config / "cluster.conf").write_text(cluster)
    return config / "nats.conf"


@pytest.fixture
def credentials(tmp_path: Path) -> Path:
    """`maestro nats-config`'s output, as the README has the operator make it."""
    out = tmp_path / "nats-auth"
    nats_config.write(out, ["acme"])
    return out


def _start(root: Path, credentials: Path, count: int) -> list[Node]:
    """`count` nodes of the shipped configuration (appended to as they start: stop them all after)."""
    accounts = (credentials / nats_config.CONFIG_FILE).read_text()
    ports = [{"client": free_port(), "monitor": free_port(), "route": free_port()} for _ in range(count)]
    nodes: list[Node] = []
    for index in range(count):
        conf = _node_files(root, index, ports, accounts)
        with open(root / f"node-{index}.log", "wb") as log:
            process = subprocess.Popen(
                [nats_server_binary(), "--config", str(conf)],
                env={"POD_NAME": f"maestro-nats-{index}"},  # as the pod's env sets it
                stdout=subprocess.DEVNULL,
                stderr=log,
                preexec_fn=dies_with_caller(),
            )
        nodes.append(Node(ports[index]["client"], ports[index]["monitor"], process))
    return nodes


def _stop(nodes: list[Node]) -> None:
    for node in nodes:
        node.process.terminate()
    for node in nodes:
        node.process.wait(10)


@pytest.fixture
def cluster(tmp_path: Path, credentials: Path) -> Iterator[list[Node]]:
    """Three nodes of the shipped configuration (overlays/prod), stopped after the test."""
    nodes = _start(tmp_path, credentials, NODES)
    try:
        yield nodes
    finally:
        _stop(nodes)


@pytest.fixture
def single(tmp_path: Path, credentials: Path) -> Iterator[list[Node]]:
    """The one node of overlays/dev, stopped after the test."""
    nodes = _start(tmp_path, credentials, 1)
    try:
        yield nodes
    finally:
        _stop(nodes)


def _monitoring(node: Node, path: str) -> dict[str, object]:
    with urllib.request.urlopen(f"http://127.0.0.1:{node.monitor}{path}", timeout=2) as answer:
        return json.loads(answer.read())  # type: ignore[no-any-return]


async def _until_jetstream_is_ready(nodes: list[Node], timeout: float = 30.0) -> None:
    """Wait until every node's /healthz says it is up with JetStream's cluster formed (the startup probe's
    question: the full health check, which wants a meta leader)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    for node in nodes:
        while True:
            assert node.process.poll() is None, "a node of the shipped configuration exited"
            try:
                if _monitoring(node, "/healthz").get("status") == "ok":
                    break
            except OSError:
                pass
            assert loop.time() < deadline, "the cluster did not become ready"
            await asyncio.sleep(0.1)


@pytest.fixture
async def ready(cluster: list[Node]) -> AsyncIterator[list[Node]]:
    await _until_jetstream_is_ready(cluster)
    yield cluster


async def _replicated(bus: Bus, stream: str, consumer: str) -> bool:
    """Whether a consumer has a leader and two current followers."""
    cluster = (await bus.js.consumer_info(stream, consumer)).cluster
    return cluster is not None and len([p for p in cluster.replicas or [] if p.current]) == NODES - 1


def _settings(nodes: list[Node], credentials: Path, replicas: int) -> Settings:
    return Settings(
        nats_url=",".join(n.url for n in nodes),
        nats_creds=str(credentials / "admin.nk"),
        stream_replicas=replicas,
        request_timeout_s=5.0,
        worker="test-worker",
    )


async def test_every_stream_bucket_and_store_gets_three_replicas_also_when_first_made_with_one(
    ready: list[Node], credentials: Path
) -> None:
    async with open_bus(_settings(ready, credentials, 1), "maestro-test", patience_s=30) as bus:
        wanted = topology.topology(bus.settings).stream_names
        assert {(await bus.js.stream_info(n)).config.num_replicas for n in wanted} == {1}
        await topology.ensure_backlog(bus.js)
    async with open_bus(_settings(ready, credentials, 3), "maestro-test", patience_s=30) as bus:
        replicas = {n: (await bus.js.stream_info(n)).config.num_replicas for n in wanted}
        # The consumers follow their stream (they set no replicas of their own), the backlog's too.
        await eventually(lambda: _replicated(bus, topics.STREAM_WAITING, "backlog-tester"))
    assert replicas == dict.fromkeys(wanted, 3)
    assert topics.object_store_stream(topics.STORE_ARTIFACTS) in replicas and len(replicas) > 15


async def test_the_monitoring_endpoint_shows_keda_each_roles_backlog_in_the_maestro_account(
    ready: list[Node], credentials: Path
) -> None:
    async with open_bus(_settings(ready, credentials, 3), "maestro-test", patience_s=30) as bus:
        await topology.ensure_backlog(bus.js)
        for n in range(3):
            request = TaskRequest(id=f"t-{n}", tenant="acme", role="tester", prompt="run the tests")
            allowed = Decision(verdict="allow")
            task = TaskAssignment(request=request, decision=allowed, reservation_id=f"r-{n}")
            await bus.js.publish(topics.WAITING.subject("tester", "5", "acme"), codec.encode(task))
    # What KEDA's nats-jetstream scaler asks (its URL, with the account `maestro nats-config` makes), and
    # as it does, the answer of each consumer's leader (a follower does not count what is pending). A
    # consumer just made has no leader for a moment: asked again until both have one.
    async with asyncio.timeout(30):
        while {"backlog-tester", "backlog-planner"} - set(pending := _pending_at_leaders(ready)):  # noqa: ASYNC110
            await asyncio.sleep(0.2)
    assert pending["backlog-tester"] == 3 and pending["backlog-planner"] == 0


def _pending_at_leaders(nodes: list[Node]) -> dict[str, int]:
    """Each waiting stream consumer's pending and unacked messages, as its leader's /jsz says."""
    pending: dict[str, int] = {}
    for node in nodes:
        server = _monitoring(node, "/varz")["server_name"]
        answer = _monitoring(node, "/jsz?acc=MAESTRO&consumers=true&config=true")
        for account in answer.get("account_details", []):  # type: ignore[attr-defined]
            for stream in account.get("stream_detail") or []:
                for consumer in stream.get("consumer_detail") or []:
                    leader = (consumer.get("cluster") or {}).get("leader")
                    if stream["name"] == topics.STREAM_WAITING and leader == server:
                        pending[consumer["name"]] = consumer["num_pending"] + consumer["num_ack_pending"]
    return pending


async def test_the_dev_overlays_one_node_runs_jetstream_alone_with_the_accounts(
    single: list[Node], credentials: Path
) -> None:
    await _until_jetstream_is_ready(single)
    async with open_bus(_settings(single, credentials, 1), "maestro-test", patience_s=30) as bus:
        wanted = topology.topology(bus.settings).stream_names
        assert {(await bus.js.stream_info(n)).config.num_replicas for n in wanted} == {1}
    assert _monitoring(single[0], "/varz")["server_name"] == "maestro-nats-0"
