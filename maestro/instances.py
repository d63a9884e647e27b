"""Running instances of `maestro up`, and how a client finds one from any directory.

An instance holds a lock on its data directory for its whole life (one server per JetStream store), writes
the URL of its server into the directory (`nats.url`), and records itself in the user's state directory
(`<state_dir>/instances/<pid>.json`), so a command run anywhere finds it. A client looks, in order:

    MAESTRO_NATS_URL
    <data_dir>/nats.url, in the working directory or any parent (an absolute data_dir: there alone)
    the instances recorded for this user whose process is alive and still owns that URL

No file here is trusted to be current: a process killed with SIGKILL leaves its URL file and record
behind, and the kernel alone releases its lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from maestro.access import nats_config, nats_permissions
from maestro.children import alive
from maestro.settings import Settings

log = logging.getLogger(__name__)

URL_FILE = "nats.url"
AUTH_DIR = "nats-auth"
"""Where `maestro up --nats-auth` keeps its server's configuration and every principal's credentials."""
LOCK_FILE = "lock"
_RECORDS = "instances"


class DataDirInUse(RuntimeError):
    """Another live `maestro up` holds the data directory; the text names its pid."""


class NotFound(ConnectionError):
    """No running Maestro was found; the text says where it was looked for."""


@dataclass(frozen=True)
class Found:
    """Where NATS is, and how that was learnt (for messages)."""

    url: str
    how: str
    creds: str | None = None
    """The admin's NATS credentials the instance left in its data dir (`maestro up --nats-auth`), if any."""


@contextmanager
def holding(data_dir: Path) -> Iterator[None]:
    """Hold the data directory's lock for the length of a block; raises DataDirInUse when another process
    holds it. The kernel drops the lock when this process dies, however it dies."""
    data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(data_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            raise DataDirInUse(
                f"{data_dir} is in use by another maestro up (pid {holder}): "
                "stop it, or give another --data-dir"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)


@contextmanager
def announced(data_dir: Path, url: str, state_dir: Path | None) -> Iterator[None]:
    """Write the URL file and (with a state_dir) this process's record for the length of a block; remove
    each after it only if it is still the one written here."""
    url_file = data_dir / URL_FILE
    _write(url_file, url + "\n")
    record = None
    if state_dir is not None:
        record = state_dir / _RECORDS / f"{os.getpid()}.json"
        body = {"pid": os.getpid(), "data_dir": str(data_dir.resolve()), "nats_url": url}
        try:
            record.parent.mkdir(parents=True, exist_ok=True)
            _write(record, json.dumps(body) + "\n")
        except OSError as exc:  # a convenience for the CLI elsewhere, not a reason not to run
            log.warning("not recorded in %s for the CLI to find: %s", state_dir, exc)
            record = None
    try:
        yield
    finally:
        if _read(url_file) == url:
            url_file.unlink(missing_ok=True)
        if record is not None:
            record.unlink(missing_ok=True)


def find(settings: Settings, cwd: Path) -> Found:
    """Where the running Maestro's NATS is; raises NotFound, saying where it looked."""
    if settings.nats_url:
        return Found(settings.nats_url, "MAESTRO_NATS_URL")
    looked = ["MAESTRO_NATS_URL unset"]
    data_dir = Path(settings.data_dir)
    if data_dir.is_absolute():
        if url := _read(data_dir / URL_FILE):
            return Found(url, f"from {data_dir / URL_FILE}", admin_creds(data_dir))
        # Named on purpose: another instance found elsewhere would not be the one meant.
        raise NotFound(f"no running Maestro: {looked[0]}; no {URL_FILE} in {data_dir}")
    for directory in (cwd, *cwd.parents):
        url_file = directory / data_dir / URL_FILE
        if url := _read(url_file):
            return Found(url, f"from {url_file}", admin_creds(directory / data_dir))
    looked.append(f"no {data_dir / URL_FILE} in {cwd} or its parents")
    if settings.state_dir:
        live, seen = _recorded(Path(settings.state_dir))
        if len(live) == 1:
            return live[0]
        where = Path(settings.state_dir)
        if live:
            which = "; ".join(f.how for f in live)
            raise NotFound(f"{len(live)} running Maestros, {which}: set MAESTRO_DATA_DIR to the one meant")
        if seen:
            looked.append(f"none of {seen} recorded in {where} is running")
        else:
            looked.append(f"none recorded in {where}")
    raise NotFound("no running Maestro: " + "; ".join(looked))


def admin_creds(data_dir: Path) -> str | None:
    """The admin's credentials an instance keeps in its data dir, when it runs with NATS auth."""
    path = nats_config.seed_file(data_dir / AUTH_DIR, nats_permissions.ADMIN)
    return str(path) if path.exists() else None


def _recorded(state_dir: Path) -> tuple[list[Found], int]:
    """The live instances recorded under state_dir, and how many records there were; a record whose process
    is gone is removed."""
    live: list[Found] = []
    records = sorted((state_dir / _RECORDS).glob("*.json"))
    for record in records:
        try:
            body = json.loads(record.read_text())
            pid, data_dir, url = int(body["pid"]), Path(body["data_dir"]), str(body["nats_url"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if not alive(pid):
            record.unlink(missing_ok=True)
        elif _read(data_dir / URL_FILE) == url:  # else the pid was reused, or another instance took the dir
            live.append(
                Found(url, f"recorded by maestro up (pid {pid}) for {data_dir}", admin_creds(data_dir))
            )
    return live, len(records)


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


def _write(path: Path, text: str) -> None:
    # Readers never see half a file.
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    partial.write_text(text)
    try:
        partial.replace(path)
    except OSError:
        with contextlib.suppress(OSError):
            partial.unlink()
        raise
