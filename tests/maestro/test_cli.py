"""The task commands as a user meets them: one-line errors, safe output, pipes, prompts from stdin."""

from __future__ import annotations

import os
import subprocess
from datetime import UTC, datetime

import pytest

from maestro import cli, codec, topics
from maestro.bus import Bus
from maestro.embedded import EmbeddedServer
from proto.v1 import Accepted, Failed, Started, TaskRecord, TaskRequest
from tests.maestro.command import MAESTRO, environment, maestro

BAD_IDS = ["a b", "a*", ">", "", "x" * 65, "_leading", "a.b", "é"]
NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
# What a hostile task could print: a colour, a screen clear, a title change, a bidi override, a C1 CSI.
HOSTILE = "red\x1b[31m clear\x1b[2J title\x1b]0;pwned\x07 bidi\u202egnp.exe c1\x9b31m nul\x00 bell\x07"


@pytest.mark.parametrize(
    "args",
    [
        ("status", "{id}"),
        ("watch", "{id}"),
        ("approve", "{id}"),
        ("reject", "{id}", "--reason", "no"),
        ("submit", "--tenant", "acme", "--role", "planner", "--id", "{id}", "x"),
        ("submit", "--tenant", "acme", "--role", "planner", "--parent", "{id}", "x"),
    ],
)
def test_a_malformed_id_is_one_line_and_exit_2(
    args: tuple[str, ...], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # No server is needed: the id is refused before anything connects. In this process (the parser is
    # the same; a process per case cost half a second each), and once below as a real process.
    monkeypatch.setenv("MAESTRO_NATS_URL", "nats://127.0.0.1:1")
    for bad in BAD_IDS:
        with pytest.raises(SystemExit) as exited:
            cli.main([a.replace("{id}", bad) for a in args])
        err = capsys.readouterr().err
        assert exited.value.code == 2, (bad, err)
        lines = err.splitlines()
        assert len(lines) == 1 and lines[0].startswith("maestro: error: "), (bad, err)
        assert "task id" in lines[0] and "Traceback" not in err


def test_a_malformed_id_is_one_line_and_exit_2_from_a_real_process() -> None:
    run = maestro("status", "a b", nats_url="nats://127.0.0.1:1")
    assert (run.returncode, len(run.stderr.splitlines())) == (2, 1)
    assert run.stderr.startswith("maestro: error: ") and "task id" in run.stderr


async def _plant(bus: Bus, task_id: str) -> None:
    """A failed task whose content is hostile, in the record bucket and the event stream."""
    record = TaskRecord(
        id=task_id,
        tenant="acme",
        state="failed",
        created_at=NOW,
        updated_at=NOW,
        role="planner",
        labels={"note": HOSTILE},
        reason=HOSTILE,
        error=HOSTILE,
        output=f"line one {HOSTILE}\nline two",
    )
    kv = await bus.js.key_value(topics.BUCKET_TASKS)
    await kv.put(task_id, codec.encode(record))
    for event in (
        Accepted(task_id=task_id, tenant="acme", at=NOW, role="planner", labels={"note": HOSTILE}),
        Started(task_id=task_id, tenant="acme", at=NOW, worker=HOSTILE, attempt=1),
        Failed(task_id=task_id, tenant="acme", at=NOW, error=HOSTILE),
    ):
        await bus.streams.publish(topics.EVENTS.at("acme", task_id), event)


def _assert_inert(text: str) -> None:
    """No control character, C1 control or bidi override reaches the terminal; newlines are lines."""
    for char in text:
        assert char == "\n" or (char.isprintable() and char not in "\u202e\u2066\u2067\u2068\u2069"), repr(
            char
        )
    assert "\\x1b[31m" in text and "\\u202e" in text and "\\x9b" in text and "\\x00" in text


async def test_status_and_watch_escape_control_bytes_from_task_content(
    nats_server: EmbeddedServer, bus: Bus
) -> None:
    await _plant(bus, "hostile")
    status = maestro("status", "hostile", nats_url=nats_server.url)
    assert status.returncode == 0, status.stderr
    _assert_inert(status.stdout)
    assert "line one" in status.stdout and "\nline two" in status.stdout.replace("  ", "")

    watch = maestro("watch", "hostile", nats_url=nats_server.url)
    assert watch.returncode == 0, watch.stderr
    _assert_inert(watch.stdout)
    assert len(watch.stdout.splitlines()) == 3

    # JSON is JSON: its encoder escapes control characters already.
    as_json = maestro("status", "hostile", "--json", nats_url=nats_server.url)
    assert as_json.returncode == 0 and "\x1b" not in as_json.stdout
    assert codec.decode(TaskRecord, as_json.stdout.encode()).reason == HOSTILE


def _closed_pipe_run(*args: str, nats_url: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run maestro with stdout a pipe whose reader is gone before it writes, as `maestro ... | head -0`."""
    read, write = os.pipe()
    os.close(read)
    try:
        return subprocess.run(
            [MAESTRO, *args],
            stdout=write,
            stderr=subprocess.PIPE,
            env=environment(nats_url),
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        os.close(write)


async def test_a_closed_pipe_ends_quietly_like_a_unix_tool(nats_server: EmbeddedServer, bus: Bus) -> None:
    await _plant(bus, "piped")
    for args in (("status", "piped"), ("status", "piped", "--json"), ("watch", "piped", "--json")):
        run = _closed_pipe_run(*args, nats_url=nats_server.url)
        assert run.stderr == "", (args, run.stderr)
        assert run.returncode == 141, args


async def test_submit_reads_the_prompt_from_stdin_with_a_dash(nats_server: EmbeddedServer, bus: Bus) -> None:
    prompt = "Plan the release.\nIt has two lines.\n"
    run = maestro(
        "submit", "--tenant", "acme", "--role", "planner", "-", stdin=prompt, nats_url=nats_server.url
    )
    assert run.returncode == 0, run.stderr
    task_id = run.stdout.strip()
    stored = await bus.js.get_last_msg(topics.STREAM_REQUESTS, topics.REQUESTS.subject("acme"))
    request = codec.decode(TaskRequest, stored.data or b"")
    assert (request.id, request.prompt) == (task_id, prompt)

    empty = maestro("submit", "--tenant", "acme", "--role", "planner", "-", nats_url="nats://127.0.0.1:1")
    assert empty.returncode == 1
    assert empty.stderr.splitlines() == ["maestro: error: the prompt read from standard input is empty"]


def test_submit_help_describes_every_option_and_says_which_repeat() -> None:
    run = maestro("submit", "--help")
    assert run.returncode == 0
    text = " ".join(run.stdout.split())
    for option in (
        "--tenant",
        "--role",
        "--id",
        "--file",
        "--command",
        "--label",
        "--model",
        "--data-region",
        "--parent",
        "--wait",
        "--timeout",
    ):
        start = text.index(option + " ", text.index("options:"))
        described = text[start : start + 200]
        assert len(described.split()) > 3, option
    for repeatable in ("--file", "--command", "--label"):
        start = text.index(repeatable + " ", text.index("options:"))
        assert "repeat" in text[start : start + 200], repeatable
    assert "standard input" in text


@pytest.mark.parametrize(
    "bad",
    [
        ("--label", "novalue"),
        ("--file", "/no/such/file"),
        ("--tenant", "Not A Tenant"),
        ("--model", "a model\nwith a newline"),
        ("--label", "\x1b[2J"),  # no KEY=: refused with the escape in the message, escaped
        ("--timeout", "soon"),
    ],
)
def test_a_bad_submit_argument_is_one_line(bad: tuple[str, str]) -> None:
    args = ["submit", "--tenant", "acme", "--role", "planner", *bad, "prompt"]
    run = maestro(*args, nats_url="nats://127.0.0.1:1")
    assert run.returncode in (1, 2), run.stderr
    lines = run.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("maestro: error: "), run.stderr
    assert "\x1b" not in run.stderr


def test_submit_says_whose_data_a_task_carries() -> None:
    def request(*more: str) -> TaskRequest:
        return cli._request(
            cli._parser().parse_args(["submit", "--tenant", "acme", "--role", "planner", *more, "p"])
        )

    assert request().tenant_data and request().data_tenants == []
    assert not request("--no-tenant-data").tenant_data
    assert request("--data-tenant", "globex", "--data-tenant", "initech").data_tenants == [
        "globex",
        "initech",
    ]
    with pytest.raises(cli.CliError, match="tenant_data"):
        request("--no-tenant-data", "--data-tenant", "globex")
