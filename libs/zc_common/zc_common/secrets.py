"""Refusing secrets nobody should run with: the placeholders we ship, repeated or
guessable strings, anything under 128 bits. A service given one does not start."""

from __future__ import annotations

import math
import re
import string

MIN_SECRET_BITS = 128

# Words that mark a value as a placeholder someone forgot to replace: every shipped
# example secret contains one of these, so none of them can start a service.
PLACEHOLDER_WORDS = ("change-me", "changeme", "change_me", "replace-me", "replaceme", "placeholder",
                     "example", "password", "your-")

_CLASSES = (string.ascii_lowercase, string.ascii_uppercase, string.digits)


def estimated_bits(value: str) -> float:
    """A generous upper bound on a string's entropy: its length times the log of the
    alphabet its character classes span (lower case, upper case, digits, punctuation)."""
    alphabet = sum(len(chars) for chars in _CLASSES if any(c in chars for c in value))
    if any(not any(c in chars for chars in _CLASSES) for c in value):
        alphabet += 16  # '-', '_', '/', '+', …
    return len(value) * math.log2(alphabet) if alphabet > 1 else 0.0


def _has_run(value: str, length: int = 8) -> bool:
    """'abcdefgh', '12345678', '87654321': a keyboard walk, not randomness."""
    codes = [ord(c) for c in value]
    for step in (1, -1):
        run = 1
        for before, after in zip(codes, codes[1:]):
            run = run + 1 if after - before == step else 1
            if run >= length:
                return True
    return False


def weakness(value: str) -> str | None:
    """Why ``value`` must not be used as a secret, or None when it may."""
    lowered = value.lower()
    for word in PLACEHOLDER_WORDS:
        if word in lowered:
            return f"looks like a placeholder ('{word}'): generate one, e.g. `openssl rand -hex 32`"
    if re.search(r"(.)\1{7,}", value):
        return "repeats one character 8 or more times: generate one, e.g. `openssl rand -hex 32`"
    if _has_run(value):
        return "holds a run like 'abcdefgh' or '12345678': generate one, e.g. `openssl rand -hex 32`"
    if len(set(value)) < 8 or estimated_bits(value) < MIN_SECRET_BITS:
        return f"is too guessable (under {MIN_SECRET_BITS} bits): generate one, e.g. `openssl rand -hex 32`"
    return None
