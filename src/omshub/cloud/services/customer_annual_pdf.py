"""The annual information as an A4 PDF (HeizkostenV §6a(3), FFVAV §5(1); docs/customer-information.md
§Annual information): supplier and recipient as on the monthly letter, the two periods, a table and a
chart of heating (weather-corrected by degree days, and as measured) and hot water (as measured, never
corrected) of the billing period against the previous one, the correction's method and figures, then
the tenant's required content blocks (energy mix, emissions, primary energy factor, taxes and levies,
device charges, consumer organisations and energy agencies, dispute resolution). Long blocks continue
on a second page. The content comes from `customer_annual.annual_information`, which refuses while a
block is missing, so a PDF without them cannot be made."""

from __future__ import annotations

import io

from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.pdfgen.canvas import Canvas
from sqlalchemy import select

from omshub.cloud.domain.customer_info import month_days
from omshub.cloud.domain.errors import Invalid, NotFound
from omshub.cloud.services.customer_annual import REQUIRED_BLOCKS, annual_information, check_blocks, period_months
from omshub.cloud.services.customer_delivery import recipient_lines
from omshub.cloud.services.customer_pdf import (
    DARK,
    GREY,
    HEIGHT,
    LEFT,
    LIGHT,
    RIGHT,
    _logo,
    _wrap,
    letter_head,
    title_block,
)
from omshub.cloud.services.customer_settings import settings_of
from omshub.cloud.services.customer_texts import day_text, decimals_of, figure_text, t, unit_text
from omshub.cloud.store.models_billing import Occupancy, Occupant, Property, Unit

BOTTOM = 20 * mm


def annual_pdf(info: dict, settings: dict, recipient: str, lang: str) -> bytes:
    """The annual information `info` (annual_information's result) as a PDF for `recipient`."""
    out = io.BytesIO()
    c = Canvas(out, pagesize=A4, pageCompression=0, invariant=1)
    c.setTitle("Jahresinformation / annual information")
    c.setAuthor(settings.get("supplier_name") or "omshub")
    y = _head(c, info, settings, recipient, lang)
    y = _table(c, info, lang, y - 9 * mm)
    y = _chart(c, info, lang, y - 8 * mm)
    y = _method(c, info, lang, y - 5 * mm)
    _blocks(c, info, settings, lang, y - 4 * mm)
    _foot(c, settings, lang)
    c.showPage()
    c.save()
    return out.getvalue()


def _period(info: dict, lang: str, key: str) -> tuple[str, str]:
    first, last = info[key]
    return day_text(first, lang), day_text(last, lang)


def _head(c: Canvas, info: dict, settings: dict, recipient: str, lang: str) -> float:
    letter_head(c, settings, _logo(settings), recipient)
    y = HEIGHT - 90 * mm
    first, last = _period(info, lang, "period")
    pfirst, plast = _period(info, lang, "previous_period")
    y = title_block(c, y, t("annual_title", lang, period=f"{first} – {last}"), info, lang)
    c.drawString(LEFT, y, t("annual_periods", lang, first=first, last=last, pfirst=pfirst, plast=plast))
    return y


def _rows(info: dict, lang: str) -> list[tuple[str, dict, dict, int]]:
    """(label, previous, current, decimals): heating as measured and weather-corrected, hot water as measured."""
    rows = []
    for line in info["lines"]:
        unit = unit_text(line["unit"], lang)
        name = t(line["kind"], lang)
        d = decimals_of(line["unit"])
        rows.append((f"{name}, {t('annual_measured', lang)} ({unit})", line["previous"], line["current"], d))
        if line["corrected"] is not None:
            corr = line["corrected"]
            prev = {"value": corr["previous"], "status": line["previous"]["status"]}
            cur = {"value": corr["current"], "status": line["current"]["status"]}
            rows.append((f"{name}, {t('annual_corrected', lang)} ({unit})", prev, cur, d))
    return rows


def _table(c: Canvas, info: dict, lang: str, y: float) -> float:
    xs = [LEFT, LEFT + 85 * mm, LEFT + 125 * mm]
    c.setFont("Helvetica-Bold", 8.5)
    for x, head in zip(xs, ("annual_col_kind", "annual_col_previous", "annual_col_current"), strict=True):
        c.drawString(x, y, t(head, lang))
    c.setStrokeColorRGB(*GREY)
    c.line(LEFT, y - 1.8 * mm, RIGHT, y - 1.8 * mm)
    c.setFont("Helvetica", 9.5)
    for label, prev, cur, d in _rows(info, lang):
        y -= 6 * mm
        for x, cell in zip(xs, (label, figure_text(prev, lang, d), figure_text(cur, lang, d)), strict=True):
            c.drawString(x, y, cell)
    return y


def _chart(c: Canvas, info: dict, lang: str, y: float) -> float:
    """One pair of bars (previous period, billing period) per line: heating weather-corrected (as
    measured where no correction is possible), hot water as measured."""
    c.setFont("Helvetica-Bold", 9)
    c.drawString(LEFT, y, t("annual_chart", lang))
    height = 34 * mm
    base = y - 6 * mm - height
    lines = info["lines"]
    if not lines:
        return y - 6 * mm
    width = (RIGHT - LEFT) / len(lines)
    for i, line in enumerate(lines):
        x0 = LEFT + i * width
        corr = line["corrected"]
        corrected = corr is not None and corr["current"] is not None and corr["previous"] is not None
        pairs = [
            (t("annual_col_previous", lang), corr["previous"] if corrected else line["previous"]["value"]),
            (t("annual_col_current", lang), corr["current"] if corrected else line["current"]["value"]),
        ]
        top = max([v for _, v in pairs if v is not None] + [1.0])
        d = decimals_of(line["unit"])
        step = width * 0.8 / 2
        for k, (label, value) in enumerate(pairs):
            x = x0 + width * 0.1 + k * step
            c.setFont("Helvetica", 7.5)
            if value is not None:
                bar = max(0.0, value) / top * (height - 8 * mm)
                c.setFillColorRGB(*(LIGHT if k == 0 else DARK))
                c.rect(x + step * 0.15, base, step * 0.7, bar, stroke=0, fill=1)
                c.setFillColorRGB(0, 0, 0)
                c.drawCentredString(x + step / 2, base + bar + 1.2 * mm, figure_text({"value": value}, lang, d))
            else:
                c.drawCentredString(x + step / 2, base + 1.2 * mm, "–")
            c.drawCentredString(x + step / 2, base - 3.5 * mm, label)
        how = t("annual_corrected" if corrected else "annual_measured", lang)
        c.setFont("Helvetica-Bold", 8)
        c.drawCentredString(x0 + width / 2, base - 7.5 * mm, f"{t(line['kind'], lang)} ({how}, {line['unit']})")
        c.setStrokeColorRGB(*GREY)
        c.line(x0 + width * 0.05, base, x0 + width * 0.95, base)
    return base - 10 * mm


def _method(c: Canvas, info: dict, lang: str, y: float) -> float:
    heat = next((line for line in info["lines"] if line["kind"] == "heat"), None)
    notes = [t("legend", lang)]
    if heat is not None:
        dd = heat["corrected"]["degree_days"]

        def num(v):
            return figure_text({"value": v}, lang, 0)

        notes.append(
            t("annual_method", lang, now=num(dd["current"]), then=num(dd["previous"]), ref=num(dd["reference"]))
        )
    c.setFont("Helvetica", 7.5)
    for note in notes:
        for part in _wrap(note, 120):
            c.drawString(LEFT, y, part)
            y -= 3.6 * mm
    return y


def _blocks(c: Canvas, info: dict, settings: dict, lang: str, y: float) -> None:
    for name in REQUIRED_BLOCKS:
        text = str(info["blocks"][name])
        if y < BOTTOM + 12 * mm:
            y = _next_page(c, settings, lang)
        c.setFont("Helvetica-Bold", 8.5)
        c.drawString(LEFT, y, t(f"block_{name}", lang))
        y -= 3.6 * mm
        c.setFont("Helvetica", 8)
        for paragraph in text.splitlines() or [""]:
            for part in _wrap(paragraph, 115) or [""]:
                if y < BOTTOM:
                    y = _next_page(c, settings, lang)
                    c.setFont("Helvetica", 8)
                c.drawString(LEFT, y, part)
                y -= 3.3 * mm
        y -= 1.2 * mm


def _next_page(c: Canvas, settings: dict, lang: str) -> float:
    _foot(c, settings, lang)
    c.showPage()
    return HEIGHT - 20 * mm


def _foot(c: Canvas, settings: dict, lang: str) -> None:
    c.setFont("Helvetica", 7.5)
    c.setFillColorRGB(*GREY)
    c.drawString(LEFT, 15 * mm, t("annual_legal", lang))
    if settings.get("supplier_contact"):
        c.drawString(LEFT, 11 * mm, t("questions", lang, contact=settings["supplier_contact"]))
    c.setFillColorRGB(0, 0, 0)


def annual_letter(
    session, tenant_id: int, unit_id: int, year: int, lang: str, *, occupant_id: int | None = None, visible_from=None
) -> bytes:
    """The PDF of a unit's annual information, addressed to `occupant_id` (one of the unit's
    occupants; otherwise to the property). Invalid while a content block is missing."""
    info = annual_information(session, tenant_id, unit_id, year, visible_from=visible_from)
    recipient = info["property"]["name"]
    if occupant_id is not None:
        stay = session.scalar(
            select(Occupancy).where(
                Occupancy.tenant_id == tenant_id, Occupancy.unit_id == unit_id, Occupancy.occupant_id == occupant_id
            )
        )
        if stay is None:
            raise NotFound(
                f"occupant {occupant_id} never lived in unit {unit_id}",
                german=f"Bewohner {occupant_id} hat nie in Nutzeinheit {unit_id} gewohnt",
            )
        occupant = session.get(Occupant, occupant_id)
        recipient = recipient_lines(occupant, info)
    return annual_pdf(info, settings_of(session, tenant_id), recipient, lang)


def portal_years(session, tenant_id: int, occupant_id: int, today) -> list[int]:
    """The years whose billing period is over and covered whole by one of the occupant's stays,
    newest first (what `portal_stay` accepts); none while the tenant's content blocks are incomplete
    (the information would be refused, and the occupant cannot change that)."""
    try:
        check_blocks(settings_of(session, tenant_id))
    except Invalid:
        return []
    years = set()
    for stay in session.scalars(
        select(Occupancy).where(Occupancy.tenant_id == tenant_id, Occupancy.occupant_id == occupant_id)
    ):
        unit = session.get(Unit, stay.unit_id)
        prop = session.get(Property, unit.property_id)
        for year in range(stay.moved_in.year, today.year + 1):
            labels = period_months(year, prop.due_month)
            first, last = month_days(labels[0])[0], month_days(labels[-1])[1]
            if last < today and stay.moved_in <= first and (stay.moved_out is None or stay.moved_out >= last):
                years.add(year)
    return sorted(years, reverse=True)


def portal_stay(session, tenant_id: int, occupant_id: int, year: int) -> Occupancy:
    """The occupant's stay that covers the whole billing period ending in `year` (only then is the
    period's consumption theirs alone, HeizkostenV §6b); NotFound otherwise."""
    for stay in session.scalars(
        select(Occupancy).where(Occupancy.tenant_id == tenant_id, Occupancy.occupant_id == occupant_id)
    ):
        unit = session.get(Unit, stay.unit_id)
        prop = session.get(Property, unit.property_id)
        labels = period_months(year, prop.due_month)
        first, last = month_days(labels[0])[0], month_days(labels[-1])[1]
        if stay.moved_in <= first and (stay.moved_out is None or stay.moved_out >= last):
            return stay
    raise NotFound(f"no annual information for {year}", german=f"Für {year} gibt es keine Jahresinformation.")
