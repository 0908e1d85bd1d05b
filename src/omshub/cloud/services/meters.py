"""Meters of a tenant: the rules of their identity (manufacturer, 8-digit id, device type), lookup,
registration, changes and removal.

A meter is (manufacturer, 8-digit id) within a tenant, with its device type, key status and
the gateway that hears it. Registering meters re-queues their telegrams that waited as
"heard but not registered" (requeue_waiting), so they get decoded. The CSV import: meter_import.py.
"""

from __future__ import annotations

import re
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from omshub.cloud.domain.errors import Conflict, Invalid, not_found
from omshub.cloud.services.time_zones import TimeInputError, check_zone, parse_local_time
from omshub.cloud.store.audit import audit
from omshub.cloud.store.database import BulkSql
from omshub.cloud.store.keystore import has_applicable_key
from omshub.cloud.store.models import (
    REDECODABLE_SQL,
    Alarm,
    Gateway,
    Installation,
    Meter,
    MeteringPoint,
    Reading,
    Telegram,
    Tenant,
)
from omshub.cloud.store.telegram_states import WAITING_STATES, requeue_waiting
from omshub.codec.link import DEVICE_TYPES
from omshub.times import utcnow

MANUFACTURER_RE = re.compile(r"^[A-Z@]{3}$")
METER_ID_RE = re.compile(r"^[0-9A-F]{8}$")
DEVICE_TYPE_NAMES = frozenset(DEVICE_TYPES.values())


# --- the rules of a meter's identity (shared by the API, the import and the time settings) ---


def _shown(value) -> str:
    """A cell as an error message shows it: short ones as they are, longer ones (a key pasted into
    the wrong column, say) only by their length, so no error ever repeats key material."""
    text = str(value if value is not None else "")
    return repr(text) if len(text) <= 12 else f"a value of {len(text)} characters"


def check_manufacturer(value: str, where: str = "manufacturer") -> str:
    v = (value or "").strip().upper()
    if not MANUFACTURER_RE.match(v):
        raise ValueError(f"{where}: {_shown(value)} is not a 3-letter manufacturer code (e.g. KAM)")
    return v


def check_meter_id(value: str, where: str = "id") -> str:
    v = (value or "").strip().upper()
    if not METER_ID_RE.match(v):
        raise ValueError(f"{where}: {_shown(value)} is not an 8-digit meter id")
    return v


def check_device_type(value: str | int | None, where: str = "device_type") -> str:
    """A device type name (heat, water, ...) or its EN 13757-7 code (4, 0x04) -> name; '' = unknown."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return ""
    if isinstance(value, int) and not isinstance(value, bool):
        code = value
    else:
        text = str(value).strip().lower()
        if text in DEVICE_TYPE_NAMES:
            return text
        try:
            code = int(text, 16) if text.startswith("0x") else int(text)
        except ValueError:
            raise ValueError(
                f"{where}: {value!r} is not a device type (one of "
                f"{', '.join(sorted(DEVICE_TYPE_NAMES))}, or a code 0-255)"
            ) from None
    if code not in DEVICE_TYPES:
        raise ValueError(f"{where}: device type code {code} is not known")
    return DEVICE_TYPES[code]


def invalid(exc: ValueError) -> Invalid:
    """A broken rule as a refusal: a time input's own code, else invalid_request."""
    return Invalid(str(exc), code=exc.code if isinstance(exc, TimeInputError) else "invalid_request")


# --- lookups ---


def tenant_zone(session: Session, tenant_id: int) -> str:
    """The tenant's local time zone: the zone of dates and times given without one."""
    return session.scalar(select(Tenant.timezone).where(Tenant.id == tenant_id)) or "Europe/Berlin"


def local_time(session: Session, tenant_id: int, text: str | None, where: str) -> datetime | None:
    """A date or time given by a user (API body, CSV cell): without a zone in the tenant's zone."""
    try:
        return parse_local_time(text, tenant_zone(session, tenant_id), where)
    except TimeInputError as exc:
        raise Invalid(str(exc), code=exc.code) from None


def key_present(session: Session, tenant_id: int, manufacturer: str, meter_id: str) -> bool:
    return has_applicable_key(session, tenant_id, manufacturer, meter_id)


def get_meter(session: Session, tenant_id: int, meter_pk: int) -> Meter:
    m = session.scalar(select(Meter).where(Meter.id == meter_pk, Meter.tenant_id == tenant_id))
    if m is None:
        raise not_found(f"meter {meter_pk}", f"Zähler {meter_pk}")
    return m


def gateway_by_id(session: Session, tenant_id: int, gateway_id: int) -> Gateway:
    gw = session.scalar(select(Gateway).where(Gateway.id == gateway_id, Gateway.tenant_id == tenant_id))
    if gw is None:
        raise not_found(f"gateway {gateway_id}", f"Gateway {gateway_id}")
    return gw


def current_installations(session: Session, meter_pks: list[int]) -> dict[int, tuple[Installation, MeteringPoint]]:
    if not meter_pks:
        return {}
    rows = session.execute(
        select(Installation, MeteringPoint)
        .join(MeteringPoint, MeteringPoint.id == Installation.metering_point_id)
        .where(Installation.meter_pk.in_(meter_pks), Installation.removed_at.is_(None))
    )
    return {inst.meter_pk: (inst, mp) for inst, mp in rows}


def current_installations_between(
    session: Session, tenant_id: int, first_pk: int, last_pk: int
) -> dict[int, tuple[Installation, MeteringPoint]]:
    """current_installations of the tenant's meters with ids first_pk..last_pk (a page of meters
    in id order: one range, not a list of a thousand ids to bind)."""
    rows = session.execute(
        select(Installation, MeteringPoint)
        .join(MeteringPoint, MeteringPoint.id == Installation.metering_point_id)
        .where(
            Installation.tenant_id == tenant_id,
            Installation.meter_pk.between(first_pk, last_pk),
            Installation.removed_at.is_(None),
        )
    )
    return {inst.meter_pk: (inst, mp) for inst, mp in rows}


def requeue(session: Session, tenant_id: int, meters: list[tuple[str | None, str]]) -> int:
    """Telegrams that waited for these meters go back to the decode pipeline."""
    total = 0
    postgres = session.get_bind().dialect.name != "sqlite"
    for i in range(0, len(meters), 500):
        part = meters[i : i + 500]
        if postgres:
            # Wait for a decode batch that holds these telegrams (row locks) to commit: it may have
            # looked the meter up before this registration, and its outcome (unknown_meter) must
            # be requeued too, not slip past the update below. (SQLite: that batch holds the one
            # write lock, so it has committed.) The `new` ones and the waiting ones separately, each
            # through its own index, never through the meters' whole history.
            # (one array parameter, BulkSql.isin: 500 bound parameters cost more to build and
            # send than the look-up; a meter import of 50,000 makes 200 of these)
            sql = BulkSql(session, False)
            isin, params = sql.isin("meter_id", sorted({mid for _, mid in part}))
            waiting = ", ".join(f"'{state}'" for state in WAITING_STATES)
            for states in ("state = 'new'", f"{REDECODABLE_SQL} AND state IN ({waiting})"):
                sql.rows(
                    f"SELECT id FROM telegrams WHERE tenant_id = %s AND {isin} AND {states} FOR UPDATE",
                    (tenant_id, *params),
                )
        total += requeue_waiting(session, tenant_id, part)
    return total


# --- registration, changes, removal ---


def register_meter(
    session: Session,
    tenant_id: int,
    manufacturer: str,
    meter_id: str,
    *,
    device_type: str | int | None = None,
    gateway_id: int | None = None,
    meter_timezone: str | None = None,
    actor: str,
) -> Meter:
    """A new meter of the tenant; its waiting telegrams are queued for decoding."""
    try:
        mfct = check_manufacturer(manufacturer)
        mid = check_meter_id(meter_id, "meter_id")
        dtype = check_device_type(device_type)
        zone = check_zone(meter_timezone, "meter_timezone") if meter_timezone is not None else None
    except ValueError as exc:
        raise invalid(exc) from None
    if gateway_id is not None:
        gateway_by_id(session, tenant_id, gateway_id)
    exists = session.scalar(
        select(Meter.id).where(Meter.tenant_id == tenant_id, Meter.manufacturer == mfct, Meter.meter_id == mid)
    )
    if exists is not None:
        raise Conflict(
            f"meter {mfct} {mid} is already registered",
            code="exists",
            german=f"Der Zähler {mfct} {mid} ist schon angelegt.",
            field="meter_id",
        )
    m = Meter(
        tenant_id=tenant_id,
        manufacturer=mfct,
        meter_id=mid,
        device_type=dtype,
        gateway_id=gateway_id,
        created_at=utcnow(),
        meter_timezone=zone,
        key_status="present" if key_present(session, tenant_id, mfct, mid) else "missing",
    )
    session.add(m)
    session.flush()
    if zone is not None:
        audit(session, tenant_id, actor, "meter.timezone", {"meter": m.id, "before": None, "after": zone})
    requeue(session, tenant_id, [(mfct, mid)])
    return m


def change_meter(session: Session, tenant_id: int, meter_pk: int, changes: dict, *, actor: str) -> Meter:
    """Change what `changes` names of device_type, gateway_id, meter_timezone (None: unset)."""
    m = get_meter(session, tenant_id, meter_pk)
    if "device_type" in changes:
        try:
            m.device_type = check_device_type(changes["device_type"])
        except ValueError as exc:
            raise invalid(exc) from None
    if "gateway_id" in changes:
        if changes["gateway_id"] is not None:
            gateway_by_id(session, tenant_id, changes["gateway_id"])
        m.gateway_id = changes["gateway_id"]
    if "meter_timezone" in changes:
        given = changes["meter_timezone"]
        try:
            zone = check_zone(given, "meter_timezone") if given is not None else None
        except ValueError as exc:
            raise invalid(exc) from None
        if zone != m.meter_timezone:
            # stored readings keep their time until re-timed (POST /api/v1/tenant/time/retime)
            audit(
                session, tenant_id, actor, "meter.timezone", {"meter": m.id, "before": m.meter_timezone, "after": zone}
            )
            m.meter_timezone = zone
    session.flush()
    return m


def remove_meter(session: Session, tenant_id: int, meter_pk: int) -> None:
    """Unregister a meter without readings or installations; its telegrams wait again as
    "heard but not registered"."""
    m = get_meter(session, tenant_id, meter_pk)
    if session.scalar(select(Reading.id).where(Reading.meter_pk == m.id).limit(1)) is not None:
        raise Conflict(
            f"meter {m.manufacturer} {m.meter_id} has readings; it cannot be deleted",
            code="in_use",
            german=f"Der Zähler {m.manufacturer} {m.meter_id} hat Messwerte und kann daher nicht gelöscht werden.",
        )
    if session.scalar(select(Installation.id).where(Installation.meter_pk == m.id).limit(1)) is not None:
        raise Conflict(
            f"meter {m.manufacturer} {m.meter_id} has installations; it cannot be deleted",
            code="in_use",
            german=f"Der Zähler {m.manufacturer} {m.meter_id} war an einer Messstelle eingebaut "
            "und kann daher nicht gelöscht werden.",
        )
    # its telegrams stay stored and wait again as "heard but not registered"
    session.execute(
        update(Telegram).where(Telegram.meter_pk == m.id, Telegram.tenant_id == m.tenant_id).values(meter_pk=None)
    )
    session.execute(
        delete(Alarm).where(Alarm.tenant_id == m.tenant_id, Alarm.subject_type == "meter", Alarm.subject_id == m.id)
    )
    mfct, mid = m.manufacturer, m.meter_id
    session.delete(m)
    session.flush()
    requeue(session, tenant_id, [(mfct, mid)])  # back to "heard but not registered"
