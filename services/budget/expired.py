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

import msgspec

from maestro import codec
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


def encoded_item(key: str, hold: msgspec.Struct) -> bytes:
    """One item of a dict of open or expired holds as the encoded entry spells it after another one:
    `,"key":[...]` (entry.encode)."""
    return b"," + codec.encode(key) + b":" + codec.encode(hold)


class Expired:
    """The expired holds of one batch of operations: those stored, plus those the batch expires.

    Most batches expire nothing and commit no late hold, so the stored holds are copied only when one
    changes; what they take encoded is counted once and then kept up to date, and handed on (counted()),
    and so, once asked for, is each hold's item as encoded (items()).
    """

    def __init__(
        self,
        stored: dict[str, ExpiredHold],
        stored_bytes: int | None = None,
        items: dict[str, bytes] | None = None,
        encode: bool = False,
    ) -> None:
        self._holds = stored
        self._copied = False
        self._bytes = stored_bytes
        """What the holds take in the encoded entry (encoded_bytes of each); None: not counted yet."""
        self._items = items
        """Each hold's item as encoded (encoded_item), in the holds' order; None: not kept."""
        if items is None and encode:
            self._items = {fp: encoded_item(fp, hold) for fp, hold in stored.items()}

    def __contains__(self, rid: object) -> bool:
        return isinstance(rid, str) and fingerprint(rid) in self._holds

    def __len__(self) -> int:
        return len(self._holds)

    def _changing(self) -> dict[str, ExpiredHold]:
        if not self._copied:
            self._holds, self._copied = self._holds.copy(), True
            if self._items is not None:
                self._items = self._items.copy()
        return self._holds

    def get(self, rid: str) -> ExpiredHold | None:
        """`rid`'s expired hold, or None when none is remembered."""
        return self._holds.get(fingerprint(rid))

    def add(self, rid: str, hold: ExpiredHold) -> None:
        """Remember an expired hold (the newest last)."""
        fp = fingerprint(rid)
        holds = self._changing()
        old = holds.pop(fp, None)
        holds[fp] = hold
        if self._items is not None:
            self._items.pop(fp, None)
            self._items[fp] = encoded_item(fp, hold)
        if self._bytes is not None:
            self._bytes += encoded_bytes(hold) - (encoded_bytes(old) if old is not None else 0)

    def pop(self, rid: str) -> ExpiredHold | None:
        """Forget `rid`'s expired hold and return it, or None when none is remembered."""
        fp = fingerprint(rid)
        if fp not in self._holds:
            return None
        hold = self._changing().pop(fp)
        if self._items is not None:
            del self._items[fp]
        if self._bytes is not None:
            self._bytes -= encoded_bytes(hold)
        return hold

    def counted(self) -> int | None:
        """What the holds take in the encoded entry, if counted so far (for Book.summary)."""
        return self._bytes

    def items(self) -> dict[str, bytes] | None:
        """Each hold's item as the entry encodes it, in the holds' order, if kept (for Book.summary)."""
        return self._items

    def _encoded(self) -> int:
        if self._bytes is None:
            self._bytes = sum(encoded_bytes(hold) for hold in self._holds.values())
        return self._bytes

    def stored(self, kept: int, room: int) -> dict[str, ExpiredHold]:
        """What to store: the newest expired holds, at most `kept` of them and `room` bytes, oldest first
        (the older ones are forgotten)."""
        count = len(self._holds)
        if count <= kept and (count * LARGEST_BYTES <= room or self._encoded() <= room):
            return self._holds  # all of them fit
        holds, used = self._changing(), self._encoded()
        forgotten = []
        for fp, hold in holds.items():  # oldest first
            if count <= kept and used <= room:
                break
            forgotten.append(fp)
            count, used = count - 1, used - encoded_bytes(hold)
        for fp in forgotten:
            del holds[fp]
            if self._items is not None:
                del self._items[fp]
        self._bytes = used
        return holds
