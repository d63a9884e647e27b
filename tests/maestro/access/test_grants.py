"""API tokens, pure: minted, presented, checked; and what a grant allows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from maestro import codec
from maestro.access.grants import BadToken, Caller, check, digest, mint, token_id
from proto.v1.access import TokenGrant

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def test_a_minted_token_opens_its_grant_and_only_its_digest_is_kept() -> None:
    minted = mint(tenant="acme", scopes=["read", "submit"], subject="alice", now=NOW)
    secret = minted.token.split("_", 2)[2]
    assert minted.token.startswith(f"mst_{minted.grant.id}_") and len(secret) == 43
    assert minted.grant.scopes == ("submit", "read")  # in the order of SCOPES, whatever was given
    stored = codec.encode(minted.grant)
    assert secret.encode() not in stored and digest(secret).encode() in stored
    assert codec.decode(TokenGrant, stored) == minted.grant  # valid on the wire
    assert check(minted.token, minted.grant, NOW) == minted.grant
    assert token_id(minted.token) == minted.grant.id


def test_two_tokens_never_share_an_id_or_a_secret() -> None:
    tokens = {mint(tenant="acme", scopes=["read"], subject="a", now=NOW).token for _ in range(200)}
    assert len(tokens) == 200 and len({token_id(t) for t in tokens}) == 200


@pytest.mark.parametrize(
    "presented",
    [
        "",
        "Bearer x",
        "mst_",
        "mst_0123456789abcdef",
        "mst_0123456789ABCDEF_" + "a" * 43,
        "xst_0123456789abcdef_" + "a" * 43,
    ],
)
def test_what_is_not_a_token_is_refused_before_any_lookup(presented: str) -> None:
    with pytest.raises(BadToken, match="not a Maestro token"):
        token_id(presented)


def test_a_wrong_secret_an_unknown_id_and_an_expired_grant_open_nothing() -> None:
    minted = mint(tenant="acme", scopes=["read"], subject="a", now=NOW, expires_at=NOW + timedelta(hours=1))
    wrong = minted.token[:-1] + ("A" if minted.token[-1] != "A" else "B")
    with pytest.raises(BadToken, match="wrong secret"):
        check(wrong, minted.grant, NOW)
    with pytest.raises(BadToken, match="unknown or revoked"):
        check(minted.token, None, NOW)
    assert check(minted.token, minted.grant, NOW + timedelta(minutes=59)) == minted.grant
    with pytest.raises(BadToken, match="expired"):
        check(minted.token, minted.grant, NOW + timedelta(hours=1))


def test_mint_refuses_what_no_one_could_use() -> None:
    with pytest.raises(ValueError, match="at least one scope"):
        mint(tenant="acme", scopes=[], subject="a", now=NOW)
    with pytest.raises(ValueError, match="before it is made"):
        mint(tenant="acme", scopes=["read"], subject="a", now=NOW, expires_at=NOW)
    for tenant, subject in (("Not A Tenant", "a"), ("acme", "has space"), ("acme", "")):
        with pytest.raises(ValueError, match=r"tenant|subject"):
            mint(tenant=tenant, scopes=["read"], subject=subject, now=NOW)


def test_a_grant_allows_its_scopes_in_its_tenant_and_admin_allows_every_scope() -> None:
    reader = Caller("a", "acme", frozenset({"read"}), "id")
    assert reader.may("read", "acme") and not reader.may("submit", "acme")
    assert not reader.may("read", "globex") and not reader.sees("globex")
    admin = Caller("a", "acme", frozenset({"admin"}), "id")
    assert all(admin.may(s, "acme") for s in ("submit", "read", "approve", "admin"))
    assert not admin.may("read", "globex") and not admin.operator
    operator = Caller("ops", "*", frozenset({"admin"}), "id")
    assert operator.may("approve", "globex") and operator.operator
    assert Caller.anyone().operator and not Caller.anyone().authenticated
