"""The states of a remote configuration operation (services/operations.py):
PENDING -> DELIVERED -> SUCCESSFUL | FAILED, or SUPERSEDED by a newer one."""

from __future__ import annotations

PENDING, DELIVERED, SUCCESSFUL, FAILED, SUPERSEDED = ("PENDING", "DELIVERED", "SUCCESSFUL", "FAILED", "SUPERSEDED")
STATES = (PENDING, DELIVERED, SUCCESSFUL, FAILED, SUPERSEDED)
OPEN_STATES = (PENDING, DELIVERED)  # unfinished: an uplink may still advance them
MAX_ERROR_LEN = 2_000


def error_message(cfg_error: dict) -> str:
    """The reason a gateway gave for refusing a configuration, as stored with its operation."""
    msg = cfg_error.get("message")
    text = msg if isinstance(msg, str) and msg else "gateway refused the configuration (no reason given)"
    return text[:MAX_ERROR_LEN]
