"""Recently expired holds, remembered so that a commit arriving after its hold's ttl is still charged.

A hold that expires gives its money back to the tenant at once (a dead worker must not lock budget), but
the work may still be running and commit later. What that commit needs is kept here under the reservation
id's fingerprint (services/budget/settled.py), oldest first: the amount that was held (charged when the
usage's model has no price), the role and model to count the charge under, and when the hold expired, for
the event that announces the late commit (the task id is spelled by the commit's reservation id). An
entry encodes smaller than the largest open hold (its key is 12 characters, a reservation id up to 69),
so the ledger bounds both together (ledger.py).
"""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

from services.budget.settled import WIDTH, fingerprint

NUMBERS_BYTES = 72
"""At most what the numbers and punctuation of one open or expired hold take in the encoded entry: an
amount (16 digits), an epoch time as a float (24 characters), a count of tokens (13 digits), and quotes,
commas, brackets and a colon."""
LARGEST_BYTES = WIDTH + len("implementer") + 128 + NUMBERS_BYTES
"""What the largest expired hold takes: the longest role and the longest model name."""


class ExpiredHold(msgspec.Struct, frozen=True, array_like=True):
    """A hold that expired uncommitted (array-encoded: it is repeated)."""

    amount_micro_usd: int
    expired_at: float
    """Epoch seconds: the ttl's end, not the touch that noticed it."""
    role: str = ""
    model: str = ""


def encoded_bytes(hold: ExpiredHold) -> int:
    """At most what one expired hold takes in the encoded entry."""
    return WIDTH + len(hold.role) + len(hold.model) + NUMBERS_BYTES


class Expired:
    """The expired holds of one batch of operations: those stored, plus those the batch expires."""

    def __init__(self, stored: Mapping[str, ExpiredHold]) -> None:
        self._holds = dict(stored)

    def __contains__(self, rid: object) -> bool:
        return isinstance(rid, str) and fingerprint(rid) in self._holds

    def __len__(self) -> int:
        return len(self._holds)

    def get(self, rid: str) -> ExpiredHold | None:
        """`rid`'s expired hold, or None when none is remembered."""
        return self._holds.get(fingerprint(rid))

    def add(self, rid: str, hold: ExpiredHold) -> None:
        """Remember an expired hold (the newest last)."""
        fp = fingerprint(rid)
        self._holds.pop(fp, None)
        self._holds[fp] = hold

    def pop(self, rid: str) -> ExpiredHold | None:
        """Forget `rid`'s expired hold and return it, or None when none is remembered."""
        return self._holds.pop(fingerprint(rid), None)

    def stored(self, kept: int, room: int) -> dict[str, ExpiredHold]:
        """What to store: the newest expired holds, at most `kept` of them and `room` bytes, oldest first."""
        if len(self._holds) <= kept and len(self._holds) * LARGEST_BYTES <= room:
            return self._holds  # all of them fit, whatever their names
        items = list(self._holds.items())[max(0, len(self._holds) - kept) :]
        if len(items) * LARGEST_BYTES > room:  # else all of them fit, whatever their names
            used = 0
            for n in range(len(items) - 1, -1, -1):
                used += encoded_bytes(items[n][1])
                if used > room:
                    items = items[n + 1 :]
                    break
        return self._holds if len(items) == len(self._holds) else dict(items)
