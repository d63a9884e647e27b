"""Listing records: a query's parameters checked, records filtered and ordered newest first, cut into pages.

Pure: no I/O. The stores feed a `Selection` every current record of a bucket (one pass per page) and it keeps
only the page's records, so memory is bounded by the page size, not by the bucket. A cursor is the position
of the last record of a page, `(created_at, id)`, encoded URL-safe; the next page holds the records strictly
after it in the order, so no record is listed twice or skipped while paging, whatever was written meanwhile
(a record created after the first page is newer than the cursor and shows on a new listing, not this one).
"""

from __future__ import annotations

import base64
import binascii
import heapq
import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Generic, NamedTuple, Protocol, TypeVar, get_args

import msgspec

from maestro.errors import MaestroError
from maestro.since import start_of
from proto.v1 import TaskState, Tenant
from proto.v1.ids import ROLES, is_human, role_problem
from proto.v1.workflows import WorkflowState

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
MAX_SCAN = 100_000
"""The most records one listing reads from a bucket: a bucket holding more is refused (`TooMany`), unread.
Measured on one local nats-server: a pass reads about 40000 records of 600 bytes a second (20000 in
0.4-0.5 s), so a page of a full bucket costs 2-3 s; memory stays one page whatever the bucket holds."""

TASK_STATES: frozenset[str] = frozenset(get_args(TaskState))
WORKFLOW_STATES: frozenset[str] = frozenset(get_args(WorkflowState))


class ListingError(MaestroError):
    """Base of the listing's errors."""


class BadParameter(ListingError):
    """A query parameter that cannot be used; `field` names it (the HTTP API answers 400)."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")
        self.field = name


class TooMany(ListingError):
    """The bucket holds more records than one listing may read (MAX_SCAN); narrower filters do not help,
    since every listing reads the whole bucket."""

    def __init__(self, bucket: str, count: int, most: int = MAX_SCAN) -> None:
        super().__init__(f"{bucket} holds {count} records; a listing reads at most {most}")
        self.count = count


class Listed(Protocol):
    """What a listed record has: a task's or a workflow's."""

    @property
    def id(self) -> str: ...
    @property
    def tenant(self) -> str: ...
    @property
    def state(self) -> str: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def labels(self) -> dict[str, str]: ...


R = TypeVar("R", bound=Listed)


class Position(NamedTuple):
    """Where a record sorts: the newest first, then the greatest id."""

    created_at: datetime
    id: str


class Page(msgspec.Struct, Generic[R], frozen=True):
    """One page of a listing: at most `limit` records, and the cursor of the next page when there is one."""

    items: list[R]
    next_cursor: str | None = None


@dataclass(frozen=True)
class Kind:
    """What can be listed: its name, its states, and its roles (none: `role` is not a parameter)."""

    name: str
    states: frozenset[str]
    roles: frozenset[str] = frozenset()


TASKS = Kind("tasks", TASK_STATES, frozenset(ROLES))
WORKFLOWS = Kind("workflows", WORKFLOW_STATES)


@dataclass(frozen=True)
class Query:
    """A checked listing query: every filter given must hold (`states`: any of them; `labels`: all)."""

    tenant: str | None = None
    states: frozenset[str] = frozenset()
    role: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    limit: int = DEFAULT_LIMIT
    after: Position | None = None
    """The cursor's position: only records after it in the order."""
    since: datetime | None = None
    """Only records created at or after it."""

    def matches(self, record: Listed, role: str | None = None) -> bool:
        """Whether `record` (of role `role`, for a task) passes every filter and lies after the cursor."""
        if self.tenant is not None and record.tenant != self.tenant:
            return False
        if self.states and record.state not in self.states:
            return False
        if self.role is not None and role != self.role:
            return False
        if any(record.labels.get(k) != v for k, v in self.labels.items()):
            return False
        if self.since is not None and _utc(record.created_at) < self.since:
            return False
        return self.after is None or position(record) < self.after


def _utc(at: datetime) -> datetime:
    # A record's time is aware (the services write UTC); a naive one is taken as UTC, so all compare.
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def position(record: Listed) -> Position:
    """Where `record` sorts; a listing shows the greatest first."""
    return Position(_utc(record.created_at), record.id)


def encode_cursor(at: Position) -> str:
    """The opaque, URL-safe cursor of a position."""
    raw = msgspec.json.encode([at.created_at.isoformat(), at.id])
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(cursor: str) -> Position:
    """The position a cursor holds; raises BadParameter("cursor") for anything encode_cursor did not make."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        when, record_id = msgspec.json.decode(raw, type=tuple[str, str])
        return Position(_utc(datetime.fromisoformat(when)), record_id)
    except (binascii.Error, ValueError, msgspec.DecodeError, msgspec.ValidationError):
        raise BadParameter("cursor", "not a cursor this API gave out") from None


def query(
    kind: Kind,
    *,
    tenant: str | None = None,
    states: Iterable[str] = (),
    role: str | None = None,
    labels: Mapping[str, str] | None = None,
    limit: int = DEFAULT_LIMIT,
    cursor: str | None = None,
    since: datetime | None = None,
) -> Query:
    """A checked Query for `kind`; raises BadParameter naming the first parameter that is wrong."""
    if tenant is not None:
        try:
            msgspec.convert(tenant, Tenant)
        except msgspec.ValidationError:
            raise BadParameter("tenant", f"not a tenant: {tenant!r}") from None
    wanted = frozenset(states)
    if unknown := sorted(wanted - kind.states):
        raise BadParameter(
            "state", f"no {kind.name} state {unknown[0]!r}; one of {', '.join(sorted(kind.states))}"
        )
    if role is not None and role not in kind.roles:
        if not kind.roles:
            raise BadParameter("role", f"{kind.name} have no role")
        if not is_human(role) or role_problem(role) is not None:
            known = ", ".join(sorted(kind.roles))
            raise BadParameter("role", f"no role {role!r}; one of {known}, or a human queue (human:<queue>)")
    labels = dict(labels or {})
    if any(not key for key in labels):
        raise BadParameter("label", "a label needs a key")
    if isinstance(limit, bool) or not 1 <= limit <= MAX_LIMIT:
        raise BadParameter("limit", f"{limit!r} is not between 1 and {MAX_LIMIT}")
    after = decode_cursor(cursor) if cursor is not None else None
    return Query(tenant, wanted, role, labels, limit, after, since)


def parse(kind: Kind, params: Iterable[tuple[str, str]], now: datetime | None = None) -> Query:
    """The Query in a URL's parameters (`tenant`, `state` repeatable or comma-separated, `role`, `label=k:v`
    repeatable, `limit`, `cursor`, `since` an ISO 8601 time or a span ago, `1h`, as of `now`); raises
    BadParameter naming an unknown, repeated or wrong one."""
    allowed = {"tenant", "state", "label", "limit", "cursor", "since"} | ({"role"} if kind.roles else set())
    given: dict[str, list[str]] = {}
    for name, value in params:
        if name not in allowed:
            raise BadParameter(
                name, f"not a parameter of this listing; it takes {', '.join(sorted(allowed))}"
            )
        given.setdefault(name, []).append(value)
    for name in ("tenant", "role", "limit", "cursor", "since"):
        if len(given.get(name, [])) > 1:
            raise BadParameter(name, "given more than once")
    labels: dict[str, str] = {}
    for label in given.get("label", []):
        key, sep, value = label.partition(":")
        if not sep or not key:
            raise BadParameter("label", f"{label!r} is not KEY:VALUE")
        if labels.get(key, value) != value:
            raise BadParameter("label", f"{key!r} is given two values; no record has both")
        labels[key] = value
    states = [s.strip() for joined in given.get("state", []) for s in joined.split(",")]
    limit = DEFAULT_LIMIT
    if "limit" in given:
        try:
            limit = int(given["limit"][0])
        except ValueError:
            raise BadParameter("limit", f"{given['limit'][0]!r} is not a whole number") from None

    def one(name: str) -> str | None:
        return given[name][0] if name in given else None

    since = None
    if (text := one("since")) is not None:
        try:
            since = start_of(text, now or datetime.now(UTC))
        except ValueError as exc:
            raise BadParameter("since", str(exc)) from None

    return query(
        kind,
        tenant=one("tenant"),
        states=states,
        role=one("role"),
        labels=labels,
        limit=limit,
        cursor=one("cursor"),
        since=since,
    )


class Selection(Generic[R]):
    """The page of a query, built from records offered one at a time in any order (the bucket's)."""

    def __init__(self, query: Query) -> None:
        self.query = query
        # A min-heap of the `limit + 1` greatest positions offered so far: one more than a page, to know
        # whether a next page exists. The counter breaks no tie (ids are keys) but keeps records uncompared.
        self._kept: list[tuple[Position, int, R]] = []
        self._order = itertools.count()

    def offer(self, record: R, role: str | None = None) -> None:
        """Consider `record` (a task's `role` too); keeps it only if it matches and may be on the page."""
        if not self.query.matches(record, role):
            return
        entry = (position(record), next(self._order), record)
        if len(self._kept) <= self.query.limit:
            heapq.heappush(self._kept, entry)
        elif entry[0] > self._kept[0][0]:
            heapq.heapreplace(self._kept, entry)

    def page(self) -> Page[R]:
        """The records kept, newest first, and the next page's cursor when more matched than fit."""
        ordered = [record for _, _, record in sorted(self._kept, reverse=True, key=lambda e: e[:2])]
        items = ordered[: self.query.limit]
        more = len(ordered) > self.query.limit
        return Page(items=items, next_cursor=encode_cursor(position(items[-1])) if more else None)
