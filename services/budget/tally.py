"""Per-role and per-model totals inside a ledger, and their sub-limits. No I/O."""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

from proto.v1 import ScopeView

OTHER = "other"
"""The tally that counts models beyond a ledger's bound on scopes."""


class Limit(msgspec.Struct, frozen=True, array_like=True):
    """A sub-limit: micro-USD, tokens, or both (None: no limit of that kind)."""

    micro_usd: int | None = None
    tokens: int | None = None


class Tally(msgspec.Struct, frozen=True, array_like=True):
    """What one role or model spent and holds in the current window."""

    spent_micro_usd: int = 0
    held_micro_usd: int = 0
    spent_tokens: int = 0
    held_tokens: int = 0


_SPENT, _HELD, _SPENT_TOKENS, _HELD_TOKENS = range(4)


class Tallies:
    """Mutable role and model tallies for one batch of operations."""

    def __init__(self, roles: Mapping[str, Tally], models: Mapping[str, Tally], max_scopes: int) -> None:
        self._max = max_scopes
        self._scopes: dict[str, dict[str, list[int]]] = {
            "role": {name: list(msgspec.structs.astuple(t)) for name, t in roles.items()},
            "model": {name: list(msgspec.structs.astuple(t)) for name, t in models.items()},
        }

    def _row(self, kind: str, name: str) -> list[int]:
        rows = self._scopes[kind]
        row = rows.get(name)
        if row is None:
            # Past the bound, new names share one row, so a ledger's size does not grow with them.
            if len(rows) >= self._max:
                name = OTHER
            row = rows.setdefault(name, [0, 0, 0, 0])
        return row

    def hold(self, role: str, model: str, amount: int, tokens: int) -> None:
        """Add (or with negative amounts, remove) a hold to its role's and model's tallies."""
        for kind, name in (("role", role), ("model", model)):
            if name:
                row = self._row(kind, name)
                row[_HELD] += amount
                row[_HELD_TOKENS] += tokens

    def spend(self, role: str, model: str, cost: int, tokens: int) -> None:
        """Add a charge to its role's and model's tallies."""
        for kind, name in (("role", role), ("model", model)):
            if name:
                row = self._row(kind, name)
                row[_SPENT] += cost
                row[_SPENT_TOKENS] += tokens

    def new_window(self) -> None:
        """Forget what was spent (holds stay: they belong to work still running)."""
        for rows in self._scopes.values():
            for row in rows.values():
                row[_SPENT] = row[_SPENT_TOKENS] = 0

    def refusal(self, kind: str, name: str, limit: Limit, estimate: int, tokens: int) -> str:
        """Why a reservation does not fit the sub-limit of one role or model, or ''."""
        row = self._scopes[kind].get(name, [0, 0, 0, 0])
        if limit.micro_usd is not None and row[_SPENT] + row[_HELD] + estimate > limit.micro_usd:
            return (
                f"{kind} {name} budget exceeded: spent {row[_SPENT]} + held {row[_HELD]} + estimate "
                f"{estimate} > limit {limit.micro_usd} micro-USD"
            )
        if limit.tokens is not None and row[_SPENT_TOKENS] + row[_HELD_TOKENS] + tokens > limit.tokens:
            return (
                f"{kind} {name} token budget exceeded: spent {row[_SPENT_TOKENS]} + held "
                f"{row[_HELD_TOKENS]} + estimate {tokens} > limit {limit.tokens} tokens"
            )
        return ""

    def spent_against(self, kind: str, limits: Mapping[str, Limit]) -> list[tuple[str, int, int]]:
        """(scope, spent, limit) for every sub-limit of this kind, for alerts."""
        found = []
        for name, limit in limits.items():
            row = self._scopes[kind].get(name, [0, 0, 0, 0])
            if limit.micro_usd is not None:
                found.append((f"{kind}:{name}", row[_SPENT], limit.micro_usd))
            if limit.tokens is not None:
                found.append((f"{kind}:{name}:tokens", row[_SPENT_TOKENS], limit.tokens))
        return found

    def _frozen(self, kind: str) -> dict[str, Tally]:
        return {name: Tally(*row) for name, row in self._scopes[kind].items() if any(row)}

    @property
    def roles(self) -> dict[str, Tally]:
        """The role tallies as stored (empty ones dropped)."""
        return self._frozen("role")

    @property
    def models(self) -> dict[str, Tally]:
        """The model tallies as stored (empty ones dropped)."""
        return self._frozen("model")

    def frozen(self) -> tuple[dict[str, Tally], dict[str, Tally]]:
        """The role and model tallies as stored."""
        return self.roles, self.models


def scope_views(tallies: Mapping[str, Tally], limits: Mapping[str, Limit]) -> dict[str, ScopeView]:
    """What `budget show` prints per role or model: every tally and every sub-limit."""
    views = {}
    for name in sorted(set(tallies) | set(limits)):
        tally = tallies.get(name, Tally())
        limit = limits.get(name, Limit())
        views[name] = ScopeView(
            spent_micro_usd=tally.spent_micro_usd,
            held_micro_usd=tally.held_micro_usd,
            spent_tokens=tally.spent_tokens,
            held_tokens=tally.held_tokens,
            limit_micro_usd=limit.micro_usd,
            limit_tokens=limit.tokens,
        )
    return views
