"""A small tenant whose November 2026 is closed, written straight into the billing tables as the close
would leave them, for the customer information tests (tests/cloud/test_customer_*.py). The
hand-computed expectations are in the tests; the numbers here are chosen to make them easy:

property P1 "Lindenhof" (district heat, 7-12 units), Lindenstr. 1, 10115 Berlin
  WE01  50 m²  heat MP1: Nov 500, Oct 300, Nov 2025 550 (all measured)     Anna, since 2020
  WE02 100 m²  heat MP2: Nov 1100 (meter swap 15 Nov: old 4200→4500→5000, new 0→300)
               hot water MP2W: 100.0 → 101.0 (10 Nov) → 103.5                Bert until 9 Nov, Frida from 10 Nov
  WE03  70 m²  heat MP3: 10000 → 10300 (16 Nov) → 10700 (interpolated)     Carl until 15 Nov, Dora from 16 Nov
  WE04  80 m²  heat MP4: Nov 640 estimated, Oct 500, no Nov 2025            Emil
  WE08  60 m²  allocators MP8: Nov 120 units                                Gina (post, no e-mail)
property P2 "Birkenweg" (district heat, 7-12): WE05 60 m² 600, WE06 55 m² 440, WE07 90 m² 990 (Nov)
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from omshub.cloud.store.models import Installation, Meter, MeteringPoint
from omshub.cloud.store.models_billing import (
    BillingConsumption,
    BillingValue,
    Occupancy,
    Occupant,
    Property,
    Unit,
)

T0 = datetime(2020, 1, 1, tzinfo=UTC)
NOW = datetime(2026, 12, 5, 9, 0, tzinfo=UTC)
NOV_START = datetime(2026, 10, 31, 23, 0, tzinfo=UTC)  # 1 Nov 00:00 CET
NOV_END = datetime(2026, 11, 30, 23, 0, tzinfo=UTC)
SWAP_AT = datetime(2026, 11, 15, 12, 0, tzinfo=UTC)


def _at(day: date) -> datetime:
    """00:00 Berlin (CET in November) of the day."""
    return datetime(day.year, day.month, day.day, tzinfo=UTC) - timedelta(hours=1)


class Scenario:
    def __init__(self, s, tenant_id: int, tag: str) -> None:
        self.s, self.t, self.tag = s, tenant_id, tag
        self.units: dict[str, int] = {}
        self.points: dict[str, int] = {}
        self.occupants: dict[str, int] = {}

    def prop(self, ref: str, name: str, street: str = "", city: str = "") -> int:
        p = Property(
            tenant_id=self.t,
            ref=f"{ref}{self.tag}",
            name=name,
            street=street,
            postcode="10115" if city else "",
            city=city,
            energy_carrier="district_heat",
            size_class="7-12",
            created_at=T0,
        )
        self.s.add(p)
        self.s.flush()
        return p.id

    def unit(self, prop: int, ref: str, area: float) -> int:
        u = Unit(tenant_id=self.t, property_id=prop, ref=ref, name=f"Wohnung {ref[2:]}", area_m2=area, created_at=T0)
        self.s.add(u)
        self.s.flush()
        self.units[ref] = u.id
        return u.id

    def point(self, unit: int, ref: str, device_type: str, swaps: list | None = None) -> int:
        mp = MeteringPoint(tenant_id=self.t, ref=f"{ref}{self.tag}", created_at=T0, unit_id=unit)
        self.s.add(mp)
        self.s.flush()
        self.points[ref] = mp.id
        for i, (installed, removed, initial, final) in enumerate(swaps or [(T0, None, {}, None)]):
            m = Meter(
                tenant_id=self.t,
                manufacturer="KAM",
                meter_id=f"{mp.id:06d}{i:02d}",
                device_type=device_type,
                created_at=T0,
                key_status="present",
            )
            self.s.add(m)
            self.s.flush()
            self.s.add(
                Installation(
                    tenant_id=self.t,
                    metering_point_id=mp.id,
                    meter_pk=m.id,
                    installed_at=installed,
                    removed_at=removed,
                    initial_values=initial,
                    final_values=final,
                )
            )
        return mp.id

    def consumption(self, point: int, quantity: str, period: str, value, quality: str = "measured") -> None:
        self.s.add(
            BillingConsumption(
                tenant_id=self.t,
                metering_point_id=point,
                quantity=quantity,
                period=period,
                start_at=NOV_START,
                end_at=NOV_END,
                value=value,
                quality=quality,
                runs=[],
                computed_at=NOW,
            )
        )

    def value(self, point: int, quantity: str, at: datetime, value, origin: str = "measured") -> None:
        self.s.add(
            BillingValue(
                tenant_id=self.t,
                metering_point_id=point,
                quantity=quantity,
                boundary_at=at,
                boundary_day=at.date(),
                reason="month",
                value=value,
                origin=origin,
                quality="interpolated" if origin == "interpolated" else "measured",
                details={},
                computed_value=value,
                computed_origin=origin,
                computed_details={},
                state="ok",
                computed_at=NOW,
                changed_at=NOW,
            )
        )

    def occupant(self, unit: int, name: str, moved_in: date, moved_out: date | None = None, **kw) -> int:
        o = Occupant(
            tenant_id=self.t,
            customer_ref=f"K-{name}{self.tag}",
            name=name,
            email=kw.get("email", f"{name.lower()}@example.de"),
            postal_address=kw.get("postal", f"{name}\nLindenstr. 1\n10115 Berlin"),
            channel=kw.get("channel", "email"),
            language=kw.get("language", "de"),
            created_at=T0,
        )
        self.s.add(o)
        self.s.flush()
        self.s.add(
            Occupancy(
                tenant_id=self.t, unit_id=unit, occupant_id=o.id, moved_in=moved_in, moved_out=moved_out, created_at=T0
            )
        )
        self.occupants[name] = o.id
        return o.id


def build(s, tenant_id: int, tag: str = "") -> Scenario:
    sc = Scenario(s, tenant_id, tag)
    p1 = sc.prop("P1", "Lindenhof", "Lindenstr. 1", "Berlin")
    p2 = sc.prop("P2", "Birkenweg")
    u1, u2, u3, u4 = (sc.unit(p1, r, a) for r, a in (("WE01", 50), ("WE02", 100), ("WE03", 70), ("WE04", 80)))
    u8 = sc.unit(p1, "WE08", 60)
    mp1 = sc.point(u1, "MP1", "heat")
    for period, v in (("2026-11", 500), ("2026-10", 300), ("2025-11", 550)):
        sc.consumption(mp1, "energy", period, v)
    mp2 = sc.point(u2, "MP2", "heat", [(T0, SWAP_AT, {}, {"energy": 5000.0}), (SWAP_AT, None, {"energy": 0.0}, None)])
    sc.consumption(mp2, "energy", "2026-11", 1100)
    sc.consumption(mp2, "energy", "2026-10", 600)
    sc.value(mp2, "energy", NOV_START, 4200.0)
    sc.value(mp2, "energy", _at(date(2026, 11, 10)), 4500.0)
    sc.value(mp2, "energy", NOV_END, 300.0)
    mp2w = sc.point(u2, "MP2W", "warm_water")
    sc.consumption(mp2w, "volume", "2026-11", 3.5)
    sc.value(mp2w, "volume", NOV_START, 100.0)
    sc.value(mp2w, "volume", _at(date(2026, 11, 10)), 101.0)
    sc.value(mp2w, "volume", NOV_END, 103.5)
    mp3 = sc.point(u3, "MP3", "heat")
    sc.consumption(mp3, "energy", "2026-11", 700, "interpolated")
    sc.consumption(mp3, "energy", "2026-10", 400)
    sc.consumption(mp3, "energy", "2025-11", 650)
    sc.value(mp3, "energy", NOV_START, 10000.0)
    sc.value(mp3, "energy", _at(date(2026, 11, 16)), 10300.0)
    sc.value(mp3, "energy", NOV_END, 10700.0, "interpolated")
    mp4 = sc.point(u4, "MP4", "heat")
    sc.consumption(mp4, "energy", "2026-11", 640, "estimated")
    sc.consumption(mp4, "energy", "2026-10", 500)
    mp8 = sc.point(u8, "MP8", "heat_cost_allocator")
    sc.consumption(mp8, "hca", "2026-11", 120)
    for ref, area, v in (("WE05", 60, 600), ("WE06", 55, 440), ("WE07", 90, 990)):
        sc.consumption(sc.point(sc.unit(p2, ref, area), f"MP{ref[2:]}", "heat"), "energy", "2026-11", v)
    sc.occupant(u1, "Anna", date(2020, 1, 1))
    sc.occupant(u2, "Bert", date(2019, 5, 1), date(2026, 11, 9))
    sc.occupant(u2, "Frida", date(2026, 11, 10), language="en")
    sc.occupant(u3, "Carl", date(2019, 1, 1), date(2026, 11, 15))
    sc.occupant(u3, "Dora", date(2026, 11, 16))
    sc.occupant(u4, "Emil", date(2018, 3, 1))
    sc.occupant(u8, "Gina", date(2021, 7, 1), email="", channel="post", postal="Gina Graf\nLindenstr. 1\n10115 Berlin")
    s.flush()
    return sc
