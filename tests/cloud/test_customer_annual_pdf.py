"""The annual information as a PDF, read back with pdftotext: the weather-corrected heat comparison
(hot water as measured), the content blocks, German and English; refused with the missing blocks
named; from the operator API and from the portal (the occupant's own unit and whole periods only)."""

from __future__ import annotations

from datetime import date, timedelta

import time_machine
from sqlalchemy import select

from omshub.cloud.services.customer_annual import REQUIRED_BLOCKS
from omshub.cloud.services.customer_annual_pdf import annual_letter
from omshub.cloud.services.customer_portal import accept, invite
from omshub.cloud.services.customer_settings import update_settings
from omshub.cloud.store.models_billing import Property, WeatherDay, WeatherStation
from omshub.cloud.store.models_customers import PortalRead
from tests.cloud import customer_scenario
from tests.cloud.customer_scenario import NOW, T0
from tests.cloud.test_customer_channels import _text

BLOCKS = {
    "energy_mix": "Erdgas 60 %, Biomasse 40 % (Mittel 2024)",
    "emissions": "182 g CO2 je kWh",
    "primary_energy_factor": "Primaerenergiefaktor 0,7",
    "taxes_levies": "Energiesteuer und CO2-Abgabe sind im Arbeitspreis enthalten",
    "device_charges": "Zaehlermiete 60 Euro im Jahr",
    "consumer_organisations": "Verbraucherzentrale Berlin, www.verbraucherzentrale-berlin.de",
    "dispute_resolution": "Schlichtungsstelle Energie, www.schlichtungsstelle-energie.de",
}


def _setup(s, tenant_id: int):
    sc = customer_scenario.build(s, tenant_id)
    station = WeatherStation(tenant_id=tenant_id, code="K1", name="Klima", created_at=T0)
    s.add(station)
    s.flush()
    day = date(2024, 1, 1)
    while day <= date(2025, 12, 31):  # 2024: 12.5 degree days a day, 2025: 15
        s.add(WeatherDay(station_id=station.id, day=day, mean_c=7.5 if day.year == 2024 else 5.0))
        day += timedelta(days=1)
    for prop in s.scalars(select(Property).where(Property.tenant_id == tenant_id)):
        prop.weather_station_id = station.id
    for month in range(1, 13):
        for point, quantity, now, then in (("MP2", "energy", 120.0, 100.0), ("MP2W", "volume", 3.0, 2.5)):
            sc.consumption(sc.points[point], quantity, f"2025-{month:02d}", now)
            sc.consumption(sc.points[point], quantity, f"2024-{month:02d}", then)
        if month != 11:  # the scenario has November 2025: 550 kWh
            sc.consumption(sc.points["MP1"], "energy", f"2025-{month:02d}", 60.0)
        sc.consumption(sc.points["MP1"], "energy", f"2024-{month:02d}", 50.0)
    s.flush()
    update_settings(
        s,
        tenant_id,
        {"supplier_name": "Stadtwerke Lindenhof", "supplier_contact": "0800 123 456"},
        actor="t",
        now=NOW,
    )
    return sc


def test_the_annual_pdf_has_the_corrected_comparison_and_every_block(s, hub, tmp_path):
    t = hub.tenant()
    sc = _setup(s, t.id)
    update_settings(s, t.id, {"annual_blocks": BLOCKS}, actor="t", now=NOW)
    pdf = annual_letter(s, t.id, sc.units["WE02"], 2025, "de", occupant_id=sc.occupants["Bert"])
    text = _text(pdf, tmp_path)
    assert text.count("\f") == 1  # one A4 page with short blocks
    assert "Ihre Jahresinformation 01.01.2025 – 31.12.2025" in text
    assert "Vorjahreszeitraum 01.01.2024 bis 31.12.2024" in text
    assert "Bert" in text and "Stadtwerke Lindenhof" in text
    # heating measured 1,200 -> 1,440 kWh; weather-corrected to 2024's climate 1,440 x 4,575 / 5,475 = 1,203.3
    assert "Heizung, gemessen (kWh)" in text and "1.200,0" in text and "1.440,0" in text
    assert "Heizung, witterungsbereinigt (kWh)" in text and "1.203,3" in text
    # hot water only as measured, never corrected
    assert "Warmwasser, gemessen (m³)" in text and "30,00" in text and "36,00" in text
    assert "Warmwasser, witterungsbereinigt" not in text
    assert "Warmwasser wird nie witterungsbereinigt" in text
    assert "5.475 Gradtage" in text and "4.575 im Vorjahreszeitraum" in text
    assert "Heizung (witterungsbereinigt, kWh)" in text  # the chart's caption
    flat = " ".join(text.split())
    for name, body in BLOCKS.items():
        assert body in flat, name
    for heading in ("Energieträgermix", "Treibhausgasemissionen", "Primärenergiefaktor", "Streitbeilegung"):
        assert heading in text
    assert "§ 6a Abs. 3 Heizkostenverordnung und § 5 FFVAV" in text

    english = _text(annual_letter(s, t.id, sc.units["WE02"], 2025, "en"), tmp_path)
    assert "Your annual information 1 Jan 2025 – 31 Dec 2025" in english
    assert "Heating, weather-corrected (kWh)" in english and "1,203.3" in english
    assert "Hot water, as measured" not in english and "Hot water, measured (m³)" in english
    assert "Dispute resolution" in english or "dispute resolution" in english


def test_long_blocks_continue_on_a_second_page(s, hub, tmp_path):
    t = hub.tenant()
    sc = _setup(s, t.id)
    long = "Ein langer Absatz über den Energieträgermix. " * 80
    update_settings(s, t.id, {"annual_blocks": {**BLOCKS, "energy_mix": long}}, actor="t", now=NOW)
    text = _text(annual_letter(s, t.id, sc.units["WE01"], 2025, "de"), tmp_path)
    assert text.count("\f") >= 2  # two pages
    assert "Schlichtungsstelle Energie" in text


def test_the_api_refuses_with_the_missing_blocks_and_serves_the_pdf(client, hub, db, tmp_path):
    t = hub.tenant()
    with db.transaction() as s:
        sc = _setup(s, t.id)
        update_settings(s, t.id, {"annual_blocks": {"energy_mix": "x"}}, actor="t", now=NOW)
    h = hub.headers(t, "viewer")
    url = f"/api/v1/customer-info/units/{sc.units['WE02']}/annual/pdf"
    r = client.get(url, params={"year": 2025}, headers=h)
    assert r.status_code == 422
    detail = str(r.json())
    for name in REQUIRED_BLOCKS:
        assert (name in detail) == (name != "energy_mix"), name
    with db.transaction() as s:
        update_settings(s, t.id, {"annual_blocks": BLOCKS}, actor="t", now=NOW)
    r = client.get(url, params={"year": 2025, "language": "en", "occupant_id": sc.occupants["Bert"]}, headers=h)
    assert r.status_code == 200 and r.headers["content-type"] == "application/pdf"
    assert 'filename="annual-information-2025.pdf"' in r.headers["content-disposition"]
    assert "Weather-corrected" in _text(r.content, tmp_path) or "weather-corrected" in _text(r.content, tmp_path)
    # an occupant of another unit is not a recipient of this unit's information; another tenant sees nothing
    assert client.get(url, params={"year": 2025, "occupant_id": sc.occupants["Anna"]}, headers=h).status_code == 404
    assert client.get(url, params={"year": 2025}, headers=hub.headers(hub.tenant(), "viewer")).status_code == 404


def test_the_portal_gives_only_the_occupants_own_whole_periods(client, hub, db, tmp_path):
    t = hub.tenant()
    with db.transaction() as s:
        sc = _setup(s, t.id)
        update_settings(s, t.id, {"annual_blocks": BLOCKS}, actor="t", now=NOW)
        accounts = {}
        for name in ("Anna", "Dora"):
            account, token = invite(s, t.id, sc.occupants[name], actor="t", now=NOW)
            accept(s, token, "lange genug 123", NOW)
            accounts[name] = (account.id, account.email)
    x = {"X-Portal": "1"}
    with time_machine.travel(NOW, tick=False):
        login = {"tenant": t.slug, "email": accounts["Anna"][1], "password": "lange genug 123"}
        assert client.post("/portal/api/login", json=login, headers=x).status_code == 200
        # the finished periods of her stay (since 1 Jan 2020); 2026's is not over on 5 Dec 2026
        assert client.get("/portal/api/annual").json() == [2025, 2024, 2023, 2022, 2021, 2020]
        with db.transaction() as s:  # while a content block is missing there is nothing to offer
            update_settings(s, t.id, {"annual_blocks": {**BLOCKS, "emissions": ""}}, actor="t", now=NOW)
        assert client.get("/portal/api/annual").json() == []
        assert client.get("/portal/api/annual/2025/pdf").status_code == 422
        with db.transaction() as s:
            update_settings(s, t.id, {"annual_blocks": BLOCKS}, actor="t", now=NOW)
        r = client.get("/portal/api/annual/2025/pdf")
        assert r.status_code == 200, r.text
        text = _text(r.content, tmp_path)
        # 11 x 60 + 550 = 1,210 kWh against 600; corrected 1,210 x 4,575 / 5,475 = 1,011.1
        assert "Anna" in text and "Wohnung 01" in text and "1.210,0" in text and "600,0" in text
        assert "1.011,1" in text
        # 2019's period was before her move-in (2020)
        assert client.get("/portal/api/annual/2019/pdf").status_code == 404
        assert client.get("/portal/api/annual/99999/pdf").status_code == 404
        client.post("/portal/api/logout", headers=x)
        # Dora moved in on 16 Nov 2026: no whole billing period is hers
        login = {"tenant": t.slug, "email": accounts["Dora"][1], "password": "lange genug 123"}
        assert client.post("/portal/api/login", json=login, headers=x).status_code == 200
        assert client.get("/portal/api/annual/2025/pdf").status_code == 404
        assert client.get("/portal/api/annual").json() == []
        client.post("/portal/api/logout", headers=x)
        assert client.get("/portal/api/annual/2025/pdf").status_code == 401
    with db.session() as s:
        reads = s.scalars(select(PortalRead.what).where(PortalRead.account_id == accounts["Anna"][0])).all()
        assert reads == ["annual years", "annual years", "annual pdf 2025"]
