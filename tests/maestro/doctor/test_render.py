"""How the doctor's findings are printed: a line each and a verdict, or one JSON document."""

from __future__ import annotations

import msgspec

from maestro.doctor import render
from maestro.doctor.findings import EXIT_UNREACHABLE, Finding, exit_code, unreachable

FINDINGS = [
    Finding("server", "nats://127.0.0.1:4222", "ok", "nats-server 2.12.1, JetStream enabled"),
    Finding("stream", "MAESTRO_GATE", "problem", "MAESTRO_GATE is missing", "start the orchestrator"),
    Finding("dlq", "MAESTRO_DLQ", "warn", "1 dead letter: #1 guard: \x1b[2Jgone", "maestro dlq ls"),
]


def test_the_table_has_a_line_per_finding_with_what_to_do_then_the_verdict() -> None:
    lines = render.as_table(FINDINGS, exit_code(FINDINGS)).splitlines()
    assert len(lines) == len(FINDINGS) + 1
    assert lines[0].split() == [
        "ok",
        "server",
        "nats://127.0.0.1:4222",
        "nats-server",
        "2.12.1,",
        "JetStream",
        "enabled",
    ]
    assert lines[1].startswith("problem  stream    MAESTRO_GATE ")
    assert lines[1].endswith("MAESTRO_GATE is missing  -> start the orchestrator")
    assert lines[-1] == "unhealthy: 1 problem, 1 warning, 1 ok"


def test_what_others_wrote_is_printed_inert() -> None:
    # A dead letter's reason quotes whatever was published: an escape must not reach the terminal.
    table = render.as_table(FINDINGS, 1)
    assert "\x1b" not in table and "\\x1b[2Jgone" in table


def test_json_is_one_document_with_the_verdict_and_every_finding() -> None:
    report = msgspec.json.decode(render.as_json(FINDINGS, 1), type=render.Report)
    assert (report.healthy, report.exit_code, report.problems, report.warnings) == (False, 1, 1, 1)
    assert report.findings == FINDINGS


def test_an_unreachable_server_is_said_so() -> None:
    finding = unreachable("nats://127.0.0.1:1", "cannot reach NATS")
    assert render.as_table([finding], EXIT_UNREACHABLE).splitlines()[-1].startswith("unreachable: 1 problem")
