"""GitHub's webhook signature: HMAC-SHA256 of the raw body, checked in constant time."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from maestro.github import signature

BODY = b'{"action":"opened","number":7}'


def test_a_body_signed_with_the_secret_verifies() -> None:
    header = "sha256=" + hmac.new(b"s3cret", BODY, hashlib.sha256).hexdigest()
    assert signature.sign(b"s3cret", BODY) == header
    assert signature.verify(b"s3cret", BODY, header)


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "sha256=",
        "sha1=" + hmac.new(b"s3cret", BODY, hashlib.sha1).hexdigest(),
        signature.sign(b"s3cret", BODY + b" "),  # another body
        signature.sign(b"s3cret", BODY).upper(),
        signature.sign(b"s3cret", BODY)[:-1],
        signature.sign(b"s3cret", BODY) + "0",
    ],
)
def test_a_missing_malformed_or_wrong_signature_does_not(header: str | None) -> None:
    assert not signature.verify(b"s3cret", BODY, header)


def test_another_tenants_secret_does_not_verify() -> None:
    assert not signature.verify(b"acme-secret", BODY, signature.sign(b"globex-secret", BODY))


def test_the_comparison_is_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    compared: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    good = signature.sign(b"s3cret", BODY)
    flipped = good[:-1] + ("1" if good.endswith("0") else "0")
    assert signature.verify(b"s3cret", BODY, good) and not signature.verify(b"s3cret", BODY, flipped)
    assert len(compared) == 2 and compared[0] == (good.encode(), good.encode())
