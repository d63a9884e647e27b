"""A tenant's ledger as it is stored: one KV entry holding its current window, and the bounds on its size.

The entry is written whole on every change, so its size is bounded, and no sequence of valid requests can
take it past NATS's 1 MiB payload limit:
- open holds: at most MAX_HOLDS, and at most HOLD_ROOM_BYTES with the expired holds remembered. A
  reservation beyond either is backpressure, not a refusal (the caller is told to retry once some
  settle). Holds with short model names reach MAX_HOLDS first (~155 bytes each with a 64-character task
  id and an attempt's suffix); holds naming 128-character models reach the room first (~280 bytes each).
- expired holds: as many as the open ones leave room for, in count and in bytes.
- settled ids: SETTLED_KEPT, with what each charged (two 12-character strings each, 48 KB in all).
- role and model tallies: one per role, and MAX_SCOPES models (further models are counted under `other`).
- sub-limits: one per role, and MAX_SCOPES models (a further one is refused with 400: remove one first),
  each with at most two alert marks.
With 64-character task ids at their last attempt, 128-character model names, the widest amounts and every
bound reached, an entry measures under 0.8 MiB (test_ledger.py builds it); a typical busy entry is far
smaller. A hold does not repeat its task id, which its key spells: that is 64 bytes of each hold's ~180,
and what makes room for the memory of expired holds.

Amounts are bounded like the wire's (proto/v1/ids.py): a reservation or a commit that would take what is
held or spent past MAX_MICRO_USD or MAX_TOKENS is refused with 400 and changes nothing, what one window
carries into the next is capped at MAX_MICRO_USD either way, and the limit with the carry counts as at
most MAX_MICRO_USD. So every total stays exact in any language, and every answer decodes with its type.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable

import msgspec

from maestro import codec
from maestro.settings import Settings
from proto.v1 import Window, WindowTotals
from proto.v1.budget import MAX_ATTEMPT, reservation_id_for
from proto.v1.ids import MAX_MICRO_USD
from services.budget.expired import NUMBERS_BYTES, ExpiredHold
from services.budget.tally import Limit, Tally

# How many settled reservation ids a ledger remembers, with what each charged. A commit or release repeated
# while its id is still here answers already_settled=True and changes nothing. A commit arriving after
# this many later settlements finds nothing it knows and is answered Unknown (404): money is never counted
# twice, and the caller learns that the commit was not charged.
SETTLED_KEPT = 2048
# Open holds per ledger: the bound on a hot tenant's entry (about 215 bytes each, encoded, with a
# 64-character task id). Expired holds are remembered in the room the open ones leave.
MAX_HOLDS = 4096
# How long a reserver is told to wait when the ledger holds MAX_HOLDS: every commit or release frees a
# place, and a busy tenant settles many per second.
BACKPRESSURE_RETRY_S = 1.0
# Model tallies, and model sub-limits, per ledger: a few hundred bytes each with a long name.
MAX_SCOPES = 64
# The room open and expired holds may take in an entry, encoded: with everything else at its bounds
# (~60 KB of tallies, sub-limits and alert marks with 128-character names, 48 KB of settled ids), the
# entry stays under 0.8 MiB.
HOLD_ROOM_BYTES = 640 * 1024

_HOLDS = b'"holds":{}'
_EXPIRED = b'"expired":{}'
SPLICED_FROM = 512
"""Open and expired holds from which an entry is spliced from their items (encode). Splicing copies the
rest of the entry (~50 KB of settled ids) once more, and each hold made costs ~0.3 us to encode on its
own: with 256 holds a write saved 9 us (43 -> 34), which batches of 100 operations spent on their new
holds; with 512 it saves 30 us (70 -> 40)."""


class Hold(msgspec.Struct, frozen=True, array_like=True):
    """Money held for one task until it is committed, released, or expires (array-encoded: it is repeated)."""

    task_id: str
    """Empty: the reservation id spells it (task_of_reservation); entries before 0.4.0 repeated it here."""
    amount_micro_usd: int
    expires_at: float
    """Epoch seconds after which the hold is dropped on the next touch."""
    tokens: int = 0
    role: str = ""
    model: str = ""
    drawn_micro_usd: int = 0
    """What of amount_micro_usd came from a workflow's escrow hold (reservations.py), kept so that reserving
    again answers the same; what the hold charges or gives back does not depend on it. Since 0.5.0: a
    replica before it reads the entry (msgspec ignores trailing array items) and drops it when it writes."""


def hold_bytes(rid: str, hold: Hold) -> int:
    """At most what one open hold takes in the encoded entry."""
    drawn = len(str(hold.drawn_micro_usd)) + 1  # a comma and its digits: 2 bytes for most holds
    return len(rid) + len(hold.task_id) + len(hold.role) + len(hold.model) + NUMBERS_BYTES + drawn


LARGEST_HOLD_BYTES = hold_bytes(
    reservation_id_for("t" * 64, MAX_ATTEMPT),
    Hold("t" * 64, 0, 0.0, 0, "implementer", "m" * 128, MAX_MICRO_USD),
)
"""What the largest open hold takes: the longest names, the last attempt's id, drawn from an escrow (and a
task id repeated, as before 0.4.0)."""


def effective_limit(limit_micro_usd: int, carried_micro_usd: int) -> int:
    """A window's limit with what the previous one carried, counted as at most MAX_MICRO_USD."""
    return min(limit_micro_usd + carried_micro_usd, MAX_MICRO_USD)


def carry(limit_micro_usd: int, spent_micro_usd: int) -> int:
    """What a window leaves the next (negative: overspent), capped at MAX_MICRO_USD either way."""
    return max(-MAX_MICRO_USD, min(limit_micro_usd - spent_micro_usd, MAX_MICRO_USD))


class Ledger(msgspec.Struct, frozen=True, kw_only=True):
    """One tenant's money in its current window, with its limits, stored whole as one KV entry."""

    tenant: str
    limit_micro_usd: int
    spent_micro_usd: int = 0
    held_micro_usd: int = 0
    holds: dict[str, Hold] = {}
    settled: list[str] = []
    """Settled reservation ids as entries before 0.3.0 stored them; read, then moved to settled_ids."""
    settled_ids: str = ""
    """Fingerprints of recently settled reservation ids (services/budget/settled.py), at most SETTLED_KEPT."""
    settled_amounts: str = ""
    """What each of the newest settled ids charged, aligned with settled_ids from the end (settled.py)."""
    expired: dict[str, ExpiredHold] = {}
    """Recently expired holds by fingerprint, oldest first (expired.py); with the open ones, MAX_HOLDS."""
    window: Window = "total"
    window_id: str = "total"
    window_start: float = 0.0
    carried_micro_usd: int = 0
    """What the previous window left unspent (negative: overspent), when carry_over is set."""
    carry_over: bool = False
    limit_tokens: int | None = None
    spent_tokens: int = 0
    held_tokens: int = 0
    overage_micro_usd: int = 0
    task_ceiling_micro_usd: int | None = None
    role_limits: dict[str, Limit] = {}
    model_limits: dict[str, Limit] = {}
    roles: dict[str, Tally] = {}
    models: dict[str, Tally] = {}
    alerted: dict[str, int] = {}
    """The highest threshold announced this window, per limit (`tenant`, `role:planner:tokens`, ...)."""
    previous: WindowTotals | None = None

    @property
    def remaining_micro_usd(self) -> int:
        """What a new reservation may still hold; negative when usage overran its estimates."""
        limit = effective_limit(self.limit_micro_usd, self.carried_micro_usd)
        return limit - self.spent_micro_usd - self.held_micro_usd


def new_ledger(tenant: str, settings: Settings) -> Ledger:
    """An empty ledger with the default limit and the total window."""
    return Ledger(tenant=tenant, limit_micro_usd=settings.default_limit_micro_usd)


def spliced(ledger: Ledger) -> bool:
    """Whether encode splices the entry from its holds' items, given them."""
    return len(ledger.holds) + len(ledger.expired) >= SPLICED_FROM


def _items(items: Iterable[bytes]) -> Iterable[bytes]:
    """Items that each start with a comma (expired.encoded_item), as they follow a dict's opening brace."""
    rest = iter(items)
    first = next(rest, None)
    return rest if first is None else itertools.chain((first[1:],), rest)


def encode(
    ledger: Ledger, holds: Iterable[bytes] | None = None, expired: Iterable[bytes] | None = None
) -> bytes:
    """The entry's bytes, with its open and expired holds spliced from their items as encoded when both are
    given (expired.encoded_item, in their order) and there are enough of them (spliced): the same bytes as
    codec.encode(ledger), without encoding every hold again. With 1,500 holds: 0.06 ms instead of 0.16;
    msgspec.Raw fields in their place took longer than encoding them (more copies of the holds)."""
    if holds is None or expired is None or not spliced(ledger):
        return codec.encode(ledger)
    bare = codec.encode(msgspec.structs.replace(ledger, holds={}, expired={}))
    # Found where they are and nowhere else: a quote inside a JSON string is escaped, and before the holds
    # come only the tenant and numbers.
    at_holds = bare.index(_HOLDS) + len(_HOLDS) - 1
    at_expired = bare.index(_EXPIRED, at_holds) + len(_EXPIRED) - 1
    view = memoryview(bare)
    # One join, so the entry is copied once (the items are not copied to join them first).
    return b"".join(
        itertools.chain(
            (view[:at_holds],),
            _items(holds),
            (view[at_holds:at_expired],),
            _items(expired),
            (view[at_expired:],),
        )
    )
