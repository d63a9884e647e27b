"""Reservations drawing from a workflow's escrow hold: what is drawn, what is left, what goes back."""

from __future__ import annotations

import msgspec

from maestro import codec
from proto.v1 import Reservation, Reserve, SetBudget, Settlement
from proto.v1.budget import MAX_ATTEMPT, MAX_TTL_S, reservation_id_for
from proto.v1.ids import MAX_MICRO_USD, MAX_TOKENS
from services.budget.entry import LARGEST_HOLD_BYTES, Hold, hold_bytes
from services.budget.ledger import Ledger
from tests.services.budget.test_ledger import NOW, commit, empty, one, release, reserve, run, view

ESCROW = reservation_id_for("wf1--escrow")


def step(task: str, amount: int, escrow: str | None = ESCROW, **fields: object) -> Reserve:
    return reserve(task, amount, escrow=escrow, **fields)  # type: ignore[arg-type]


def granted(answer: object) -> Reservation:
    assert isinstance(answer, Reservation) and answer.granted, answer
    return answer


def refused(answer: object) -> Reservation:
    assert isinstance(answer, Reservation) and not answer.granted, answer
    return answer


def escrowed(limit: int, amount: int) -> Ledger:
    """A ledger of `limit` holding a workflow's escrow of `amount`."""
    book, answer = one(empty(limit), reserve("wf1--escrow", amount))
    assert granted(answer).reservation_id == ESCROW
    return book


def held(book: Ledger, rid: str) -> int:
    return book.holds[rid].amount_micro_usd


def test_a_tenant_with_room_for_one_escrow_cannot_open_a_second() -> None:
    book = escrowed(1000, 600)
    after, answer = one(book, reserve("wf2--escrow", 600))
    assert "budget exceeded" in refused(answer).reason and after == book


def test_steps_draw_from_their_escrow_when_the_free_budget_is_nothing() -> None:
    book = escrowed(1000, 1000)  # all the tenant has
    assert view(book).remaining_micro_usd == 0
    applied = run(book, step("s1", 400), step("s2", 600))
    first, second = (granted(a) for a in applied.answers)
    assert (first.held_micro_usd, first.drawn_micro_usd) == (400, 400)
    assert (second.held_micro_usd, second.drawn_micro_usd) == (600, 600)
    book = applied.ledger
    # Money moved from the escrow to the steps: the tenant's held money counts it once.
    assert (held(book, ESCROW), held(book, "r-s1"), held(book, "r-s2")) == (0, 400, 600)
    v = view(book)
    assert (v.held_micro_usd, v.remaining_micro_usd, v.holds) == (1000, 0, 3)
    # A plain reservation still finds nothing free.
    assert "budget exceeded" in refused(one(book, reserve("other", 1))[1]).reason


def test_a_step_larger_than_what_is_left_takes_the_rest_from_the_free_budget_or_is_refused() -> None:
    book = run(escrowed(1000, 500), step("s1", 300)).ledger  # 200 left in escrow, 500 free
    book, answer = one(book, step("s2", 450))
    assert (granted(answer).held_micro_usd, granted(answer).drawn_micro_usd) == (450, 200)
    assert held(book, ESCROW) == 0
    v = view(book)
    assert (v.held_micro_usd, v.remaining_micro_usd) == (750, 250)
    # Nothing left in the escrow: a step holds all of its estimate from what is free, if it can.
    assert granted(one(book, step("s3", 250))[1]).drawn_micro_usd == 0
    after, answer = one(book, step("s3", 251))
    assert (
        "held 750 + estimate 251 after 0 drawn from escrow r-wf1--escrow > limit 1000"
        in refused(answer).reason
    )
    assert after == book  # a refusal draws nothing


def test_a_step_refused_for_what_the_escrow_cannot_cover_draws_nothing() -> None:
    book = escrowed(1000, 800)  # 200 free
    after, answer = one(book, step("s1", 1001))
    assert "held 800 + estimate 201 after 800 drawn" in refused(answer).reason
    assert after == book and held(after, ESCROW) == 800


def test_releasing_or_committing_a_step_settles_the_tenant_and_the_escrow_keeps_what_is_left() -> None:
    book = run(escrowed(1000, 600), step("s1", 300), step("s2", 200)).ledger
    book, freed = one(book, release("s1"))
    # The step's money goes back to the tenant's free budget, not to the escrow.
    assert isinstance(freed, Settlement) and freed.released_micro_usd == 300
    assert held(book, ESCROW) == 100 and view(book).remaining_micro_usd == 700
    book, charged = one(book, commit("s2", 150))
    assert isinstance(charged, Settlement) and (charged.charged_micro_usd, charged.released_micro_usd) == (
        150,
        50,
    )
    book, ended = one(book, release("wf1--escrow"))
    assert isinstance(ended, Settlement) and ended.released_micro_usd == 100 and not ended.already_settled
    v = view(book)
    assert (v.spent_micro_usd, v.held_micro_usd, v.remaining_micro_usd, v.holds) == (150, 0, 850, 0)


def test_an_emptied_escrow_stays_open_and_its_release_gives_back_nothing() -> None:
    book = run(escrowed(1000, 300), step("s1", 300)).ledger
    assert ESCROW in book.holds and held(book, ESCROW) == 0
    again = granted(one(book, reserve("wf1--escrow", 300))[1])
    assert again.held_micro_usd == 0  # reserving the escrow again finds it, as it now is
    book, ended = one(book, release("wf1--escrow"))
    assert isinstance(ended, Settlement) and ended.released_micro_usd == 0 and not ended.already_settled
    assert view(book).held_micro_usd == 300


def test_an_escrow_id_naming_no_open_hold_reserves_as_without_one() -> None:
    base = escrowed(1000, 400)
    settled = run(base, release("wf1--escrow")).ledger
    expired = run(escrowed(1000, 400), reserve("x", 0), now=NOW + 61).ledger  # its ttl was 60 s
    globex = Ledger(tenant="globex", limit_micro_usd=1000)  # another tenant's ledger never holds acme's
    for book, escrow in (
        (base, reservation_id_for("nothing--escrow")),
        (settled, ESCROW),
        (expired, ESCROW),
        (globex, ESCROW),
    ):
        plain = run(book, reserve("s1", 300)).ledger
        drawing, answer = one(book, step("s1", 300, escrow=escrow))
        assert granted(answer).drawn_micro_usd == 0 and drawing == plain
        too_much = reserve("s1", view(book).remaining_micro_usd + 1)
        assert (
            run(book, step("s1", too_much.estimate_micro_usd, escrow=escrow)).answers
            == run(book, too_much).answers
        )


def test_reserving_a_step_again_finds_its_hold_and_draws_once() -> None:
    book, first = one(escrowed(1000, 500), step("s1", 300))
    again = run(book, step("s1", 300), step("s1", 300))
    assert again.answers == [first, first] and not again.changed
    assert granted(first).drawn_micro_usd == 300 and held(again.ledger, ESCROW) == 200
    # Settled, the step is found and holds nothing, whatever the escrow has left.
    done = run(book, commit("s1", 100)).ledger
    replay = run(done, step("s1", 300))
    assert not replay.changed and granted(replay.answers[0]).reason == "already settled"
    assert held(done, ESCROW) == 200


def test_steps_in_one_batch_never_overspend_their_escrow_and_the_free_budget() -> None:
    book = escrowed(1000, 700)  # 300 free
    applied = run(book, *(step(f"s{n}", 100) for n in range(20)))
    assert sum(isinstance(a, Reservation) and a.granted for a in applied.answers) == 10
    assert sum(a.drawn_micro_usd for a in applied.answers if isinstance(a, Reservation)) == 700
    v = view(applied.ledger)
    assert (v.held_micro_usd, v.remaining_micro_usd, v.holds) == (1000, 0, 11)


def test_tokens_are_drawn_from_the_escrow_like_money() -> None:
    book = run(empty(1000, limit_tokens=100), reserve("wf1--escrow", 500, estimate_tokens=80)).ledger
    book, answer = one(book, step("s1", 100, estimate_tokens=50))
    assert granted(answer).drawn_micro_usd == 100
    assert book.holds[ESCROW].tokens == 30 and book.holds["r-s1"].tokens == 50
    assert view(book).held_tokens == 80
    # 30 tokens left in the escrow, 20 free: a step of 51 is refused, one of 50 is granted.
    assert "token budget exceeded" in refused(one(book, step("s2", 10, estimate_tokens=51))[1]).reason
    book, answer = one(book, step("s2", 10, estimate_tokens=50))
    assert granted(answer) and view(book).held_tokens == 100 and book.holds[ESCROW].tokens == 0


def test_the_ceiling_and_sub_limits_apply_to_a_steps_whole_hold() -> None:
    book = escrowed(1000, 800)
    book = run(
        book,
        SetBudget(tenant="acme", task_ceiling_micro_usd=500),
        SetBudget(tenant="acme", scope="role", name="implementer", limit_micro_usd=300),
    ).ledger
    assert "per-task ceiling of 500" in refused(one(book, step("s1", 501))[1]).reason
    assert (
        "role implementer budget exceeded"
        in refused(one(book, step("s1", 301, role="implementer"))[1]).reason
    )
    book, answer = one(book, step("s1", 300, role="implementer"))
    assert granted(answer).drawn_micro_usd == 300 and view(book).roles["implementer"].held_micro_usd == 300
    # What an escrow held under the same role moves within the role's tally: it is not counted twice.
    own = run(empty(1000), SetBudget(tenant="acme", scope="role", name="planner", limit_micro_usd=400)).ledger
    own = run(own, reserve("wf1--escrow", 400, role="planner")).ledger
    own, answer = one(own, step("p1", 400, role="planner"))
    assert granted(answer).drawn_micro_usd == 400 and view(own).roles["planner"].held_micro_usd == 400


def test_a_workflows_escrow_is_not_held_to_the_per_task_ceiling_but_to_the_tenants_limit() -> None:
    # Found by whoever built the escrow: a tenant's per-task ceiling refused any workflow whose steps
    # together cost more than one task may, though each step fits it.
    book = run(empty(1000), SetBudget(tenant="acme", task_ceiling_micro_usd=300)).ledger
    assert "per-task ceiling" in refused(one(book, reserve("wf1--escrow", 800))[1]).reason
    book, answer = one(book, reserve("wf1--escrow", 800, for_workflow=True))
    assert granted(answer).held_micro_usd == 800
    assert "budget exceeded" in refused(one(book, reserve("wf2--escrow", 800, for_workflow=True))[1]).reason
    assert "per-task ceiling" in refused(one(book, step("s1", 301))[1]).reason  # each step still is


def test_a_step_its_escrow_covers_is_granted_while_the_tenant_is_over_its_limit() -> None:
    book = run(escrowed(1000, 500), reserve("t1", 100), commit("t1", 1100)).ledger  # spent past the limit
    assert view(book).remaining_micro_usd < 0
    assert "over its limit" in refused(one(book, reserve("t2", 1))[1]).reason
    assert granted(one(book, step("s1", 500))[1]).drawn_micro_usd == 500
    assert "over its limit" in refused(one(book, step("s1", 501))[1]).reason


def test_a_step_of_a_free_model_draws_nothing() -> None:
    book, answer = one(escrowed(1000, 500), step("s1", 300, model="local"))
    assert (granted(answer).held_micro_usd, granted(answer).drawn_micro_usd) == (0, 0)
    assert held(book, ESCROW) == 500


def test_a_hold_drawn_from_an_escrow_takes_no_more_room_than_the_entry_counts() -> None:
    rid = reservation_id_for("t" * 64, MAX_ATTEMPT)
    fat = Hold("", MAX_MICRO_USD, NOW + MAX_TTL_S, MAX_TOKENS, "implementer", "m" * 128, MAX_MICRO_USD)
    for hold in (fat, msgspec.structs.replace(fat, drawn_micro_usd=0)):
        assert len(codec.encode({rid: hold})) - len(b"{}") <= hold_bytes(rid, hold) <= LARGEST_HOLD_BYTES


def test_a_step_estimated_at_nothing_is_granted_from_its_escrow_while_the_tenant_is_over() -> None:
    book = run(escrowed(1000, 0), reserve("t1", 100), commit("t1", 1100)).ledger
    assert "over its limit" in refused(one(book, reserve("t2", 0))[1]).reason
    after, answer = one(book, step("s1", 0))
    assert granted(answer).drawn_micro_usd == 0 and held(after, ESCROW) == 0 and after.holds["r-s1"]
