"""`maestro budget set` refuses what cannot be right before it asks the budget: exit 2 naming the option."""

from __future__ import annotations

import argparse

import pytest

from proto.v1.ids import MAX_MICRO_USD, MAX_TOKENS
from services.budget import cli


def parse(*args: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="maestro")
    cli.register(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(["budget", "set", "acme", *args])


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["--role", "wizard"], "--role"),
        (["--model", "m" * 5000], "--model"),
        (["--model", "a b"], "--model"),
        (["--usd", str(MAX_MICRO_USD // 1_000_000 + 1)], "--usd"),
        (["--usd", "2e63"], "--usd"),
        (["--task-ceiling-usd", "1e30"], "--task-ceiling-usd"),
        (["--tokens", str(2**64)], "--tokens"),
        (["--tokens", str(MAX_TOKENS + 1)], "--tokens"),
    ],
)
def test_a_value_that_cannot_be_right_exits_2_naming_the_option(
    args: list[str], option: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        parse(*args)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert option in err and len(err.splitlines()[-1]) < 300


def test_the_largest_values_and_every_role_are_taken() -> None:
    top = parse("--usd", str(MAX_MICRO_USD // 1_000_000), "--tokens", str(MAX_TOKENS), "--model", "gpt-4o")
    assert (top.usd, top.tokens, top.model) == (MAX_MICRO_USD, MAX_TOKENS, "gpt-4o")
    assert parse("--role", "doc-writer").role == "doc-writer"


@pytest.mark.parametrize("command", ["show", "set"])
@pytest.mark.parametrize("tenant", ["Acme", "acme.*", ">", ""])
def test_a_tenant_that_cannot_be_one_exits_2(
    command: str, tenant: str, capsys: pytest.CaptureFixture[str]
) -> None:
    parser = argparse.ArgumentParser(prog="maestro")
    cli.register(parser.add_subparsers(dest="command", required=True))
    with pytest.raises(SystemExit) as exit_:
        parser.parse_args(["budget", command, tenant])
    assert exit_.value.code == 2
    assert "not a tenant" in capsys.readouterr().err
