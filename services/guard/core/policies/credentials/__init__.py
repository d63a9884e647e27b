"""The credentials family: API keys, tokens, private keys and passwords in a request, found, never shown.

scanner.py scans a request and masks what it finds; rules.py and vendors.py hold the formats as RE2
patterns (vendors.py the prefixed tokens of the rule sets secret scanners maintain); values.py judges a
candidate value (placeholder, reference to a secret manager, name, random enough).
"""

from __future__ import annotations

from services.guard.core.policies.credentials.scanner import (
    MASK,
    MAX_CANDIDATES,
    POLICY,
    CredentialsPolicy,
    check,
    mask_text,
    redact,
    scan,
)

__all__ = ["MASK", "MAX_CANDIDATES", "POLICY", "CredentialsPolicy", "check", "mask_text", "redact", "scan"]
