"""Remote configuration as operations (issue 3 item 8).

A desired configuration set for a gateway becomes a new `GatewayConfigVersion` and an
`Operation` that moves PENDING -> DELIVERED (handed to the gateway in an uplink response)
-> SUCCESSFUL (the gateway reports the version as applied) | FAILED (the gateway refused it,
`cfg_error`). A newer configuration for the same gateway marks older unfinished operations
SUPERSEDED. Input: sessions and ORM rows; output: rows changed in the session (the caller
commits).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from croniter import croniter
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from omshub.gateway.config import ConfigError, GatewayConfig, cron_for_croniter, spread_offset, validate_config

from .models import Gateway, GatewayConfigVersion, Operation

PENDING, DELIVERED, SUCCESSFUL, FAILED, SUPERSEDED = (
    "PENDING", "DELIVERED", "SUCCESSFUL", "FAILED", "SUPERSEDED")
STATES = (PENDING, DELIVERED, SUCCESSFUL, FAILED, SUPERSEDED)
OPEN_STATES = (PENDING, DELIVERED)
# A selection of gateways in one request; bounded so one call cannot build an unbounded transaction.
MAX_GATEWAYS_PER_REQUEST = 10_000
MAX_ERROR_LEN = 2_000


def _utc(dt: datetime) -> datetime:
    # SQLite hands back naive datetimes even for timezone=True columns; they are UTC.
    return dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt.astimezone(timezone.utc)


def normalized_config(config: dict) -> dict:
    """Validate a configuration (without its version, which the head-end assigns) and return the
    full dict with every default filled in. Raises ConfigError."""
    if not isinstance(config, dict):
        raise ConfigError("configuration must be a JSON object")
    body = {k: v for k, v in config.items() if k != "version"}
    return validate_config(body).model_dump(mode="json")


def running_config(session: Session, gateway: Gateway) -> dict | None:
    """The configuration the gateway reports it runs (None: factory default / unknown version)."""
    if not gateway.applied_config_version:
        return None
    row = session.scalars(select(GatewayConfigVersion).where(
        GatewayConfigVersion.gateway_id == gateway.id,
        GatewayConfigVersion.version == gateway.applied_config_version)).first()
    return row.config if row is not None else None


def expected_next_contact(gateway: Gateway, config: dict | None, now: datetime) -> datetime | None:
    """Next time the gateway should upload: the next firing of its upload cron (in the config's
    time zone) shifted by the gateway's stable spread offset, strictly after `now`. `config`
    None means the factory default configuration. Returns UTC, or None if the config is invalid."""
    try:
        cfg = GatewayConfig.model_validate(config) if config else GatewayConfig()
    except ValueError:
        return None
    offset = timedelta(seconds=spread_offset(gateway.serial, cfg.spread_s))
    tz = ZoneInfo(cfg.timezone)
    # The gateway fires at cron time + offset: the next such time after `now` is the next cron
    # time after `now - offset`.
    start = (_utc(now) - offset).astimezone(tz)
    fire = croniter(cron_for_croniter(cfg.upload.cron), start).get_next(datetime)
    return _utc(fire) + offset


def _api_error(status: int, code: str, message: str) -> Exception:
    from .api.common import ApiError  # the API layer's error type; imported late to keep this module light
    return ApiError(status, code, message)


def set_desired_config(session: Session, principal, gateway_ids: list[int], config: dict, *,
                       now: datetime | None = None) -> list[Operation]:
    """Set `config` as the desired configuration of each gateway (all of the principal's
    tenant); one new version and one PENDING operation per gateway. Unknown ids -> 404."""
    now = _utc(now or datetime.now(timezone.utc))
    try:
        body = normalized_config(config)
    except ConfigError as exc:
        raise _api_error(422, "invalid_config", f"configuration rejected: {exc}") from None
    ids = list(dict.fromkeys(int(i) for i in gateway_ids))
    if not ids:
        raise _api_error(422, "invalid_request", "no gateway selected")
    if len(ids) > MAX_GATEWAYS_PER_REQUEST:
        raise _api_error(422, "invalid_request",
                         f"at most {MAX_GATEWAYS_PER_REQUEST} gateways per request, got {len(ids)}")
    gateways: dict[int, Gateway] = {}
    latest: dict[int, int] = {}
    open_ops: dict[int, list[Operation]] = {}
    for chunk in range(0, len(ids), 500):  # bounded IN lists
        part = ids[chunk:chunk + 500]
        for gw in session.scalars(select(Gateway).where(
                Gateway.tenant_id == principal.tenant_id, Gateway.id.in_(part)).with_for_update()):
            gateways[gw.id] = gw
        latest.update(session.execute(
            select(GatewayConfigVersion.gateway_id, func.max(GatewayConfigVersion.version))
            .where(GatewayConfigVersion.gateway_id.in_(part))
            .group_by(GatewayConfigVersion.gateway_id)).all())
        for op in session.scalars(select(Operation).where(
                Operation.gateway_id.in_(part), Operation.state.in_(OPEN_STATES))):
            open_ops.setdefault(op.gateway_id, []).append(op)
    missing = [i for i in ids if i not in gateways]
    if missing:
        from .api.common import not_found
        raise not_found(f"gateway {missing[0]}")

    created: list[Operation] = []
    for gid in ids:
        gw = gateways[gid]
        prev = latest.get(gid) or 0
        # Also above what the gateway runs: it ignores a version it already has.
        version = max(prev, gw.desired_config_version or 0, gw.applied_config_version or 0) + 1
        session.add(GatewayConfigVersion(tenant_id=gw.tenant_id, gateway_id=gid, version=version,
                                         config={**body, "version": version}, created_at=now,
                                         created_by=principal.name))
        gw.desired_config_version = version
        expected = gw.next_contact_at if gw.next_contact_at and _utc(gw.next_contact_at) > now else \
            expected_next_contact(gw, running_config(session, gw), now)
        op = Operation(tenant_id=gw.tenant_id, gateway_id=gid, kind="config", config_version=version,
                       state=PENDING, created_at=now, created_by=principal.name,
                       expected_contact_at=expected)
        session.add(op)
        created.append(op)
    session.flush()
    for op in created:
        for old in open_ops.get(op.gateway_id, []):
            old.state = SUPERSEDED
            old.superseded_by = op.id
            old.finished_at = now
    session.flush()
    return created


def _error_message(cfg_error: dict) -> str:
    msg = cfg_error.get("message")
    text = msg if isinstance(msg, str) and msg else "gateway refused the configuration (no reason given)"
    return text[:MAX_ERROR_LEN]


def on_uplink(session: Session, gateway: Gateway, *, applied_version: int, cfg_error: dict | None,
              now: datetime) -> dict | None:
    """Advance the gateway's operations from what an uplink reports; return the desired
    configuration to deliver in the response (None when the gateway runs it already, or when it
    refused exactly that version)."""
    now = _utc(now)
    gateway.applied_config_version = applied_version
    refused = None
    if isinstance(cfg_error, dict) and isinstance(cfg_error.get("version"), int) \
            and not isinstance(cfg_error.get("version"), bool):
        refused = cfg_error["version"]
    ops = list(session.scalars(select(Operation).where(
        Operation.gateway_id == gateway.id, Operation.state.in_(OPEN_STATES))
        .order_by(Operation.config_version)))
    for op in ops:
        if refused is not None and op.config_version == refused and applied_version != refused:
            op.state = FAILED
            op.error = _error_message(cfg_error)
            op.finished_at = now
            op.delivered_at = op.delivered_at or now
        elif applied_version >= op.config_version:
            op.state = SUCCESSFUL
            op.finished_at = now
            op.delivered_at = op.delivered_at or now

    # The gateway schedules from the configuration it runs: a fallback for the next contact when
    # it did not report one itself (status.next_contact).
    if gateway.next_contact_at is None or _utc(gateway.next_contact_at) <= now:
        gateway.next_contact_at = expected_next_contact(gateway, running_config(session, gateway), now)

    desired = gateway.desired_config_version or 0
    if desired == 0 or desired == applied_version:
        return None
    current = session.scalars(select(Operation).where(
        Operation.gateway_id == gateway.id, Operation.config_version == desired)).first()
    if current is not None and current.state == FAILED:
        return None  # resending a refused version would fail again on every uplink
    row = session.scalars(select(GatewayConfigVersion).where(
        GatewayConfigVersion.gateway_id == gateway.id,
        GatewayConfigVersion.version == desired)).first()
    if row is None:
        return None
    if current is not None and current.state == PENDING:
        current.state = DELIVERED
        current.delivered_at = now
    return {**row.config, "version": desired}
