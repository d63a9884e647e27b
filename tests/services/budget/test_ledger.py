"""The pure ledger: holds, charges, releases, idempotency, refusals and expiry, without a server."""

from __future__ import annotations

from maestro import codec
from maestro.settings import Settings
from proto.v1 import Commit, GetLedger, Release, Reservation, Reserve, Settlement, Usage
from services.budget import ledger
from services.budget.ledger import Charge, Ledger

NOW = 1_700_000_000.0
U = Usage(model="offline", input_tokens=10, output_tokens=2)


def empty(limit: int = 1000) -> Ledger:
    return Ledger(tenant="acme", limit_micro_usd=limit)


def reserve(task: str, amount: int, ttl: float = 60.0) -> Reserve:
    return Reserve(tenant="acme", task_id=task, estimate_micro_usd=amount, ttl_s=ttl)


def test_reserve_holds_the_estimate_and_commit_charges_the_cost_and_releases_the_rest() -> None:
    held, reservation = ledger.reserve(empty(), reserve("t1", 300), NOW)
    assert reservation.granted and reservation.reservation_id == "r-t1"
    assert reservation.held_micro_usd == 300 and reservation.remaining_micro_usd == 700
    assert ledger.view(held) == ledger.view(held, NOW)
    assert (held.held_micro_usd, held.spent_micro_usd, len(held.holds)) == (300, 0, 1)

    committed, settlement = ledger.commit(
        held, Commit(tenant="acme", reservation_id="r-t1", usage=U), 120, NOW
    )
    assert settlement == Settlement(
        tenant="acme",
        reservation_id="r-t1",
        charged_micro_usd=120,
        released_micro_usd=180,
        remaining_micro_usd=880,
    )
    view = ledger.view(committed)
    assert (view.spent_micro_usd, view.held_micro_usd, view.remaining_micro_usd, view.holds) == (
        120,
        0,
        880,
        0,
    )


def test_the_input_ledger_is_never_changed() -> None:
    start = empty()
    ledger.reserve(start, reserve("t1", 300), NOW)
    assert start == empty()


def test_reserving_the_same_task_twice_returns_the_same_reservation() -> None:
    once, first = ledger.reserve(empty(), reserve("t1", 300), NOW)
    twice, second = ledger.reserve(once, reserve("t1", 300), NOW + 1)
    assert second == first
    assert twice == once


def test_repeated_commit_and_release_change_nothing_and_say_already_settled() -> None:
    held, _ = ledger.reserve(empty(), reserve("t1", 300), NOW)
    commit = Commit(tenant="acme", reservation_id="r-t1", usage=U)
    once, _ = ledger.commit(held, commit, 100, NOW)
    twice, again = ledger.commit(once, commit, 100, NOW)
    assert again.already_settled and again.charged_micro_usd == 0
    assert twice == once
    released, late = ledger.release(once, Release(tenant="acme", reservation_id="r-t1"), NOW)
    assert late.already_settled and released == once

    held2, _ = ledger.reserve(once, reserve("t2", 200), NOW)
    freed, settlement = ledger.release(held2, Release(tenant="acme", reservation_id="r-t2"), NOW)
    assert settlement.released_micro_usd == 200 and not settlement.already_settled
    again_freed, repeat = ledger.release(freed, Release(tenant="acme", reservation_id="r-t2"), NOW)
    assert repeat.already_settled and again_freed == freed
    assert ledger.view(freed).held_micro_usd == 0 and ledger.view(freed).spent_micro_usd == 100


def test_reserving_a_settled_task_again_holds_nothing() -> None:
    held, _ = ledger.reserve(empty(), reserve("t1", 300), NOW)
    done, _ = ledger.commit(held, Commit(tenant="acme", reservation_id="r-t1", usage=U), 100, NOW)
    after, reservation = ledger.reserve(done, reserve("t1", 300), NOW)
    assert reservation.granted and reservation.reservation_id == "r-t1" and reservation.held_micro_usd == 0
    assert after == done


def test_refused_when_the_limit_cannot_cover_the_estimate_naming_the_amounts() -> None:
    held, _ = ledger.reserve(empty(1000), reserve("t1", 600), NOW)
    spent, _ = ledger.commit(held, Commit(tenant="acme", reservation_id="r-t1", usage=U), 500, NOW)
    held2, _ = ledger.reserve(spent, reserve("t2", 300), NOW)
    after, refusal = ledger.reserve(held2, reserve("t3", 201), NOW)
    assert not refusal.granted and refusal.reservation_id == ""
    assert refusal.reason == "budget exceeded: spent 500 + held 300 + estimate 201 > limit 1000 micro-USD"
    assert after == held2
    _, exact = ledger.reserve(held2, reserve("t3", 200), NOW)
    assert exact.granted and exact.remaining_micro_usd == 0


def test_expired_holds_are_dropped_on_any_touch_and_count_as_settled() -> None:
    held, _ = ledger.reserve(empty(), reserve("t1", 600, ttl=10), NOW)
    assert ledger.view(held, NOW + 9).held_micro_usd == 600
    assert ledger.view(held, NOW + 10).held_micro_usd == 0
    after, reservation = ledger.reserve(held, reserve("t2", 700), NOW + 11)
    assert reservation.granted and after.held_micro_usd == 700 and list(after.holds) == ["r-t2"]
    _, late = ledger.commit(after, Commit(tenant="acme", reservation_id="r-t1", usage=U), 100, NOW + 11)
    assert late.already_settled and late.charged_micro_usd == 0


def test_a_commit_settles_its_own_hold_even_past_expiry_when_it_is_still_there() -> None:
    held, _ = ledger.reserve(empty(), reserve("t1", 600, ttl=10), NOW)
    done, settlement = ledger.commit(
        held, Commit(tenant="acme", reservation_id="r-t1", usage=U), 400, NOW + 20
    )
    assert settlement.charged_micro_usd == 400 and done.spent_micro_usd == 400 and done.held_micro_usd == 0


def test_usage_beyond_the_estimate_is_charged_in_full() -> None:
    held, _ = ledger.reserve(empty(1000), reserve("t1", 900), NOW)
    done, settlement = ledger.commit(held, Commit(tenant="acme", reservation_id="r-t1", usage=U), 1200, NOW)
    assert settlement.charged_micro_usd == 1200 and settlement.released_micro_usd == 0
    assert ledger.view(done).remaining_micro_usd == -200
    _, refusal = ledger.reserve(done, reserve("t2", 1), NOW)
    assert not refusal.granted


def test_settled_ids_are_bounded() -> None:
    book = empty(10**9)
    for n in range(ledger.SETTLED_KEPT + 10):
        book, _ = ledger.reserve(book, reserve(f"t{n}", 1), NOW)
        book, _ = ledger.release(book, Release(tenant="acme", reservation_id=f"r-t{n}"), NOW)
    assert len(book.settled) == ledger.SETTLED_KEPT
    assert book.settled[0] == "r-t10" and book.settled[-1] == f"r-t{ledger.SETTLED_KEPT + 9}"


def test_a_batch_applies_in_order_and_reports_whether_anything_changed() -> None:
    start = empty(1000)
    commit = Commit(tenant="acme", reservation_id="r-a", usage=U)
    after, answers, changed = ledger.apply(
        start,
        [
            reserve("a", 600),
            reserve("b", 600),
            Charge(commit, 100),
            reserve("b", 600),
            GetLedger(tenant="acme"),
        ],
        NOW,
    )
    assert changed
    assert [a.granted for a in answers[:2] if isinstance(a, Reservation)] == [True, False]
    assert isinstance(answers[3], Reservation) and answers[3].granted
    assert answers[4] == ledger.view(after)
    assert (after.spent_micro_usd, after.held_micro_usd) == (100, 600)
    same, _, changed_again = ledger.apply(after, [GetLedger(tenant="acme"), Charge(commit, 100)], NOW)
    assert not changed_again and same is after


def test_the_ledger_round_trips_through_the_codec() -> None:
    held, _ = ledger.reserve(empty(), reserve("t1", 300), NOW)
    assert codec.decode(Ledger, codec.encode(held)) == held


def test_cost_prices_tokens_with_the_settings() -> None:
    settings = Settings(price_input_micro_usd_per_token=3, price_output_micro_usd_per_token=15)
    assert ledger.cost(Usage(model="m", input_tokens=1000, output_tokens=100), settings) == 4500
    assert ledger.new_ledger("acme", settings.with_(default_limit_micro_usd=7)).limit_micro_usd == 7
