"""GET /v1/policy/decisions: what the guards decided over time, by verdict and by rule that fired, for the
console's Policy page.

It reads the guards' tallies (services/guard/tally.py) stored since a time (maestro/stream_range.py) and
sums them per step over the guards and, unless one tenant is asked for, over the tenants the caller sees: a
tenant's token its own tenant only, an operator's every tenant or the one it names. The summing is pure
(`history`).
"""

from __future__ import annotations

import logging
import math
import re
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from aiohttp import web
from nats.errors import Error as NatsError

from maestro import codec, operations, topics
from maestro.access.grants import Caller
from maestro.access.http_auth import Gate, listing_for
from maestro.bus import Bus
from maestro.http import error, json_answer, route
from maestro.listing import Query
from maestro.since import LONGEST
from maestro.stream_range import read_range
from proto.v1 import DecisionHistory, DecisionPoint, DecisionTally
from services.orchestrator.bodies import only, since_of, tenant_of

log = logging.getLogger(__name__)

POINTS = 60
"""How many steps a window is cut into when the reader names no step."""
MAX_POINTS = 2_000
"""The most steps one answer has: a smaller step over a longer window is refused (400)."""
MAX_TALLIES = 20_000
"""The most tallies one answer reads (a guard stores one per tenant with decisions every MAESTRO_TALLY_S);
past it the answer is partial."""

_PARAMS = tuple(p.name for p in operations.GET_POLICY_DECISIONS.params)
_STEP = re.compile(operations.STEP_PATTERN)
_UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86_400}


class BadStep(ValueError):
    """A `step` that is not a span, or one that cuts the window into too many points; the text says which."""


# -- pure ---------------------------------------------------------------------------------------------------
def parse_step(text: str) -> float:
    """The seconds a `step` names: a whole number of seconds, or with a unit (`30s`, `5m`, `1h`, `1d`).

    Raises BadStep for anything else, for 0, and for a step longer than the longest window.
    """
    found = _STEP.match(text)
    if not found:
        raise BadStep(f"step={text[:40]} is not a span: seconds, or a number with s, m, h or d (5m, 1h)")
    seconds = float(int(found.group(1)) * _UNIT_S[found.group(2)])
    if seconds <= 0 or seconds > LONGEST.total_seconds():
        raise BadStep(f"step={text[:40]} is not between 1 second and {LONGEST.days} days")
    return seconds


def step_for(window: timedelta, asked_s: float | None, tally_s: float) -> float:
    """The step a window is cut into: the one asked for, or the window / POINTS, never less than the guards'
    tally interval (finer steps would be empty but one in several), in whole seconds.

    Raises BadStep when the step would cut the window into more than MAX_POINTS points.
    """
    wanted = asked_s if asked_s is not None else window.total_seconds() / POINTS
    step_s = float(math.ceil(max(wanted, tally_s, 1.0)))
    if _points(window, step_s) > MAX_POINTS:
        raise BadStep(
            f"a step of {step_s:g}s cuts the window into more than {MAX_POINTS} points: ask for a longer one"
        )
    return step_s


def _points(window: timedelta, step_s: float) -> int:
    return max(1, math.ceil(window.total_seconds() / step_s))


def history(
    tallies: Iterable[DecisionTally], since: datetime, now: datetime, step_s: float, *, partial: bool = False
) -> DecisionHistory:
    """The tallies summed per step from `since` to `now` (each by the step its interval began in; one that
    began before `since` counts in the first, one stamped after `now` in the last), and over the window."""
    count = _points(now - since, step_s)
    verdicts: list[Counter[str]] = [Counter() for _ in range(count)]
    rules: list[Counter[str]] = [Counter() for _ in range(count)]
    for tally in tallies:
        index = math.floor((tally.at - since).total_seconds() / step_s)
        index = min(max(index, 0), count - 1)
        verdicts[index].update(tally.verdicts)
        rules[index].update(tally.rules)
    return DecisionHistory(
        since=since,
        step_s=step_s,
        points=[
            DecisionPoint(at=since + timedelta(seconds=i * step_s), verdicts=_sorted(v), rules=_sorted(r))
            for i, (v, r) in enumerate(zip(verdicts, rules, strict=True))
        ],
        verdicts=_sorted(sum(verdicts, Counter())),
        rules=_sorted(sum(rules, Counter())),
        partial=partial,
    )


def _sorted(counts: Counter[str]) -> dict[str, int]:
    return {key: counts[key] for key in sorted(counts) if counts[key]}


# -- the route ----------------------------------------------------------------------------------------------
def _query_problem(request: web.Request) -> web.Response | None:
    """400 for a parameter the route does not take, or one given twice."""
    if refused := only(request, _PARAMS):
        return refused
    for name in request.query:
        if len(request.query.getall(name)) > 1:
            return error(400, f"{name} is given more than once", field=name)
    return None


async def read_tallies(bus: Bus, tenant: str | None, since: datetime) -> tuple[list[DecisionTally], bool]:
    """The tallies of `tenant` (None: every tenant's) stored since `since`, and whether there were more than
    MAX_TALLIES. A message that is no tally is skipped (only guards may publish there)."""
    subject = topics.DECISION_TALLIES.all if tenant is None else topics.DECISION_TALLIES.subject(tenant)
    stored = await read_range(bus.js, topics.STREAM_TALLIES, [subject], since, limit=MAX_TALLIES)
    tallies: list[DecisionTally] = []
    for message in stored.messages:
        try:
            tallies.append(codec.decode(DecisionTally, message.data))
        except codec.DecodeError as exc:
            log.warning("skipped a decision tally that does not decode (seq %d): %s", message.seq, exc)
    return tallies, stored.partial


def decision_routes(bus: Bus, gate: Gate) -> list[web.RouteDef]:
    """GET /v1/policy/decisions, behind the token gate."""

    async def decisions(request: web.Request, caller: Caller) -> web.StreamResponse:
        if refused := _query_problem(request):
            return refused
        asked = request.query.get("tenant")
        if asked is not None and isinstance(checked := tenant_of(asked, "tenant"), web.Response):
            return checked
        narrowed = listing_for(caller, Query(tenant=asked))
        if isinstance(narrowed, web.Response):
            return narrowed
        now = datetime.now(UTC)
        since = since_of(request, now)
        if isinstance(since, web.Response):
            return since
        try:
            step = request.query.get("step")
            step_s = step_for(
                now - since, parse_step(step) if step is not None else None, bus.settings.tally_s
            )
        except BadStep as exc:
            return error(400, str(exc), field="step")
        try:
            tallies, partial = await read_tallies(bus, narrowed.tenant, since)
        except (NatsError, TimeoutError) as exc:
            log.warning("could not read the decision tallies: %r", exc)
            return error(503, "could not read the guards' decision tallies; try again")
        return json_answer(history(tallies, since, now, step_s, partial=partial))

    return [route(operations.GET_POLICY_DECISIONS, gate.guarded(decisions))]
