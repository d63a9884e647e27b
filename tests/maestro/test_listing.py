"""The listing's pure core: parameters checked, records filtered and ordered newest first, paged."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from maestro import listing
from maestro.listing import TASKS, WORKFLOWS, BadParameter, Query, Selection
from proto.v1 import TaskRecord

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def record(n: int, *, seconds: int | None = None, **fields: object) -> TaskRecord:
    at = T0 + timedelta(seconds=n if seconds is None else seconds)
    base: dict[str, object] = {"tenant": "acme", "state": "succeeded", "role": "tester", "labels": {}}
    base.update(fields)
    return TaskRecord(id=f"t-{n:03d}", created_at=at, updated_at=at, **base)  # type: ignore[arg-type]


def page_of(query: Query, records: list[TaskRecord]) -> listing.Page[TaskRecord]:
    selection: Selection[TaskRecord] = Selection(query)
    for r in records:
        selection.offer(r, r.role)
    return selection.page()


def every_page(query: Query, records: list[TaskRecord]) -> list[list[str]]:
    pages = []
    cursor: str | None = None
    while True:
        q = listing.query(
            TASKS,
            tenant=query.tenant,
            states=query.states,
            role=query.role,
            labels=query.labels,
            limit=query.limit,
            cursor=cursor,
        )
        page = page_of(q, records)
        pages.append([r.id for r in page.items])
        cursor = page.next_cursor
        if cursor is None:
            return pages


def test_newest_first_then_the_greatest_id() -> None:
    same_time = [record(n, seconds=5) for n in (1, 3, 2)]
    records = [record(0), *same_time, record(9)]
    page = page_of(Query(), records)
    assert [r.id for r in page.items] == ["t-009", "t-003", "t-002", "t-001", "t-000"]
    assert page.next_cursor is None


def test_paging_lists_each_record_once_in_order_whatever_the_bucket_order() -> None:
    records = [record(n, seconds=n // 3) for n in range(47)]  # ties on created_at, broken by id
    expected = sorted(records, key=listing.position, reverse=True)
    random.Random(7).shuffle(records)
    pages = every_page(Query(limit=10), records)
    assert [len(p) for p in pages] == [10, 10, 10, 10, 7]
    assert [i for p in pages for i in p] == [r.id for r in expected]


def test_a_full_last_page_has_no_next_cursor() -> None:
    pages = every_page(Query(limit=5), [record(n) for n in range(10)])
    assert [len(p) for p in pages] == [5, 5]


def test_records_created_after_the_first_page_do_not_disturb_the_paging() -> None:
    records = [record(n) for n in range(20)]
    first = page_of(Query(limit=8), records)
    records += [record(n) for n in range(100, 105)]  # newer than anything listed
    rest = page_of(listing.query(TASKS, limit=50, cursor=first.next_cursor), records)
    assert [r.id for r in first.items + rest.items] == [f"t-{n:03d}" for n in range(19, -1, -1)]


def test_every_filter_must_hold() -> None:
    records = [
        record(1, tenant="acme", state="running", role="tester", labels={"repo": "a", "pr": "7"}),
        record(2, tenant="acme", state="failed", role="tester", labels={"repo": "a"}),
        record(3, tenant="beta", state="running", role="tester", labels={"repo": "a", "pr": "7"}),
        record(4, tenant="acme", state="running", role="planner", labels={"repo": "a", "pr": "7"}),
        record(5, tenant="acme", state="queued", role="tester", labels={"repo": "b", "pr": "7"}),
    ]

    def ids(**kw: object) -> list[str]:
        return [r.id for r in page_of(listing.query(TASKS, **kw), records).items]  # type: ignore[arg-type]

    assert ids(tenant="acme") == ["t-005", "t-004", "t-002", "t-001"]
    assert ids(states=["running", "queued"]) == ["t-005", "t-004", "t-003", "t-001"]
    assert ids(role="planner") == ["t-004"]
    assert ids(labels={"repo": "a", "pr": "7"}) == ["t-004", "t-003", "t-001"]
    assert ids(tenant="acme", states=["running"], role="tester", labels={"pr": "7"}) == ["t-001"]


def test_parse_reads_repeated_and_comma_separated_parameters() -> None:
    q = listing.parse(
        TASKS,
        [
            ("tenant", "acme"),
            ("state", "running,queued"),
            ("state", "failed"),
            ("role", "tester"),
            ("label", "repo:a"),
            ("label", "url:http://x"),
            ("limit", "7"),
        ],
    )
    assert q == Query(
        "acme", frozenset({"running", "queued", "failed"}), "tester", {"repo": "a", "url": "http://x"}, 7
    )
    assert listing.parse(TASKS, []) == Query()


@pytest.mark.parametrize(
    ("kind", "params", "field"),
    [
        (TASKS, [("tenant", "Not A Tenant")], "tenant"),
        (TASKS, [("tenant", "a"), ("tenant", "b")], "tenant"),
        (TASKS, [("state", "running,sleeping")], "state"),
        (TASKS, [("state", "")], "state"),
        (TASKS, [("role", "painter")], "role"),
        (TASKS, [("label", "no-colon")], "label"),
        (TASKS, [("label", ":v")], "label"),
        (TASKS, [("label", "k:a"), ("label", "k:b")], "label"),
        (TASKS, [("limit", "0")], "limit"),
        (TASKS, [("limit", "501")], "limit"),
        (TASKS, [("limit", "ten")], "limit"),
        (TASKS, [("cursor", "not-a-cursor")], "cursor"),
        (TASKS, [("cursor", "W10")], "cursor"),  # valid base64 of JSON, not a cursor
        (TASKS, [("tenat", "acme")], "tenat"),
        (WORKFLOWS, [("role", "tester")], "role"),
        (WORKFLOWS, [("state", "queued")], "state"),
    ],
)
def test_a_bad_parameter_is_named(kind: listing.Kind, params: list[tuple[str, str]], field: str) -> None:
    with pytest.raises(BadParameter) as caught:
        listing.parse(kind, params)
    assert caught.value.field == field


def test_a_cursor_is_url_safe_and_round_trips() -> None:
    at = listing.Position(T0 + timedelta(microseconds=1), "t-~~~")
    cursor = listing.encode_cursor(at)
    assert cursor.replace("-", "").replace("_", "").isalnum()
    assert listing.decode_cursor(cursor) == at


def test_a_human_queue_is_a_role_tasks_are_listed_by_and_a_malformed_one_is_not() -> None:
    assert listing.query(listing.TASKS, role="human:security").role == "human:security"
    for bad in ("human:", "human:Sec", "wizard"):
        with pytest.raises(listing.BadParameter, match="or a human queue"):
            listing.query(listing.TASKS, role=bad)
