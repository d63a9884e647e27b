"""A three-node JetStream cluster of local nats-server processes (routes on loopback) to break: kill the
leader of a stream, freeze a node with SIGSTOP, bring each back on its own store."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import nats
import nats.errors

from chaos.facts import Kill
from chaos.mesh import MeshError, spawn
from maestro.embedded import nats_server_binary
from maestro.supervisor import free_port

_READY_S = 60.0
_POLL_S = 0.2
_STOP_S = 10.0
CLUSTER = "chaos"


@dataclass
class Node:
    """One server of the cluster: its name, ports, store and configuration, and its process."""

    name: str
    port: int
    route_port: int
    config: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Where clients reach it."""
        return f"nats://127.0.0.1:{self.port}"


def config(node: Node, store: Path, routes: list[int]) -> str:
    """The configuration file of one node."""
    listed = ", ".join(f'"nats-route://127.0.0.1:{p}"' for p in routes)
    return (
        f"server_name: {node.name}\n"
        f"listen: 127.0.0.1:{node.port}\n"
        f'jetstream {{ store_dir: "{store}" }}\n'
        f"cluster {{\n  name: {CLUSTER}\n  listen: 127.0.0.1:{node.route_port}\n  routes: [{listed}]\n}}\n"
    )


@dataclass
class Cluster:
    """The running nodes, and every signal the harness sent them."""

    root: Path
    nodes: dict[str, Node]
    kills: list[Kill] = field(default_factory=list)

    @property
    def urls(self) -> str:
        """Every node's URL, comma-separated (what MAESTRO_NATS_URL takes)."""
        return ",".join(n.url for n in self.nodes.values())

    def start(self, name: str) -> None:
        """Start (or restart) a node on its configuration and store."""
        node = self.nodes[name]
        argv = [nats_server_binary(), "-c", str(node.config)]
        node.process = spawn(argv, dict(os.environ), self.root / f"{name}.log")

    def signal(self, name: str, sig: signal.Signals) -> Kill:
        """Send `sig` to a node (SIGKILL, SIGSTOP, SIGCONT), recorded."""
        node = self.nodes[name]
        if node.process is None or node.process.poll() is not None:
            raise MeshError(f"node {name} is not running")
        kill = Kill(name=name, pid=node.process.pid, at=time.time(), signal=sig.name)
        node.process.send_signal(sig)
        self.kills.append(kill)
        return kill

    async def leader(self, stream: str, *, within: float = 30.0, not_: str | None = None) -> str:
        """The node that leads `stream` (other than `not_`), once there is one; raises MeshError."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        urls = [n.url for n in self.nodes.values() if n.name != not_]
        nc = await nats.connect(servers=urls, connect_timeout=2, max_reconnect_attempts=-1, error_cb=_quiet)
        try:
            js = nc.jetstream(timeout=2)
            while True:
                with contextlib.suppress(nats.errors.Error, TimeoutError):
                    info = await js.stream_info(stream)
                    leader = info.cluster.leader if info.cluster else None
                    if leader and leader != not_:
                        return leader
                if loop.time() > deadline:
                    raise MeshError(f"stream {stream} had no leader within {within:.0f}s")
                await asyncio.sleep(_POLL_S)
        finally:
            with contextlib.suppress(Exception):
                await nc.close()

    async def ready(self, *, within: float = _READY_S) -> None:
        """Wait until each node answers and the cluster's JetStream has a meta leader; raises MeshError."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        for node in self.nodes.values():
            while True:
                with contextlib.suppress(nats.errors.Error, OSError, TimeoutError):
                    nc = await nats.connect(
                        servers=[node.url], connect_timeout=1, allow_reconnect=False, error_cb=_quiet
                    )
                    try:
                        await nc.jetstream(timeout=2).account_info()
                        break
                    finally:
                        await nc.close()
                if loop.time() > deadline:
                    raise MeshError(f"cluster node {node.name} not ready within {within:.0f}s")
                await asyncio.sleep(_POLL_S)

    async def stop(self) -> None:
        """Stop every node (a frozen one is thawed first so it can exit)."""
        for node in self.nodes.values():
            if node.process is not None and node.process.poll() is None:
                node.process.send_signal(signal.SIGCONT)
                node.process.terminate()
        for node in self.nodes.values():
            if node.process is None:
                continue
            try:
                await asyncio.to_thread(node.process.wait, _STOP_S)
            except subprocess.TimeoutExpired:
                node.process.kill()
                await asyncio.to_thread(node.process.wait)


async def _quiet(exc: Exception) -> None:
    """A node that is down refuses connections: expected here, so not logged."""


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@asynccontextmanager
async def running_cluster(root: Path, size: int = 3) -> AsyncIterator[Cluster]:
    """`size` clustered JetStream nodes in `root` for the length of a block; raises MeshError."""
    nodes = {
        f"n{i}": Node(f"n{i}", free_port(), free_port(), root / f"n{i}.conf") for i in range(1, size + 1)
    }
    routes = [n.route_port for n in nodes.values()]
    for node in nodes.values():
        await asyncio.to_thread(_write, node.config, config(node, root / node.name, routes))
    cluster = Cluster(root, nodes)
    try:
        for name in nodes:
            cluster.start(name)
        await cluster.ready()
        yield cluster
    finally:
        await cluster.stop()
