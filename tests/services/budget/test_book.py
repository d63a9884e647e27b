"""The summary of a ledger's holds that one batch hands the next, and the memory of expired holds."""

from __future__ import annotations

import math
import random

from maestro import codec
from proto.v1 import Commit, GetLedger, Release, Reserve, Usage, reservation_id_for
from services.budget import entry, ledger
from services.budget.entry import HOLD_ROOM_BYTES, LARGEST_HOLD_BYTES, Hold, hold_bytes
from services.budget.expired import Expired, ExpiredHold, encoded_bytes, encoded_item
from services.budget.ledger import Applied, Ledger, Operation, Summary, Touch
from services.budget.settled import fingerprint
from tests.services.budget.test_ledger import NOW, PRICES, empty


def _check(summary: Summary | None, book: Ledger) -> None:
    """What a summary says of a ledger is true of it."""
    assert summary is not None
    if summary.hold_bytes is not None:
        assert summary.hold_bytes == sum(hold_bytes(rid, hold) for rid, hold in book.holds.items())
    if summary.expired_bytes is not None:
        assert summary.expired_bytes == sum(encoded_bytes(hold) for hold in book.expired.values())
    assert summary.expires_from <= min((hold.expires_at for hold in book.holds.values()), default=math.inf)
    if summary.holds_items is not None:
        assert list(summary.holds_items) == list(book.holds)
    if summary.expired_items is not None:
        assert list(summary.expired_items) == list(book.expired)


def _batches(rng: random.Random, count: int, fat: bool) -> list[tuple[float, list[Operation]]]:
    """Batches of reserves (some drawing from an escrow), commits, releases and reads, as time goes by;
    `fat`: with the longest task ids and model names."""

    def task(n: int) -> str:
        return f"t{n:05d}".ljust(64, "x") if fat else f"t{n:05d}"

    now, made, batches = NOW, 0, []
    for _ in range(count):
        now += rng.choice((0.0, 0.5, 3.0, 12.0))
        ops: list[Operation] = []
        for _ in range(rng.randint(1, 12)):
            rid = reservation_id_for(task(rng.randrange(max(1, made))))
            kind = rng.random()
            if kind < 0.5 or not made:
                made += 1
                ops.append(
                    Reserve(
                        tenant="acme",
                        task_id=task(made),
                        estimate_micro_usd=rng.randint(1, 50),
                        estimate_tokens=rng.randint(0, 9),
                        ttl_s=rng.choice((1.0, 10.0, 40.0, 3600.0)),
                        role=rng.choice(("", "planner", "implementer")),
                        model=("m" * 128 if fat else "m") if rng.random() < 0.5 else "",
                        escrow=rid if rng.random() < 0.1 else None,
                    )
                )
            elif kind < 0.8:
                ops.append(Commit(tenant="acme", reservation_id=rid, usage=Usage(model="m", input_tokens=3)))
            elif kind < 0.95:
                ops.append(Release(tenant="acme", reservation_id=rid))
            else:
                ops.append(rng.choice((GetLedger(tenant="acme"), Touch("acme"))))
        batches.append((now, ops))
    return batches


def _same_as_from_the_entry(start: Ledger, batches: list[tuple[float, list[Operation]]]) -> Ledger:
    """Run the batches on `start` twice, each from what the batch before handed on and each from the entry
    as a replica reads it, and check that both answer, announce and store the same."""
    handed, summary = start, None
    for now, ops in batches:
        carried = ledger.apply(handed, ops, now, PRICES, summary)
        read = ledger.apply(codec.decode(Ledger, codec.encode(handed)), ops, now, PRICES)
        assert _seen(carried) == _seen(read)
        _check(carried.summary, carried.ledger)
        assert ledger.encoded(carried) == codec.encode(carried.ledger)
        handed, summary = carried.ledger, carried.summary
    return handed


def _seen(applied: Applied) -> tuple[bytes, list[str], list[bytes], bool]:
    answers = [repr(answer) for answer in applied.answers]
    return codec.encode(applied.ledger), answers, [codec.encode(e) for e in applied.events], applied.changed


def test_batches_handed_a_summary_answer_and_store_what_batches_from_the_stored_entry_do() -> None:
    book = _same_as_from_the_entry(empty(10**9), _batches(random.Random(11), 400, fat=False))
    assert book.holds and book.expired and book.settled_ids  # every kind of memory was exercised


def test_a_ledger_with_many_holds_handed_on_batch_after_batch_is_encoded_from_their_items() -> None:
    many = [Reserve(tenant="acme", task_id=f"m{n}", estimate_micro_usd=1) for n in range(entry.SPLICED_FROM)]
    applied = ledger.apply(empty(10**9), many, NOW, PRICES)
    for n, (now, ops) in enumerate(_batches(random.Random(3), 12, fat=False)):
        applied = ledger.apply(applied.ledger, ops, now, PRICES, applied.summary)
        assert applied.summary is not None
        kept = applied.summary.holds_items is not None and applied.summary.expired_items is not None
        assert kept == (n >= 3)
        assert ledger.encoded(applied) == codec.encode(applied.ledger)
    # Names that JSON escapes are spelled as codec.encode spells them.
    odd = Reserve(
        tenant="acme", task_id='q"\\\u00e9\u2028x', estimate_micro_usd=1, role="planner", model="m\u00e9"
    )
    applied = ledger.apply(applied.ledger, [odd], NOW + 10**5, PRICES, applied.summary)
    assert ledger.encoded(applied) == codec.encode(applied.ledger)
    few = ledger.apply(empty(10**9), many[:3], NOW, PRICES)
    for _ in range(6):
        few = ledger.apply(few.ledger, [GetLedger(tenant="acme")], NOW, PRICES, few.summary)
    assert few.summary is not None and few.summary.holds_items is None  # encoding it whole costs less


def test_a_summary_keeps_the_bounds_on_room_exactly_as_counting_every_hold_does() -> None:
    # Holds with the longest names near the room's bound, so every batch counts the bytes of holds.
    start = ledger.apply(
        empty(10**12),
        [Reserve(tenant="acme", task_id=f"f{n}".ljust(64, "x"), estimate_micro_usd=1, model="m" * 128)
         for n in range(1900)],
        NOW,
        PRICES,
    )  # fmt: skip
    assert len(start.ledger.holds) * LARGEST_HOLD_BYTES > HOLD_ROOM_BYTES
    book = _same_as_from_the_entry(start.ledger, _batches(random.Random(5), 120, fat=True))
    assert book.expired


def test_a_batch_that_can_find_no_expired_hold_does_not_look_through_the_holds() -> None:
    hold = Reserve(tenant="acme", task_id="a", estimate_micro_usd=1, ttl_s=60.0)
    held = ledger.apply(empty(), [hold], NOW, PRICES)
    assert held.summary is not None and held.summary.expires_from == NOW + 60.0
    # A summary that says the holds expire later is trusted: the hold past its ttl stays until then.
    trusted = ledger.apply(held.ledger, [Touch("acme")], NOW + 61, PRICES, Summary(expires_from=NOW + 62))
    assert not trusted.changed and "r-a" in trusted.ledger.holds
    expired = ledger.apply(held.ledger, [Touch("acme")], NOW + 61, PRICES, held.summary)
    assert expired.changed and not expired.ledger.holds
    assert expired.summary is not None and expired.summary.expires_from == math.inf


def _expired(n: int, model: str = "") -> ExpiredHold:
    return ExpiredHold(n, NOW, "planner", model)


def test_expired_holds_are_copied_only_when_they_change_and_counted_as_they_do() -> None:
    stored = {fingerprint(f"r-{n}"): _expired(n) for n in range(5)}
    unchanged = Expired(stored)
    assert unchanged.stored(10, 10_000) is stored and unchanged.counted() is None
    changed = Expired(stored, sum(encoded_bytes(h) for h in stored.values()))
    assert changed.pop("r-1") == _expired(1) and changed.pop("r-1") is None
    changed.add("r-9", _expired(9, "m" * 50))
    assert len(stored) == 5 and "r-1" in Expired(stored)  # the stored entry's dict is left as it was
    kept = changed.stored(10, 10_000)
    assert list(kept.values()) == [_expired(0), _expired(2), _expired(3), _expired(4), _expired(9, "m" * 50)]
    assert changed.counted() == sum(encoded_bytes(h) for h in kept.values())


def test_expired_holds_past_their_count_or_room_forget_the_oldest() -> None:
    holds = [_expired(n, "m" * (n * 10)) for n in range(8)]
    stored = {fingerprint(f"r-{n}"): hold for n, hold in enumerate(holds)}
    assert list(Expired(stored).stored(3, 10**6).values()) == holds[5:]
    room = sum(encoded_bytes(h) for h in holds[4:])
    assert list(Expired(stored).stored(8, room).values()) == holds[4:]
    assert list(Expired(stored).stored(8, room - 1).values()) == holds[5:]
    counted = Expired(stored, sum(encoded_bytes(h) for h in holds))
    assert list(counted.stored(2, room).values()) == holds[6:]
    assert counted.counted() == encoded_bytes(holds[6]) + encoded_bytes(holds[7])
    assert len(stored) == 8
    itemized = Expired(stored, encode=True)
    kept = itemized.stored(3, 10**6)
    items = itemized.items()
    assert items is not None and list(items) == list(kept)
    assert b"{" + b"".join(items.values())[1:] + b"}" == codec.encode(kept)


def test_an_entry_spliced_from_its_items_is_the_entry_codec_encodes() -> None:
    many = entry.SPLICED_FROM
    for holds, lapsed in ((0, 0), (many, 0), (0, many), (many // 2, many // 2), (many - 1, 0)):
        book = Ledger(
            tenant='acme"holds":{}"expired":{}',  # no tenant is named so, but its quotes would be escaped
            limit_micro_usd=5,
            holds={f"r-{n}": Hold("", n, NOW, role="planner") for n in range(holds)},
            expired={fingerprint(f"r-{n}"): _expired(n) for n in range(lapsed)},
            settled_ids=fingerprint("r-9"),
        )
        spliced = entry.encode(
            book,
            [encoded_item(rid, hold) for rid, hold in book.holds.items()],
            [encoded_item(fp, hold) for fp, hold in book.expired.items()],
        )
        assert spliced == codec.encode(book)
        assert entry.encode(book) == codec.encode(book)
