"""What the rows of one export batch need besides their own columns, read once per batch: each
metering point's unit, property and customer reference; the meters installed at the point (with
their times) and the occupants of its unit (with their stays); the receipt time of each telegram.
The export (exports_v1.py) picks per row the meter installed and the occupant living at its
boundary — the same conditions its statements used to join in SQL, compared on the values as the
database returns them (SQLite: ISO text, which orders like the times)."""

from __future__ import annotations

from collections.abc import Iterable

# ids per IN list: well below SQLite's limit of bound parameters. The tenant filters are written
# `+x.tenant_id` so that SQLite looks the ids up by their index, not every row of the tenant.
CHUNK = 900

_POINTS = """
SELECT mp.id, mp.ref, mp.customer_ref, u.id, u.ref, p.ref, p.timezone
FROM metering_points mp
LEFT JOIN units u ON u.id = mp.unit_id
LEFT JOIN properties p ON p.id = u.property_id
WHERE +mp.tenant_id = {m} AND mp.id IN ({ids})
"""
_INSTALLS = """
SELECT i.metering_point_id, i.installed_at, i.removed_at, m.manufacturer, m.meter_id
FROM installations i LEFT JOIN meters m ON m.id = i.meter_pk
WHERE +i.tenant_id = {m} AND i.metering_point_id IN ({ids})
ORDER BY i.metering_point_id, i.id
"""
_OCCUPANCIES = """
SELECT o.unit_id, o.moved_in, o.moved_out, oc.customer_ref
FROM occupancies o LEFT JOIN occupants oc ON oc.id = o.occupant_id
WHERE +o.tenant_id = {m} AND o.unit_id IN ({ids})
ORDER BY o.unit_id, o.moved_in, o.id
"""
_TELEGRAMS = "SELECT id, received_at FROM telegrams WHERE +tenant_id = {m} AND id IN ({ids})"

NO_POINT = (None, None, None, None, None, None)
NO_METER = ((None, None),)
NO_OCCUPANT = (None,)


class Lookup:
    """Per batch (`load`): `points` id → (ref, customer ref, unit id, unit ref, property ref, zone);
    `installs` point → [(installed, removed, manufacturer, meter id)]; `stays` unit → [(moved in,
    moved out, customer ref)]; `received` telegram id → received at."""

    def __init__(self, conn, tenant_id: int, sqlite: bool) -> None:
        self.conn, self.tenant_id, self.mark = conn, tenant_id, "?" if sqlite else "%s"
        self.points: dict = {}
        self.installs: dict = {}
        self.stays: dict = {}
        self.received: dict = {}

    def _each(self, sql: str, ids: Iterable) -> Iterable[tuple]:
        wanted = sorted(ids)
        for i in range(0, len(wanted), CHUNK):
            part = wanted[i : i + CHUNK]
            text = sql.format(m=self.mark, ids=", ".join([self.mark] * len(part)))
            cursor = self.conn.cursor()
            cursor.execute(text, (self.tenant_id, *part))
            yield from cursor.fetchall()
            cursor.close()

    def load(self, points: set, telegrams: set) -> None:
        self.points = {r[0]: r[1:] for r in self._each(_POINTS, points)}
        self.installs = _grouped(self._each(_INSTALLS, points))
        self.stays = _grouped(self._each(_OCCUPANCIES, {p[2] for p in self.points.values() if p[2] is not None}))
        telegrams.discard(None)
        self.received = dict(self._each(_TELEGRAMS, telegrams)) if telegrams else {}

    def meters_at(self, point: int, at, *, end: bool = False) -> tuple:
        """(manufacturer, meter id) of each meter installed at `at` (a boundary: installed at or
        before it and not removed by then; `end` of a period: installed before it and not removed
        before it); one (None, None) where none was."""
        found = self.installs.get(point)
        if not found or at is None:
            return NO_METER
        if len(found) == 1:  # the usual case, without a swap
            i, r, m, n = found[0]
            if i is not None and (i < at if end else i <= at) and (r is None or (r >= at if end else r > at)):
                return ((m, n),)
            return NO_METER
        if end:
            hit = tuple((m, n) for i, r, m, n in found if i is not None and i < at and (r is None or r >= at))
        else:
            hit = tuple((m, n) for i, r, m, n in found if i is not None and i <= at and (r is None or r > at))
        return hit or NO_METER

    def occupants_on(self, unit, day, *, end: bool = False) -> tuple:
        """The customer reference of each occupant whose stay covers `day` (at the `end` of a
        period: moved in before it); one None where nobody lived."""
        found = self.stays.get(unit)
        if not found or day is None:
            return NO_OCCUPANT
        if len(found) == 1:
            i, o, c = found[0]
            if i is not None and (i < day if end else i <= day) and (o is None or o >= day):
                return (c,)
            return NO_OCCUPANT
        if end:
            hit = tuple(c for i, o, c in found if i is not None and i < day and (o is None or o >= day))
        else:
            hit = tuple(c for i, o, c in found if i is not None and i <= day and (o is None or o >= day))
        return hit or NO_OCCUPANT


def _grouped(found: Iterable[tuple]) -> dict:
    """First column → [the rest of each row], in the order found."""
    out: dict = {}
    get = out.get
    for r in found:
        have = get(r[0])
        if have is None:
            out[r[0]] = [r[1:]]
        else:
            have.append(r[1:])
    return out
