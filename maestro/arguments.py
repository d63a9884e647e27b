"""The CLI's argument parser and the types of its arguments: a bad value is one line and exit 2."""

from __future__ import annotations

import argparse
import os
import pwd
import sys
from collections.abc import Callable
from typing import Any, NoReturn

import msgspec

from proto.v1 import TaskId, Tenant
from proto.v1.ids import role_problem

EXIT_USAGE = 2


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors (its subcommands' too) are `maestro: error: ...`, exit 2."""

    def error(self, message: str) -> NoReturn:
        """Print the one-line error and exit EXIT_USAGE; `maestro COMMAND --help` shows the usage."""
        print(f"maestro: error: {message}", file=sys.stderr)
        sys.exit(EXIT_USAGE)


def _typed(wire_type: Any, what: str, rule: str) -> Callable[[str], str]:
    """An argparse type that accepts exactly the strings the wire type `wire_type` accepts."""

    def convert(value: str) -> str:
        try:
            return msgspec.convert(value, wire_type)  # type: ignore[no-any-return]
        except msgspec.ValidationError:
            raise argparse.ArgumentTypeError(f"not a {what}: {value!r} ({rule})") from None

    convert.__name__ = what
    return convert


task_id = _typed(TaskId, "task id", "1 to 64 letters, digits, '-' or '_', starting with a letter or a digit")
"""A task id as proto.v1.ids.TOKEN_PATTERN allows it."""
tenant = _typed(
    Tenant, "tenant", "1 to 63 lowercase letters, digits, '-' or '_', starting with a letter or a digit"
)
"""A tenant name as proto.v1.ids.Tenant allows it."""
origin = _typed(TaskId, "origin", "a service's name as its dead letters' subjects end, e.g. guard or agents")
"""Where dead letters come from: a subject token, as task ids are."""


def role(value: str) -> str:
    """An agent role or a human queue (`human:security`), as proto.v1.ids.role_problem allows."""
    if problem := role_problem(value):
        raise argparse.ArgumentTypeError(problem)
    return value


def user() -> str:
    """Who runs the command (the default of `--by`): the account in the password database, not $USER."""
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return f"uid-{os.getuid()}"


def positive(value: str) -> int:
    """A whole number of at least 1 (a sequence, a limit)."""
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"not a whole number of at least 1: {value!r}")
    return number
