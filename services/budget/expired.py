"""Recently expired holds, remembered so that a commit arriving after its hold's ttl is still charged.

A hold that expires gives its money back to the tenant at once (a dead worker must not lock budget), but
the work may still be running and commit later. What that commit needs is kept here under the reservation
id's fingerprint (services/budget/settled.py), oldest first: the amount that was held (charged when the
usage's model has no price), the role and model to count the charge under, and when the hold expired, for
the event that announces the late commit (the task id is spelled by the commit's reservation id). An
entry encodes smaller than the largest open hold (its key is 12 characters, a reservation id up to 66),
so the ledger bounds both together (ledger.py).
"""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

from services.budget.settled import fingerprint


class ExpiredHold(msgspec.Struct, frozen=True, array_like=True):
    """A hold that expired uncommitted (array-encoded: it is repeated)."""

    amount_micro_usd: int
    expired_at: float
    """Epoch seconds: the ttl's end, not the touch that noticed it."""
    role: str = ""
    model: str = ""


class Expired:
    """The expired holds of one batch of operations: those stored, plus those the batch expires."""

    def __init__(self, stored: Mapping[str, ExpiredHold]) -> None:
        self._holds = dict(stored)

    def __contains__(self, rid: object) -> bool:
        return isinstance(rid, str) and fingerprint(rid) in self._holds

    def add(self, rid: str, hold: ExpiredHold) -> None:
        """Remember an expired hold (the newest last)."""
        fp = fingerprint(rid)
        self._holds.pop(fp, None)
        self._holds[fp] = hold

    def pop(self, rid: str) -> ExpiredHold | None:
        """Forget `rid`'s expired hold and return it, or None when none is remembered."""
        return self._holds.pop(fingerprint(rid), None)

    def stored(self, kept: int) -> dict[str, ExpiredHold]:
        """What to store: the newest `kept` expired holds, oldest first."""
        if len(self._holds) <= kept:
            return self._holds
        return dict(list(self._holds.items())[len(self._holds) - kept :])
