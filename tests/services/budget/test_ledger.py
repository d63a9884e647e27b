"""The pure ledger: holds, charges, releases, idempotency, refusals, expiry, windows, sub-limits, alerts."""

from __future__ import annotations

from datetime import UTC, datetime

from msgspec.structs import replace

from maestro import codec
from maestro.pricing import Price, PriceTable
from maestro.settings import Settings
from proto.v1 import (
    ROLES,
    Commit,
    GetLedger,
    HoldExpired,
    LateCommit,
    LedgerView,
    Overage,
    Release,
    Reservation,
    Reserve,
    SetBudget,
    Settlement,
    ThresholdCrossed,
    Usage,
    WindowRolled,
)
from proto.v1.budget import MAX_ATTEMPT, reservation_id_for
from proto.v1.ids import MAX_MICRO_USD, MAX_TOKENS
from services.budget import ledger, settled
from services.budget.ledger import Applied, Busy, Ledger, Operation, Refused, Touch, Unknown

NOW = datetime(2025, 3, 14, 12, 0, tzinfo=UTC).timestamp()
# Model "m" costs 1 micro-USD per input token, so a commit of n input tokens costs n.
PRICES = PriceTable({"m": Price(1_000_000, 0), "local": Price(0, 0), "secret": None}, Price(3_000_000, 0))


def empty(limit: int = 1000, **fields: object) -> Ledger:
    return Ledger(tenant="acme", limit_micro_usd=limit, **fields)  # type: ignore[arg-type]


def reserve(task: str, amount: int, ttl: float = 60.0, **fields: object) -> Reserve:
    return Reserve(tenant="acme", task_id=task, estimate_micro_usd=amount, ttl_s=ttl, **fields)  # type: ignore[arg-type]


def commit(task: str, cost: int, model: str = "m", attempt: int = 1) -> Commit:
    usage = Usage(model=model, input_tokens=cost)
    return Commit(tenant="acme", reservation_id=reservation_id_for(task, attempt), usage=usage)


def release(task: str, attempt: int = 1) -> Release:
    return Release(tenant="acme", reservation_id=reservation_id_for(task, attempt))


def run(book: Ledger, *ops: Operation, now: float = NOW) -> Applied:
    return ledger.apply(book, ops, now, PRICES)


def one(book: Ledger, op: Operation, now: float = NOW) -> tuple[Ledger, object]:
    applied = run(book, op, now=now)
    return applied.ledger, applied.answers[0]


def view(book: Ledger, now: float = NOW) -> LedgerView:
    answer = run(book, GetLedger(tenant="acme"), now=now).answers[0]
    assert isinstance(answer, LedgerView)
    return answer


def test_reserve_holds_the_estimate_and_commit_charges_the_cost_and_releases_the_rest() -> None:
    held, reservation = one(empty(), reserve("t1", 300))
    assert isinstance(reservation, Reservation)
    assert reservation.granted and reservation.reservation_id == "r-t1"
    assert reservation.held_micro_usd == 300 and reservation.remaining_micro_usd == 700
    committed, settlement = one(held, commit("t1", 120))
    assert settlement == Settlement(
        tenant="acme",
        reservation_id="r-t1",
        charged_micro_usd=120,
        released_micro_usd=180,
        remaining_micro_usd=880,
    )
    v = view(committed)
    assert (v.spent_micro_usd, v.held_micro_usd, v.remaining_micro_usd, v.holds) == (120, 0, 880, 0)
    assert v.models["m"].spent_micro_usd == 120 and v.spent_tokens == 120


def test_the_input_ledger_is_never_changed() -> None:
    start = empty()
    run(start, reserve("t1", 300), commit("t1", 100))
    assert start == empty()


def test_each_operation_is_idempotent() -> None:
    once, first = one(empty(), reserve("t1", 300))
    twice, second = one(once, reserve("t1", 300))
    assert second == first and twice == once
    done, charged = one(once, commit("t1", 100))
    assert isinstance(charged, Settlement) and charged.charged_micro_usd == 100
    again = run(done, commit("t1", 100), release("t1"), reserve("t1", 300))
    assert not again.changed and again.ledger is done
    repeat_commit, repeat_release, repeat_reserve = again.answers
    assert isinstance(repeat_commit, Settlement) and repeat_commit.already_settled
    assert repeat_commit.charged_micro_usd == 100  # what the first commit charged
    assert isinstance(repeat_release, Settlement) and repeat_release.already_settled
    assert isinstance(repeat_reserve, Reservation) and repeat_reserve.granted
    assert repeat_reserve.held_micro_usd == 0 and repeat_reserve.reason == "already settled"

    held2, _ = one(done, reserve("t2", 200))
    freed, settlement = one(held2, release("t2"))
    assert isinstance(settlement, Settlement) and settlement.released_micro_usd == 200
    assert not settlement.already_settled
    assert view(freed).held_micro_usd == 0 and view(freed).spent_micro_usd == 100


def test_refused_when_the_limit_cannot_cover_the_estimate_naming_the_amounts() -> None:
    book = run(empty(1000), reserve("t1", 600), commit("t1", 500), reserve("t2", 300)).ledger
    after, refusal = one(book, reserve("t3", 201))
    assert isinstance(refusal, Reservation) and not refusal.granted and refusal.reservation_id == ""
    assert refusal.reason == "budget exceeded: spent 500 + held 300 + estimate 201 > limit 1000 micro-USD"
    assert after == book
    _, exact = one(book, reserve("t3", 200))
    assert isinstance(exact, Reservation) and exact.granted and exact.remaining_micro_usd == 0


def test_expired_holds_are_dropped_on_any_touch_with_an_event_each() -> None:
    held, _ = one(empty(), reserve("t1", 600, ttl=10))
    assert view(held, NOW + 9).held_micro_usd == 600
    touched = run(held, Touch("acme"), now=NOW + 10)
    assert touched.changed and touched.ledger.held_micro_usd == 0 and touched.ledger.holds == {}
    (event,) = touched.events
    assert isinstance(event, HoldExpired) and (event.reservation_id, event.released_micro_usd) == (
        "r-t1",
        600,
    )


def test_a_commit_in_the_batch_that_expires_its_hold_still_charges_it_as_a_late_one() -> None:
    held, _ = one(empty(), reserve("t1", 600, ttl=10))
    applied = run(held, commit("t1", 400), now=NOW + 20)
    settlement = applied.answers[0]
    assert isinstance(settlement, Settlement) and settlement.charged_micro_usd == 400
    assert settlement.late and not settlement.already_settled
    assert (applied.ledger.spent_micro_usd, applied.ledger.held_micro_usd) == (400, 0)
    assert [type(e) for e in applied.events] == [LateCommit]  # and no expiry announced besides
    _, again = one(applied.ledger, commit("t1", 400), now=NOW + 21)
    assert isinstance(again, Settlement) and again.already_settled and again.charged_micro_usd == 400


def test_an_overage_is_charged_in_full_marked_and_blocks_new_reservations() -> None:
    held, _ = one(empty(1000), reserve("t1", 900))
    applied = run(held, commit("t1", 1200))
    settlement = applied.answers[0]
    assert isinstance(settlement, Settlement)
    assert (settlement.charged_micro_usd, settlement.released_micro_usd, settlement.overage_micro_usd) == (
        1200,
        0,
        300,
    )
    overage = [e for e in applied.events if isinstance(e, Overage)]
    assert len(overage) == 1 and overage[0].overage_micro_usd == 300
    assert view(applied.ledger).overage_micro_usd == 300
    _, refusal = one(applied.ledger, reserve("t2", 0))
    assert isinstance(refusal, Reservation) and not refusal.granted and "over its limit" in refusal.reason


def test_a_free_model_passes_without_budget_and_an_unpriced_one_is_refused_alone() -> None:
    spent = run(empty(100), reserve("t1", 100), commit("t1", 100)).ledger  # nothing left
    free = run(
        spent, reserve("t2", 50, model="local"), reserve("t3", 0, model="secret"), reserve("t4", 1, model="m")
    )
    local, unpriced, priced = free.answers
    assert isinstance(local, Reservation) and local.granted and local.held_micro_usd == 0
    assert (
        isinstance(unpriced, Reservation)
        and not unpriced.granted
        and "'secret' has no price" in unpriced.reason
    )
    assert isinstance(priced, Reservation) and not priced.granted and "over its limit" not in priced.reason
    roomy = run(empty(), reserve("t5", 10, model="secret"), reserve("t6", 10, model="m"))
    assert [a.granted for a in roomy.answers if isinstance(a, Reservation)] == [False, True]
    # Usage of an unpriced model (the worker used another model than reserved) is charged its hold.
    settled = run(roomy.ledger, commit("t6", 5, model="secret")).answers[0]
    assert (
        isinstance(settled, Settlement) and settled.charged_micro_usd == 10 and "no price" in settled.reason
    )


def test_sub_limits_per_role_and_model_in_money_and_tokens_and_the_task_ceiling() -> None:
    book = run(
        empty(10_000),
        SetBudget(tenant="acme", scope="role", name="planner", limit_micro_usd=500),
        SetBudget(tenant="acme", scope="model", name="m", limit_tokens=1000),
        SetBudget(tenant="acme", task_ceiling_micro_usd=800),
    ).ledger
    answers = run(
        book,
        reserve("p1", 400, role="planner"),
        reserve("p2", 200, role="planner"),
        reserve("i1", 700, role="implementer"),
        reserve("m1", 100, model="m", estimate_tokens=900),
        reserve("m2", 100, model="m", estimate_tokens=200),
        reserve("big", 900),
    ).answers
    granted = [a.granted for a in answers if isinstance(a, Reservation)]
    assert granted == [True, False, True, True, False, False]
    reasons = [a.reason for a in answers if isinstance(a, Reservation)]
    assert reasons[1].startswith("role planner budget exceeded")
    assert reasons[4].startswith("model m token budget exceeded")
    assert "per-task ceiling of 800" in reasons[5]
    v = view(run(book, *[reserve("p1", 400, role="planner")]).ledger)
    assert v.roles["planner"].held_micro_usd == 400 and v.roles["planner"].limit_micro_usd == 500
    assert v.models["m"].limit_tokens == 1000 and v.task_ceiling_micro_usd == 800


def test_a_daily_window_rolls_over_at_midnight_utc_keeping_holds_and_nothing_else() -> None:
    book = run(empty(1000), SetBudget(tenant="acme", window="daily")).ledger
    assert book.window_id == "2025-03-14"
    book = run(book, reserve("a", 300), commit("a", 300), reserve("b", 200, ttl=86_400)).ledger
    before_midnight = datetime(2025, 3, 14, 23, 59, 59, tzinfo=UTC).timestamp()
    assert view(book, before_midnight).spent_micro_usd == 300
    midnight = datetime(2025, 3, 15, tzinfo=UTC).timestamp()
    rolled = run(book, GetLedger(tenant="acme"), now=midnight)
    v = rolled.answers[0]
    assert isinstance(v, LedgerView) and v.window_id == "2025-03-15"
    assert (v.spent_micro_usd, v.held_micro_usd, v.carried_micro_usd) == (0, 200, 0)
    assert v.previous is not None and (v.previous.window_id, v.previous.spent_micro_usd) == (
        "2025-03-14",
        300,
    )
    assert [type(e) for e in rolled.events] == [WindowRolled]
    # The hold made yesterday is charged today, once.
    settled = run(rolled.ledger, commit("b", 150), now=midnight + 1)
    assert settled.ledger.spent_micro_usd == 150 and settled.ledger.held_micro_usd == 0


def test_carry_over_moves_what_was_left_to_the_next_window() -> None:
    book = run(empty(1000), SetBudget(tenant="acme", window="monthly", carry_over=True)).ledger
    book = run(book, reserve("a", 400), commit("a", 400)).ledger
    april = datetime(2025, 4, 1, 0, 0, 1, tzinfo=UTC).timestamp()
    v = view(book, april)
    assert (v.window_id, v.carried_micro_usd, v.remaining_micro_usd) == ("2025-04", 600, 1600)


def test_alerts_fire_once_per_threshold_and_window() -> None:
    book = empty(1000)
    crossed: list[int] = []
    for n, cost in enumerate((400, 150, 10, 300, 140, 0)):
        applied = run(book, reserve(f"t{n}", cost), commit(f"t{n}", cost))
        book = applied.ledger
        crossed += [e.percent for e in applied.events if isinstance(e, ThresholdCrossed)]
    assert crossed == [50, 80, 100]
    tomorrow = run(
        run(book, SetBudget(tenant="acme", window="daily")).ledger,
        SetBudget(tenant="acme", limit_micro_usd=10**6),
        now=NOW + 86_400,
    ).ledger
    again = run(tomorrow, reserve("x", 600_000), commit("x", 600_000), now=NOW + 86_401)
    assert [e.percent for e in again.events if isinstance(e, ThresholdCrossed)] == [50]


def test_past_the_bound_on_open_holds_a_reservation_is_told_to_retry_not_refused() -> None:
    book = run(empty(10**9), *(reserve(f"t{n}", 1) for n in range(ledger.MAX_HOLDS))).ledger
    full = run(book, reserve("one-more", 1), reserve("t7", 1), reserve("too-dear", 10**9))
    busy, existing, dear = full.answers
    assert isinstance(busy, Busy) and busy.retry_after_s > 0
    assert f"{ledger.MAX_HOLDS} open reservations" in busy.reason
    assert isinstance(existing, Reservation) and existing.granted  # its own hold, found
    # Money comes first: what cannot be afforded is a verdict, whatever the room.
    assert isinstance(dear, Reservation) and not dear.granted and "budget exceeded" in dear.reason
    assert not full.changed and view(full.ledger).holds == ledger.MAX_HOLDS
    after, granted = one(run(book, release("t1")).ledger, reserve("one-more", 1))
    assert isinstance(granted, Reservation) and granted.granted and view(after).holds == ledger.MAX_HOLDS


def test_settled_ids_are_bounded() -> None:
    book = empty(10**9)
    ops: list[Operation] = []
    for n in range(ledger.SETTLED_KEPT + 10):
        ops += [reserve(f"t{n}", 1), release(f"t{n}")]
    book = run(book, *ops).ledger
    assert len(book.settled_ids) == ledger.SETTLED_KEPT * settled.WIDTH
    _, forgotten = one(book, reserve("t9", 1))
    _, remembered = one(book, reserve("t10", 1))
    assert isinstance(forgotten, Reservation) and (forgotten.held_micro_usd, forgotten.reason) == (1, "")
    assert isinstance(remembered, Reservation) and remembered.reason == "already settled"


def test_settled_ids_match_only_whole_fingerprints() -> None:
    straddling = "x" * 6 + settled.fingerprint("r-9") + "y" * 6  # two fingerprints, neither is r-9's
    assert "r-9" not in settled.Settled(straddling, "", [], kept=10)
    assert "r-9" in settled.Settled(straddling, "", ["r-9"], kept=10)


def test_entries_written_before_fingerprints_keep_their_settled_ids() -> None:
    old = Ledger(tenant="acme", limit_micro_usd=100, settled=["r-t1"])
    book, repeat = one(old, reserve("t1", 1))
    assert isinstance(repeat, Reservation) and repeat.reason == "already settled"
    book, _ = one(old, reserve("t2", 1))
    assert book.settled == [] and "r-t1" in settled.Settled(book.settled_ids, "", [], kept=10)


def test_the_ledger_round_trips_through_the_codec_and_reads_older_entries() -> None:
    held = run(
        empty(), reserve("t1", 300, role="planner", model="m"), SetBudget(tenant="acme", window="daily")
    ).ledger
    assert codec.decode(Ledger, codec.encode(held)) == held
    old = b'{"tenant":"acme","limit_micro_usd":5,"held_micro_usd":3,"holds":{"r-t":["t",3,1.0]},"settled":[]}'
    assert codec.decode(Ledger, old).holds["r-t"].amount_micro_usd == 3


def test_new_ledgers_take_the_default_limit() -> None:
    assert ledger.new_ledger("acme", Settings(default_limit_micro_usd=7)).limit_micro_usd == 7


# -- what a commit answers: a replay says what was charged, a late one is charged, an unknown one is named --


def test_a_repeated_commit_answers_what_the_first_one_charged_and_changes_nothing() -> None:
    book = run(empty(10_000), reserve("t1", 300), commit("t1", 120), reserve("t2", 50), release("t2")).ledger
    # Many later settlements, fewer than the ledger remembers.
    for n in range(ledger.SETTLED_KEPT - 10):
        book = run(book, reserve(f"x{n}", 1), commit(f"x{n}", n % 3)).ledger
    repeated = run(book, commit("t1", 999), commit("t2", 5), release("t1"))
    again, released, release_again = repeated.answers
    assert again == Settlement(
        tenant="acme",
        reservation_id="r-t1",
        charged_micro_usd=120,
        already_settled=True,
        remaining_micro_usd=view(book).remaining_micro_usd,
    )
    # A released reservation was charged nothing; a release after a commit stays a no-op.
    assert isinstance(released, Settlement) and (released.already_settled, released.charged_micro_usd) == (
        True,
        0,
    )
    assert isinstance(release_again, Settlement) and release_again.already_settled
    assert release_again.released_micro_usd == 0
    assert not repeated.changed and repeated.ledger is book and not repeated.events


def test_settled_amounts_are_bounded_with_their_ids_and_entries_without_amounts_still_load() -> None:
    book = empty(10**12)
    ops: list[Operation] = []
    for n in range(ledger.SETTLED_KEPT + 10):
        ops += [reserve(f"t{n}", 10**6), commit(f"t{n}", 10**6 + n)]
    book = run(book, *ops).ledger
    assert len(book.settled_amounts) == len(book.settled_ids) == ledger.SETTLED_KEPT * settled.WIDTH
    remembered = run(book, commit("t10", 1)).answers[0]
    assert isinstance(remembered, Settlement) and remembered.charged_micro_usd == 10**6 + 10

    # An entry written by the previous version: fingerprints, no amounts (an expired hold among them).
    fps = "".join(settled.fingerprint(f"r-old{n}") for n in range(3))
    old = b'{"tenant":"acme","limit_micro_usd":1000,"spent_micro_usd":40,"settled_ids":"%s"}' % fps.encode()
    loaded = codec.decode(Ledger, old)
    assert loaded.settled_amounts == "" and loaded.expired == {}
    replay = run(loaded, commit("old1", 7))
    assert replay.answers[0] == Settlement(
        tenant="acme",
        reservation_id="r-old1",
        charged_micro_usd=0,
        already_settled=True,
        remaining_micro_usd=960,
    )
    assert not replay.changed
    # New settlements on top of it keep their amounts, and the old ids stay settled.
    newer = run(loaded, reserve("new", 100), commit("new", 30)).ledger
    answers = run(newer, commit("new", 1), commit("old2", 1)).answers
    assert [a.charged_micro_usd for a in answers if isinstance(a, Settlement)] == [30, 0]
    assert all(isinstance(a, Settlement) and a.already_settled for a in answers)


def test_a_commit_after_its_hold_expired_is_charged_late_counted_and_announced() -> None:
    held, _ = one(empty(10_000), reserve("t1", 600, ttl=10, role="planner", model="m"))
    expired = run(held, Touch("acme"), now=NOW + 10).ledger
    assert view(expired, NOW + 11).held_micro_usd == 0
    applied = run(expired, commit("t1", 400), now=NOW + 11)
    (late,) = applied.answers
    assert isinstance(late, Settlement)
    assert (late.charged_micro_usd, late.released_micro_usd, late.already_settled, late.late) == (
        400,
        0,
        False,
        True,
    )
    assert late.remaining_micro_usd == 9600 and late.overage_micro_usd == 0
    v = view(applied.ledger, NOW + 11)
    assert (v.spent_micro_usd, v.held_micro_usd, v.spent_tokens, v.overage_micro_usd) == (400, 0, 400, 0)
    assert v.roles["planner"].spent_micro_usd == 400 and v.models["m"].spent_micro_usd == 400
    (event,) = applied.events
    assert event == LateCommit(
        tenant="acme",
        at=datetime.fromtimestamp(NOW + 11, UTC),
        window_id="total",
        reservation_id="r-t1",
        task_id="t1",
        held_micro_usd=600,
        charged_micro_usd=400,
        expired_at=datetime.fromtimestamp(NOW + 10, UTC),
        remaining_micro_usd=9600,
    )
    # Its repeat is a replay: what was charged, nothing changed, no second event.
    replay = run(applied.ledger, commit("t1", 400), now=NOW + 12)
    (again,) = replay.answers
    assert isinstance(again, Settlement) and (again.already_settled, again.charged_micro_usd) == (True, 400)
    assert not replay.changed and not replay.events


def test_a_late_commit_without_a_price_is_charged_its_hold_and_may_take_the_tenant_over() -> None:
    held, _ = one(empty(1000), reserve("t1", 600, ttl=10))
    # The hold expires; its money goes to another task, then the first one commits after all.
    applied = run(held, reserve("t2", 900), commit("t1", 5, model="secret"), now=NOW + 10)
    _, late = applied.answers
    assert isinstance(late, Settlement) and late.late
    assert (late.charged_micro_usd, late.overage_micro_usd, late.remaining_micro_usd) == (600, 500, -500)
    assert "no price" in late.reason and "expired" in late.reason
    v = view(applied.ledger, NOW + 10)
    assert (v.spent_micro_usd, v.held_micro_usd, v.overage_micro_usd) == (600, 900, 500)
    # The expiry and the commit in one batch: one event for both (and the 50% threshold crossed).
    assert [type(e) for e in applied.events if not isinstance(e, ThresholdCrossed)] == [LateCommit]
    _, refused = one(applied.ledger, reserve("t3", 1), now=NOW + 11)
    assert isinstance(refused, Reservation) and not refused.granted


def test_a_task_reserving_again_after_its_hold_expired_gets_no_new_hold_and_is_charged_late() -> None:
    held, _ = one(empty(1000), reserve("t1", 600, ttl=10))
    expired = run(held, Touch("acme"), now=NOW + 10).ledger
    again = run(expired, reserve("t1", 600), commit("t1", 300), now=NOW + 11)
    reservation, settlement = again.answers
    assert isinstance(reservation, Reservation) and reservation.granted
    assert (reservation.held_micro_usd, reservation.reason) == (0, "hold expired")
    assert isinstance(settlement, Settlement) and settlement.late and settlement.charged_micro_usd == 300


def test_a_retry_holds_apart_from_the_committed_attempt_before_it_and_its_commit_is_charged() -> None:
    first = run(empty(1000), reserve("t1", 300), commit("t1", 200)).ledger
    retried, reservation = one(first, reserve("t1", 300, attempt=2))
    assert isinstance(reservation, Reservation) and reservation.granted and not reservation.reason
    assert (reservation.reservation_id, reservation.held_micro_usd) == ("r-t1.2", 300)
    assert (view(retried).held_micro_usd, view(retried).holds) == (300, 1)
    applied = run(retried, commit("t1", 250, attempt=2), commit("t1", 200))
    second, replay = applied.answers
    assert isinstance(second, Settlement) and not second.already_settled
    assert (second.reservation_id, second.charged_micro_usd, second.released_micro_usd) == ("r-t1.2", 250, 50)
    # Attempt 1's commit repeated is still a replay of what it charged, not a charge for attempt 2.
    assert isinstance(replay, Settlement) and replay.already_settled and replay.charged_micro_usd == 200
    assert (view(applied.ledger).spent_micro_usd, view(applied.ledger).held_micro_usd) == (450, 0)
    again = run(applied.ledger, commit("t1", 250, attempt=2), release("t1", attempt=2))
    assert not again.changed and all(isinstance(a, Settlement) and a.already_settled for a in again.answers)
    # A third attempt holds anew too; reserving attempt 2 again finds it settled and holds nothing.
    third = run(applied.ledger, reserve("t1", 100, attempt=2), reserve("t1", 100, attempt=3))
    settled_one, fresh = third.answers
    assert isinstance(settled_one, Reservation) and settled_one.granted and settled_one.held_micro_usd == 0
    assert settled_one.reason == "already settled"
    assert isinstance(fresh, Reservation) and (fresh.reservation_id, fresh.held_micro_usd) == ("r-t1.3", 100)


def test_reserving_the_same_attempt_twice_holds_once() -> None:
    once, first = one(empty(1000), reserve("t1", 300, attempt=2))
    twice, second = one(once, reserve("t1", 300, attempt=2))
    assert second == first and twice == once
    both = run(empty(1000), reserve("t1", 300, attempt=2), reserve("t1", 300, attempt=2))
    assert both.answers[0] == both.answers[1]
    assert (view(both.ledger).held_micro_usd, view(both.ledger).holds) == (300, 1)


def test_the_limits_count_every_attempts_hold_so_retries_cannot_overspend() -> None:
    # Attempt 1 still holds (its worker may yet commit) when attempt 2 asks: both count.
    book = run(empty(1000), reserve("t1", 600, role="planner", model="m")).ledger
    _, refused = one(book, reserve("t1", 600, attempt=2))
    assert isinstance(refused, Reservation) and not refused.granted
    assert refused.reason == "budget exceeded: spent 0 + held 600 + estimate 600 > limit 1000 micro-USD"
    both = run(book, reserve("t1", 400, attempt=2, role="planner", model="m")).ledger
    shown = view(both)
    assert (shown.held_micro_usd, shown.holds, shown.remaining_micro_usd) == (1000, 2, 0)
    assert shown.roles["planner"].held_micro_usd == shown.models["m"].held_micro_usd == 1000
    # Each attempt is charged what it used, once, whatever order the commits come in.
    applied = run(both, commit("t1", 350, attempt=2), commit("t1", 500), commit("t1", 350, attempt=2))
    assert [a.charged_micro_usd for a in applied.answers if isinstance(a, Settlement)] == [350, 500, 350]
    shown = view(applied.ledger)
    assert (shown.spent_micro_usd, shown.held_micro_usd, shown.remaining_micro_usd) == (850, 0, 150)
    assert shown.roles["planner"].spent_micro_usd == shown.models["m"].spent_micro_usd == 850
    _, over = one(applied.ledger, reserve("t1", 151, attempt=3))
    assert isinstance(over, Reservation) and not over.granted


def test_a_retry_holds_anew_after_the_attempt_before_expired_which_is_still_charged_late() -> None:
    held, _ = one(empty(1000), reserve("t1", 600, ttl=10))
    expired = run(held, Touch("acme"), now=NOW + 10)
    (gone,) = expired.events
    assert isinstance(gone, HoldExpired) and (gone.reservation_id, gone.task_id) == ("r-t1", "t1")
    retried = run(expired.ledger, reserve("t1", 600, ttl=10, attempt=2), now=NOW + 11)
    (reservation,) = retried.answers
    assert isinstance(reservation, Reservation) and reservation.reason == ""
    assert (reservation.reservation_id, reservation.held_micro_usd) == ("r-t1.2", 600)
    late = run(retried.ledger, commit("t1", 300), now=NOW + 12)
    (settlement,) = late.answers
    assert isinstance(settlement, Settlement) and settlement.late and settlement.charged_micro_usd == 300
    (event,) = (e for e in late.events if isinstance(e, LateCommit))
    assert event.task_id == "t1"
    # Attempt 2's hold expires in turn, announced under its own id and its task.
    lapsed = run(late.ledger, Touch("acme"), now=NOW + 21)
    (gone,) = lapsed.events
    assert isinstance(gone, HoldExpired) and (gone.reservation_id, gone.task_id) == ("r-t1.2", "t1")
    assert (view(lapsed.ledger, NOW + 21).spent_micro_usd, view(lapsed.ledger, NOW + 21).holds) == (300, 0)


def test_a_commit_for_a_reservation_never_made_is_unknown_and_a_release_changes_nothing() -> None:
    book = run(empty(), reserve("t1", 300)).ledger
    applied = run(book, commit("nope", 100), release("nope"))
    unknown, released = applied.answers
    assert unknown == Unknown(tenant="acme", reservation_id="r-nope")
    assert "unknown reservation 'r-nope'" in unknown.reason
    assert isinstance(released, Settlement) and released.already_settled and released.released_micro_usd == 0
    assert not applied.changed and view(applied.ledger).spent_micro_usd == 0


def test_ids_that_fell_out_of_the_bounded_memory_are_unknown() -> None:
    ops: list[Operation] = []
    for n in range(ledger.SETTLED_KEPT + 1):
        ops += [reserve(f"s{n}", 1), commit(f"s{n}", 1)]
    book = run(empty(10**9), *ops).ledger
    assert isinstance(run(book, commit("s0", 1)).answers[0], Unknown)
    assert isinstance(run(book, commit("s1", 1)).answers[0], Settlement)

    # Expired holds are remembered in the room open holds leave: every one, until new holds need it.
    half = ledger.MAX_HOLDS // 2
    held = run(book, *(reserve(f"e{n}", 1, ttl=10) for n in range(ledger.MAX_HOLDS))).ledger
    expired = run(held, Touch("acme"), now=NOW + 10).ledger
    assert (len(expired.holds), len(expired.expired)) == (0, ledger.MAX_HOLDS)
    crowded = run(expired, *(reserve(f"n{n}", 1) for n in range(half + 1)), now=NOW + 11).ledger
    assert len(crowded.holds) + len(crowded.expired) == ledger.MAX_HOLDS
    answers = run(crowded, commit("e0", 1), commit(f"e{half + 1}", 1), now=NOW + 12).answers
    assert isinstance(answers[0], Unknown)
    assert isinstance(answers[1], Settlement) and answers[1].late


def test_the_fullest_entry_stays_well_under_the_nats_payload_limit() -> None:
    fat = PriceTable({}, Price(10**9, 0))  # 1,000 USD per million tokens: wide amounts

    def task(n: int) -> str:
        return f"t{n:063d}"

    def model(n: int) -> str:
        return f"m{n % 70:03d}".ljust(128, "x")  # as long as a model's name may be, more than MAX_SCOPES

    def fat_reserve(n: int, ttl: float = 60.0) -> Reserve:
        amount = MAX_MICRO_USD // ledger.MAX_HOLDS - n  # together, all that may be held
        role = ROLES[n % len(ROLES)]
        return reserve(
            task(n),
            amount,
            ttl=ttl,
            estimate_tokens=10**8 + n,
            role=role,
            model=model(n),
            attempt=MAX_ATTEMPT,  # the longest reservation ids
        )

    def fat_commit(n: int) -> Commit:
        usage = Usage(model=model(n), input_tokens=10**5)
        return Commit(tenant="acme", reservation_id=reservation_id_for(task(n), MAX_ATTEMPT), usage=usage)

    ops: list[Operation] = []
    for n in range(ledger.SETTLED_KEPT):
        ops += [fat_reserve(n), fat_commit(n)]
    book = ledger.apply(empty(MAX_MICRO_USD), ops, NOW, fat).ledger
    holding = [fat_reserve(10**6 + n, ttl=10) for n in range(ledger.MAX_HOLDS)]
    applied = ledger.apply(book, holding, NOW, fat)
    book = applied.ledger
    # The room runs out before the count does: the rest are told to retry, not refused.
    assert 0 < len(book.holds) < ledger.MAX_HOLDS and len(book.models) == ledger.MAX_SCOPES + 1  # and `other`
    assert all(isinstance(a, Busy) for a in applied.answers[len(book.holds) :])
    # Every sub-limit a ledger keeps, each crossed in money and tokens: the most alert marks.
    limits = [
        SetBudget(tenant="acme", scope="role", name=r, limit_micro_usd=1, limit_tokens=1) for r in ROLES
    ]
    limits += [
        SetBudget(tenant="acme", scope="model", name=model(n), limit_micro_usd=1, limit_tokens=1)
        for n in range(ledger.MAX_SCOPES)
    ]
    book = ledger.apply(book, limits, NOW, fat).ledger
    assert len(book.alerted) == 2 * (len(ROLES) + ledger.MAX_SCOPES)
    expired = ledger.apply(book, [Touch("acme")], NOW + 10, fat).ledger
    assert len(expired.expired) == len(book.holds)
    # New holds are remembered with the expired ones in the room they leave.
    newer = [replace(fat_reserve(2 * 10**6 + n), role="", model=model(64)) for n in range(600)]
    crowded = ledger.apply(expired, newer, NOW + 11, fat).ledger
    assert len(crowded.holds) == 600 and 0 < len(crowded.expired) < len(expired.expired)
    # NATS refuses a payload over 1 MiB by default: keep a fifth of it to spare.
    sizes = [len(codec.encode(entry)) for entry in (book, expired, crowded)]
    assert max(sizes) < 0.8 * 2**20, sizes
    for entry in (book, expired, crowded):  # and every answer decodes with its bounded wire type
        shown = view(entry, NOW + 11)
        assert codec.decode(LedgerView, codec.encode(shown)) == shown


def test_totals_past_their_bounds_on_the_wire_are_refused_and_change_nothing() -> None:
    dear = PriceTable({"dear": Price(10**12, 0), "m": Price(10**6, 0)})  # a million micro-USD a token
    book = ledger.apply(empty(MAX_MICRO_USD), [reserve("a", 10, model="dear")], NOW, dear).ledger
    # A price times a count of tokens, each within its bound, past the bound on money.
    usage = Usage(model="dear", input_tokens=MAX_TOKENS)
    applied = ledger.apply(book, [Commit(tenant="acme", reservation_id="r-a", usage=usage)], NOW, dear)
    (answer,) = applied.answers
    assert isinstance(answer, Refused) and str(MAX_MICRO_USD) in answer.reason and "spent" in answer.reason
    assert not applied.changed and applied.ledger is book
    # The hold stays for a believable commit, and a late one is refused the same way.
    late = ledger.apply(book, [Commit(tenant="acme", reservation_id="r-a", usage=usage)], NOW + 61, dear)
    assert isinstance(late.answers[0], Refused) and len(late.ledger.expired) == 1
    charged = ledger.apply(late.ledger, [commit("a", 5, "dear")], NOW + 62, dear).answers[0]
    assert isinstance(charged, Settlement) and charged.late and charged.charged_micro_usd == 5_000_000
    # Held tokens without a token limit, and spent tokens.
    half = MAX_TOKENS // 2 + 1
    held = run(
        empty(MAX_MICRO_USD), reserve("x", 1, estimate_tokens=half), reserve("y", 1, estimate_tokens=half)
    )
    assert isinstance(held.answers[0], Reservation) and held.answers[0].granted
    assert isinstance(held.answers[1], Refused) and "held tokens" in held.answers[1].reason
    assert str(MAX_TOKENS) in held.answers[1].reason
    pair = (reserve("x", 1), reserve("y", 1), commit("x", half, "local"), commit("y", half, "local"))
    spent = run(empty(MAX_MICRO_USD), *pair)
    assert isinstance(spent.answers[2], Settlement) and isinstance(spent.answers[3], Refused)
    assert "spent tokens" in spent.answers[3].reason and spent.ledger.spent_tokens == half


def test_what_a_window_carries_over_is_capped_at_the_bound_on_money() -> None:
    book = run(empty(MAX_MICRO_USD), SetBudget(tenant="acme", window="daily", carry_over=True)).ledger
    for day in range(1, 4):  # nothing spent: each day would carry all it had
        book = run(book, GetLedger(tenant="acme"), now=NOW + day * 86_400).ledger
    v = view(book, NOW + 3 * 86_400)
    assert v.carried_micro_usd == MAX_MICRO_USD and v.remaining_micro_usd == MAX_MICRO_USD
    assert codec.decode(LedgerView, codec.encode(v)) == v
    # Overspent windows carry their debt, capped the same way: a free hold, charged at a dear price.
    dear = PriceTable({"dear": Price(10**12, 0), "local": Price(0, 0)})
    book = run(empty(0), SetBudget(tenant="acme", window="daily", carry_over=True)).ledger
    for day in range(1, 4):
        overrun = (reserve(f"d{day}", 0, model="local"), commit(f"d{day}", 10**9 - 1, "dear"))
        book = ledger.apply(book, overrun, NOW + day * 86_400, dear).ledger
    v = view(book, NOW + 4 * 86_400)
    assert v.carried_micro_usd == -MAX_MICRO_USD and v.previous is not None
    assert codec.decode(LedgerView, codec.encode(v)) == v


def test_a_sub_limit_must_name_a_role_and_model_sub_limits_are_bounded() -> None:
    answers = run(
        empty(),
        SetBudget(tenant="acme", scope="role", name="wizard", limit_micro_usd=5),
        SetBudget(tenant="acme", scope="model", limit_micro_usd=5),
        *(
            SetBudget(tenant="acme", scope="model", name=f"m{n}", limit_tokens=n)
            for n in range(ledger.MAX_SCOPES)
        ),
        SetBudget(tenant="acme", scope="model", name="one-more", limit_tokens=1),
        SetBudget(tenant="acme", scope="model", name="m0", limit_tokens=7),
        SetBudget(tenant="acme", scope="model", name="m1", remove=True),
        SetBudget(tenant="acme", scope="model", name="one-more", limit_tokens=1),
    ).answers
    wizard, nameless, *added, one_more, changed, removed, now_fits = answers
    assert isinstance(wizard, Refused) and "'wizard' is not a role" in wizard.reason
    assert isinstance(nameless, Refused) and nameless.reason.startswith("name:")
    assert all(isinstance(a, LedgerView) for a in added)
    assert isinstance(one_more, Refused) and f"{ledger.MAX_SCOPES} models" in one_more.reason
    assert isinstance(changed, LedgerView) and changed.models["m0"].limit_tokens == 7
    assert isinstance(removed, LedgerView) and isinstance(now_fits, LedgerView)
    assert len(now_fits.models) == ledger.MAX_SCOPES and "one-more" in now_fits.models
