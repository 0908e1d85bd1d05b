"""The configuration part of an uplink's answer: advance the gateway's operations from what it
reports (the version it runs, a refusal), work out its next expected contact, and hand it the
desired configuration it does not run yet. Operations themselves are created by
services/operations.py; their states are domain/operations.py's."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from croniter import croniter
from sqlalchemy import select
from sqlalchemy.orm import Session

from omshub.cloud.domain.operations import DELIVERED, FAILED, OPEN_STATES, PENDING, SUCCESSFUL, error_message
from omshub.cloud.store.models import Gateway, GatewayConfigVersion, Operation
from omshub.protocol.config import GatewayConfig, cron_for_croniter, spread_offset
from omshub.times import utc


def running_config(session: Session, gateway: Gateway) -> dict | None:
    """The configuration the gateway reports it runs (None: factory default / unknown version)."""
    if not gateway.applied_config_version:
        return None
    row = session.scalars(
        select(GatewayConfigVersion).where(
            GatewayConfigVersion.gateway_id == gateway.id,
            GatewayConfigVersion.version == gateway.applied_config_version,
        )
    ).first()
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
    start = (utc(now) - offset).astimezone(tz)
    fire = croniter(cron_for_croniter(cfg.upload.cron), start).get_next(datetime)
    return utc(fire) + offset


def on_uplink(
    session: Session, gateway: Gateway, *, applied_version: int, cfg_error: dict | None, now: datetime
) -> dict | None:
    """Advance the gateway's operations from what an uplink reports; return the desired
    configuration to deliver in the response (None when the gateway runs it already, or when it
    refused exactly that version)."""
    now = utc(now)
    gateway.applied_config_version = applied_version
    refused = None
    if (
        isinstance(cfg_error, dict)
        and isinstance(cfg_error.get("version"), int)
        and not isinstance(cfg_error.get("version"), bool)
    ):
        refused = cfg_error["version"]
    ops = list(
        session.scalars(
            select(Operation)
            .where(Operation.gateway_id == gateway.id, Operation.state.in_(OPEN_STATES))
            .order_by(Operation.config_version)
        )
    )
    for op in ops:
        if cfg_error is not None and op.config_version == refused and applied_version != refused:
            op.state = FAILED
            op.error = error_message(cfg_error)
            op.finished_at = now
            op.delivered_at = op.delivered_at or now
        elif applied_version >= op.config_version:
            op.state = SUCCESSFUL
            op.finished_at = now
            op.delivered_at = op.delivered_at or now

    # The gateway schedules from the configuration it runs: a fallback for the next contact when
    # it did not report one itself (status.next_contact).
    if gateway.next_contact_at is None or utc(gateway.next_contact_at) <= now:
        gateway.next_contact_at = expected_next_contact(gateway, running_config(session, gateway), now)

    desired = gateway.desired_config_version or 0
    if desired == 0 or desired == applied_version:
        return None
    current = session.scalars(
        select(Operation).where(Operation.gateway_id == gateway.id, Operation.config_version == desired)
    ).first()
    if current is not None and current.state == FAILED:
        return None  # resending a refused version would fail again on every uplink
    row = session.scalars(
        select(GatewayConfigVersion).where(
            GatewayConfigVersion.gateway_id == gateway.id, GatewayConfigVersion.version == desired
        )
    ).first()
    if row is None:
        return None
    if current is not None and current.state == PENDING:
        current.state = DELIVERED
        current.delivered_at = now
    return {**row.config, "version": desired}
