"""The credentials family: API keys, tokens, private keys and passwords in a request, found, never shown.

scanner.py scans a request and masks what it finds; program.py compiles every rule into one RE2
program and finds candidates; rules.py and vendors.py hold the formats (vendors.py the prefixed tokens
of the rule sets secret scanners maintain), context.py the secrets known by their carrier; values.py
judges a candidate value (placeholder, reference to a secret manager, name, random enough).
"""

from __future__ import annotations

from maestro.policy.policies.credentials.scanner import (
    MASK,
    MAX_CANDIDATES,
    POLICY,
    CredentialsPolicy,
    MaskedText,
    check,
    mask_found,
    mask_text,
    redact,
    scan,
)

__all__ = [
    "MASK",
    "MAX_CANDIDATES",
    "POLICY",
    "CredentialsPolicy",
    "MaskedText",
    "check",
    "mask_found",
    "mask_text",
    "redact",
    "scan",
]
