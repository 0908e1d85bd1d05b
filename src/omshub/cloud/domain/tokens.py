"""Secrets the head-end hands out (API tokens, gateway credentials): only their SHA-256 hash is
stored. They are random, so a fast hash is enough and keeps the uplink hot path cheap
(passwords, chosen by people, get argon2 in services/accounts.py)."""

from __future__ import annotations

import hashlib
import secrets


def hash_secret(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


def new_secret() -> str:
    return secrets.token_urlsafe(32)  # 256 bit
