"""Metering points (the billing key) and meter installations / swaps.

A swap closes the current installation with the old meter's final register values and opens
the next one with the new meter's initial values at the same instant, so consumption
(consumption.py) never jumps across meters. Times given without a zone are the tenant's local time.
"""

from __future__ import annotations

import math
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from omshub.cloud.domain.errors import Conflict, Invalid, not_found
from omshub.cloud.domain.language import german_time
from omshub.cloud.services.consumption import effective_installed_at
from omshub.cloud.services.meters import (
    check_manufacturer,
    check_meter_id,
    current_installations,
    local_time,
    tenant_zone,
)
from omshub.cloud.store.models import Installation, Meter, MeteringPoint
from omshub.codec.units import QUANTITIES
from omshub.times import iso, utc, utcnow

MAX_VALUES = 32


def check_values(values: dict[str, float], where: str) -> dict[str, float]:
    """Register values by quantity (energy, volume, ...), finite, at most MAX_VALUES."""
    if len(values) > MAX_VALUES:
        raise Invalid(f"{where}: at most {MAX_VALUES} values", german=f"{where}: höchstens {MAX_VALUES} Werte.")
    for q, v in values.items():
        if q not in QUANTITIES:
            raise Invalid(
                f"{where}: {q!r} is not a quantity (e.g. energy, volume, hca)",
                german=f"{where}: „{q}“ ist keine Messgröße (z. B. Energie (energy), Volumen (volume), HKV (hca)).",
            )
        if not math.isfinite(v):
            raise Invalid(
                f"{where}.{q}: value must be a finite number", german=f"{where}.{q}: Der Wert muss eine Zahl sein."
            )
    return dict(values)


def get_point(session: Session, tenant_id: int, point_id: int) -> MeteringPoint:
    mp = session.scalar(select(MeteringPoint).where(MeteringPoint.id == point_id, MeteringPoint.tenant_id == tenant_id))
    if mp is None:
        raise not_found(f"metering point {point_id}", f"Die Messstelle {point_id}")
    return mp


def find_meter(session: Session, tenant_id: int, ref: int | tuple[str, str]) -> Meter:
    """A meter of the tenant by its id or by (manufacturer, meter id)."""
    if isinstance(ref, int):
        stmt = select(Meter).where(Meter.id == ref)
        label, german = f"meter {ref}", f"Der Zähler {ref}"
    else:
        try:
            mfct, mid = check_manufacturer(ref[0]), check_meter_id(ref[1], "meter_id")
        except ValueError as exc:
            raise Invalid(str(exc)) from None
        stmt = select(Meter).where(Meter.manufacturer == mfct, Meter.meter_id == mid)
        label, german = f"meter {mfct} {mid}", f"Der Zähler {mfct} {mid}"
    m = session.scalar(stmt.where(Meter.tenant_id == tenant_id))
    if m is None:
        raise not_found(label, german)
    return m


def installations(session: Session, mp: MeteringPoint) -> list[tuple[Installation, Meter]]:
    """The point's installations, oldest first."""
    return list(
        session.execute(
            select(Installation, Meter)
            .join(Meter, Meter.id == Installation.meter_pk)
            .where(Installation.metering_point_id == mp.id, Installation.tenant_id == mp.tenant_id)
            .order_by(Installation.installed_at, Installation.id)
        ).all()
    )


def current_by_point(session: Session, point_ids: list[int]) -> dict[int, tuple[Installation, Meter]]:
    """The installation (and meter) now at each point that has one."""
    if not point_ids:
        return {}
    rows = session.execute(
        select(Installation, Meter)
        .join(Meter, Meter.id == Installation.meter_pk)
        .where(Installation.metering_point_id.in_(point_ids), Installation.removed_at.is_(None))
    )
    return {i.metering_point_id: (i, m) for i, m in rows}


def _free_ref(session: Session, tenant_id: int, ref: str) -> str:
    if (
        session.scalar(select(MeteringPoint.id).where(MeteringPoint.tenant_id == tenant_id, MeteringPoint.ref == ref))
        is not None
    ):
        raise Conflict(
            f"metering point {ref!r} already exists",
            code="exists",
            german=f"Die Messstelle {ref} gibt es schon.",
            field="ref",
        )
    return ref


def create_point(session: Session, tenant_id: int, ref: str, address: str, customer_ref: str) -> MeteringPoint:
    ref = ref.strip()
    if not ref:
        raise Invalid("ref must not be blank", german="Die Nummer der Messstelle darf nicht leer sein.", field="ref")
    mp = MeteringPoint(
        tenant_id=tenant_id,
        ref=_free_ref(session, tenant_id, ref),
        address=address,
        customer_ref=customer_ref,
        created_at=utcnow(),
    )
    session.add(mp)
    session.flush()
    return mp


def change_point(
    session: Session,
    tenant_id: int,
    point_id: int,
    *,
    ref: str | None = None,
    address: str | None = None,
    customer_ref: str | None = None,
) -> MeteringPoint:
    """Change what is given (None: left as it is)."""
    mp = get_point(session, tenant_id, point_id)
    if ref is not None and ref.strip() != mp.ref:
        mp.ref = _free_ref(session, tenant_id, ref.strip())
    if address is not None:
        mp.address = address
    if customer_ref is not None:
        mp.customer_ref = customer_ref
    session.flush()
    return mp


def delete_point(session: Session, tenant_id: int, point_id: int) -> None:
    mp = get_point(session, tenant_id, point_id)
    if installations(session, mp):
        raise Conflict(
            f"metering point {mp.ref!r} has installations; it cannot be deleted",
            code="in_use",
            german=f"An der Messstelle {mp.ref} war schon ein Zähler eingebaut; sie kann nicht gelöscht werden.",
        )
    session.delete(mp)


def _check_free(session: Session, m: Meter) -> None:
    other = current_installations(session, [m.id]).get(m.id)
    if other is not None:
        raise Conflict(
            f"meter {m.manufacturer} {m.meter_id} is installed at metering point {other[1].ref!r}",
            code="installed",
            german=f"Der Zähler {m.manufacturer} {m.meter_id} ist an der Messstelle {other[1].ref} eingebaut.",
        )


def _check_after_history(session: Session, mp: MeteringPoint, at: datetime) -> None:
    for inst, _ in installations(session, mp):
        last = inst.removed_at or inst.installed_at
        if at < utc(last):
            raise Invalid(
                f"at {iso(at)} is before the point's last installation change ({iso(last)})",
                code="invalid_time",
                field="at",
                german="Der Zeitpunkt liegt vor der letzten Änderung an der Messstelle "
                f"({german_time(last, tenant_zone(session, mp.tenant_id))}).",
            )


def install(
    session: Session,
    tenant_id: int,
    point_id: int,
    meter: int | tuple[str, str],
    at: str | None,
    initial_values: dict[str, float],
) -> MeteringPoint:
    """Install a meter at an empty point; without a time it counts from its first reading."""
    mp = get_point(session, tenant_id, point_id)
    m = find_meter(session, tenant_id, meter)
    given = local_time(session, tenant_id, at, "at")
    when = given or utcnow()
    values = check_values(initial_values, "initial_values")
    if given is None and values:
        raise Invalid(
            "initial_values need the installation time `at` they were read at",
            german="Zu den Anfangsständen gehört der Zeitpunkt des Einbaus, zu dem sie abgelesen wurden.",
        )
    if current_by_point(session, [mp.id]):
        raise Conflict(
            f"metering point {mp.ref!r} already has a meter; use a swap",
            code="occupied",
            german=f"An der Messstelle {mp.ref} ist schon ein Zähler eingebaut; wechseln Sie ihn.",
        )
    _check_free(session, m)
    _check_after_history(session, mp, when)
    # without a time the meter counts from its first reading (after the point's history)
    session.add(
        Installation(
            tenant_id=mp.tenant_id,
            metering_point_id=mp.id,
            meter_pk=m.id,
            installed_at=when,
            installed_from="given" if given is not None else "first_reading",
            removed_at=None,
            initial_values=values,
            final_values=None,
        )
    )
    session.flush()
    return mp


def swap(
    session: Session,
    tenant_id: int,
    point_id: int,
    at: str,
    old_final_values: dict[str, float],
    new_meter: int | tuple[str, str],
    new_initial_values: dict[str, float],
) -> MeteringPoint:
    """Close the current installation with the old meter's final values, open the new meter's."""
    mp = get_point(session, tenant_id, point_id)
    when = local_time(session, tenant_id, at, "at") or utcnow()
    final = check_values(old_final_values, "old_final_values")
    initial = check_values(new_initial_values, "new_initial_values")
    current = current_by_point(session, [mp.id]).get(mp.id)
    if current is None:
        raise Conflict(
            f"metering point {mp.ref!r} has no meter to swap; use install",
            code="empty",
            german=f"An der Messstelle {mp.ref} ist kein Zähler zum Wechseln eingebaut; bauen Sie einen ein.",
        )
    inst, old = current
    new = find_meter(session, tenant_id, new_meter)
    if new.id == old.id:
        raise Invalid(
            "the new meter is the installed meter",
            german="Der neue Zähler ist der eingebaute Zähler.",
            field="new_meter",
        )
    _check_free(session, new)
    installed = effective_installed_at(session, inst)
    if when <= installed:
        raise Invalid(
            f"at: swap time {iso(when)} must be after the installation at {iso(installed)}",
            code="invalid_time",
            field="at",
            german="Zeitpunkt: Der Wechsel muss nach dem Einbau am "
            f"{german_time(installed, tenant_zone(session, tenant_id))} liegen.",
        )
    inst.removed_at = when
    inst.final_values = final
    session.add(
        Installation(
            tenant_id=mp.tenant_id,
            metering_point_id=mp.id,
            meter_pk=new.id,
            installed_at=when,
            removed_at=None,
            initial_values=initial,
            final_values=None,
        )
    )
    session.flush()
    return mp


def remove(
    session: Session, tenant_id: int, point_id: int, at: str | None, final_values: dict[str, float]
) -> MeteringPoint:
    """Remove the installed meter (no successor) at `at` (default now)."""
    mp = get_point(session, tenant_id, point_id)
    when = local_time(session, tenant_id, at, "at") or utcnow()
    current = current_by_point(session, [mp.id]).get(mp.id)
    if current is None:
        raise Conflict(
            f"metering point {mp.ref!r} has no meter installed",
            code="empty",
            german=f"An der Messstelle {mp.ref} ist kein Zähler eingebaut.",
        )
    inst, _ = current
    installed = effective_installed_at(session, inst)
    if when <= installed:
        raise Invalid(
            f"at: removal time {iso(when)} must be after the installation at {iso(installed)}",
            code="invalid_time",
            field="removed_at",
            german="Zeitpunkt: Der Ausbau muss nach dem Einbau am "
            f"{german_time(installed, tenant_zone(session, tenant_id))} liegen.",
        )
    inst.removed_at = when
    inst.final_values = check_values(final_values, "final_values")
    session.flush()
    return mp
