"""Finding a running Maestro from any directory, and one `maestro up` per data directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from maestro import instances
from maestro.instances import DataDirInUse, NotFound
from maestro.settings import Settings


def _dead_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_the_url_comes_from_the_environment_first(tmp_path: Path) -> None:
    found = instances.find(Settings(nats_url="nats://h:1", state_dir=str(tmp_path)), tmp_path)
    assert (found.url, found.how) == ("nats://h:1", "MAESTRO_NATS_URL")


def test_the_data_dir_is_found_in_a_parent_of_the_working_directory(tmp_path: Path) -> None:
    (tmp_path / ".maestro").mkdir()
    (tmp_path / ".maestro" / "nats.url").write_text("nats://127.0.0.1:1234\n")
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    found = instances.find(Settings(state_dir=str(tmp_path / "state")), deep)
    assert found.url == "nats://127.0.0.1:1234"
    assert found.how == f"from {tmp_path / '.maestro' / 'nats.url'}"


def test_elsewhere_a_running_instance_is_found_through_the_per_user_record(tmp_path: Path) -> None:
    data_dir, state, elsewhere = tmp_path / "proj" / ".maestro", tmp_path / "state", tmp_path / "x"
    elsewhere.mkdir()
    with instances.holding(data_dir), instances.announced(data_dir, "nats://127.0.0.1:4321", state):
        found = instances.find(Settings(state_dir=str(state)), elsewhere)
        assert found.url == "nats://127.0.0.1:4321"
        assert str(data_dir) in found.how and str(os.getpid()) in found.how
    # Gone with the block: the URL file, the record, and so the instance.
    assert not (data_dir / "nats.url").exists()
    with pytest.raises(NotFound):
        instances.find(Settings(state_dir=str(state)), elsewhere)


def test_a_record_of_a_dead_process_or_another_instance_is_ignored(tmp_path: Path) -> None:
    data_dir, state = tmp_path / "proj" / ".maestro", tmp_path / "state"
    data_dir.mkdir(parents=True)
    (data_dir / "nats.url").write_text("nats://127.0.0.1:1\n")
    records = state / "instances"
    records.mkdir(parents=True)
    dead = _dead_pid()
    (records / f"{dead}.json").write_text(
        json.dumps({"pid": dead, "data_dir": str(data_dir), "nats_url": "nats://127.0.0.1:1"})
    )
    # Alive, but its data dir now names another server: the pid was reused, or the record is stale.
    (records / f"{os.getpid()}.json").write_text(
        json.dumps({"pid": os.getpid(), "data_dir": str(data_dir), "nats_url": "nats://127.0.0.1:2"})
    )
    with pytest.raises(NotFound) as caught:
        instances.find(Settings(state_dir=str(state)), tmp_path)
    assert "none of 2 recorded" in str(caught.value)
    assert not (records / f"{dead}.json").exists()


def test_nothing_found_says_how_it_looked_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(NotFound) as caught:
        instances.find(Settings(state_dir=str(tmp_path / "state")), tmp_path)
    message = str(caught.value)
    assert "\n" not in message
    assert message == (
        f"no running Maestro: MAESTRO_NATS_URL unset; no .maestro/nats.url in {tmp_path} or its parents; "
        f"none recorded in {tmp_path / 'state'}"
    )


def test_an_absolute_data_dir_is_looked_in_alone(tmp_path: Path) -> None:
    settings = Settings(data_dir=str(tmp_path / "data"), state_dir=str(tmp_path / "state"))
    with pytest.raises(NotFound, match=f"no nats.url in {tmp_path / 'data'}$"):
        instances.find(settings, tmp_path)


def test_a_data_dir_is_held_by_one_process_and_free_once_it_dies(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, pathlib; from maestro import instances\n"
            "with instances.holding(pathlib.Path(sys.argv[1])):\n"
            "    print('held', flush=True); sys.stdin.read()",
            str(tmp_path),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        with pytest.raises(DataDirInUse) as caught, instances.holding(tmp_path):
            pass
        assert str(caught.value) == (
            f"{tmp_path} is in use by another maestro up (pid {holder.pid}): "
            "stop it, or give another --data-dir"
        )
    finally:
        holder.kill()
        holder.wait()
    with instances.holding(tmp_path):  # the kernel dropped the lock with the process
        pass


def test_the_url_file_is_removed_only_by_the_instance_that_wrote_it(tmp_path: Path) -> None:
    with instances.announced(tmp_path, "nats://127.0.0.1:1", None):
        (tmp_path / "nats.url").write_text("nats://127.0.0.1:2\n")  # another wrote it since
    assert (tmp_path / "nats.url").read_text() == "nats://127.0.0.1:2\n"


def test_several_running_are_named_for_the_user_to_choose(tmp_path: Path) -> None:
    state = tmp_path / "state"
    for pid, name in ((os.getpid(), "a"), (os.getppid(), "b")):
        data_dir = tmp_path / name / ".maestro"
        data_dir.mkdir(parents=True)
        (data_dir / "nats.url").write_text(f"nats://127.0.0.1:{pid}\n")
        (state / "instances").mkdir(parents=True, exist_ok=True)
        (state / "instances" / f"{pid}.json").write_text(
            json.dumps({"pid": pid, "data_dir": str(data_dir), "nats_url": f"nats://127.0.0.1:{pid}"})
        )
    with pytest.raises(NotFound) as caught:
        instances.find(Settings(state_dir=str(state)), tmp_path)
    message = str(caught.value)
    assert message.startswith("2 running Maestros, recorded by maestro up (pid ")
    assert str(tmp_path / "a" / ".maestro") in message and str(tmp_path / "b" / ".maestro") in message
    assert message.endswith(": set MAESTRO_DATA_DIR to the one meant")


def test_a_state_dir_that_cannot_be_written_does_not_stop_an_instance(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    with instances.announced(tmp_path, "nats://127.0.0.1:1", not_a_dir):
        assert (tmp_path / "nats.url").read_text() == "nats://127.0.0.1:1\n"
    assert not (tmp_path / "nats.url").exists()
