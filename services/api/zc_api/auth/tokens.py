"""API tokens: random, prefixed so they are recognisable, stored only as a SHA-256."""

from __future__ import annotations

import hashlib
import hmac
import secrets

PREFIX = "zc_"


def new_token() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    # Tokens carry 256 bits of entropy, so a fast hash is enough: no one brute-forces it.
    return hashlib.sha256(token.encode()).hexdigest()


def same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
