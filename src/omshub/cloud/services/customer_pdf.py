"""The monthly consumption information as a one-page A4 letter (reportlab), in German or English:
supplier name and logo from the tenant's settings, the recipient's address in the window of a DIN
5008 envelope, per line (heat, hot water, allocator units) the month, M−1, the same month last year,
the property's and the comparable users' average, a bar chart of the 13 months, marks (`*`
estimated, `–` no data) and the notes the record carries (docs/customer-information.md §PDF).

A print batch is one PDF of many letters, one page each, in the order given.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterable
from datetime import date

from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.lib.utils import ImageReader
from reportlab.pdfgen.canvas import Canvas

from omshub.cloud.services.customer_texts import (
    basis_text,
    cohort_text,
    day_text,
    decimals_of,
    figure_text,
    month_name,
    t,
    unit_text,
)

WIDTH, HEIGHT = A4
LEFT, RIGHT = 25 * mm, WIDTH - 20 * mm
GREY, DARK, LIGHT = (0.45, 0.45, 0.45), (0.12, 0.25, 0.45), (0.72, 0.78, 0.88)
ALERT = (0.62, 0.1, 0.1)  # white on it: contrast about 8:1


def letter_pdf(record: dict, settings: dict, recipient: str, language: str, corrects: dict | None = None) -> bytes:
    """One letter: `record` is a stored record's content, `recipient` the address lines."""
    return letters_pdf([(record, recipient, language, corrects)], settings)


def correction(content: dict, sent: dict | bool | None = None) -> dict | None:
    """The earlier information a letter corrects: {"revision", "date"}. A letter sent through a
    delivery follows the delivery: `sent` is the notice this occupant got (its revision and sending
    time), or False when they got none yet (a first notice corrects nothing they received). A PDF read
    directly (API, portal, the run's files: `sent` None) follows the record: from revision 2 on it
    names the earlier revision and when that was computed; None for a first revision."""
    if sent is False:
        return None
    if isinstance(sent, dict) and sent.get("sent_at") is not None:
        return {"revision": sent["revision"], "date": sent["sent_at"].date().isoformat()}
    return content.get("corrects")


def letters_pdf(letters: Iterable[tuple], settings: dict) -> bytes:
    """Many letters in one PDF, one page each: (content, recipient, language[, sent]) — `sent`: the
    delivery's earlier notice or False, see `correction`."""
    out = io.BytesIO()
    c = Canvas(out, pagesize=A4, pageCompression=0, invariant=1)
    c.setTitle("Verbrauchsinformation / consumption information")
    c.setAuthor(settings.get("supplier_name") or "omshub")
    logo = _logo(settings)
    pages = 0
    for content, recipient, language, *rest in letters:
        corrects = correction(content, rest[0] if rest else None)
        _page(c, content, settings, logo, recipient, language, corrects)
        c.showPage()
        pages += 1
    if pages == 0:
        c.showPage()
    c.save()
    return out.getvalue()


def _logo(settings: dict) -> ImageReader | None:
    if not settings.get("logo_png"):
        return None
    return ImageReader(io.BytesIO(base64.b64decode(settings["logo_png"])))


def letter_head(c: Canvas, settings: dict, logo, recipient: str) -> None:
    """The supplier's logo, name and address at the top right, the recipient in the address field."""
    y = HEIGHT - 20 * mm
    if logo is not None:
        c.drawImage(logo, LEFT, y - 12 * mm, width=30 * mm, height=12 * mm, preserveAspectRatio=True, mask="auto")
    c.setFont("Helvetica-Bold", 13)
    c.drawRightString(RIGHT, y - 4 * mm, settings.get("supplier_name") or "")
    c.setFont("Helvetica", 8)
    for i, line in enumerate((settings.get("supplier_address") or "").splitlines()[:3]):
        c.drawRightString(RIGHT, y - 9 * mm - i * 3.6 * mm, line)
    # the address field of a DIN 5008 (form B) letter: 45 mm from the top, 85 x 40 mm
    c.setFont("Helvetica", 10)
    for i, line in enumerate(recipient.splitlines()[:6]):
        c.drawString(LEFT, HEIGHT - 50 * mm - i * 4.6 * mm, line)


def title_block(c: Canvas, y: float, title: str, content: dict, lang: str) -> float:
    """The letter's title, the unit (with its area) and the property; -> the next line's height."""
    c.setFont("Helvetica-Bold", 15)
    c.setFillColorRGB(*DARK)
    c.drawString(LEFT, y, title)
    c.setFillColorRGB(0, 0, 0)
    c.setFont("Helvetica", 9)
    u, p = content["unit"], content["property"]
    area = figure_text({"value": u["area_m2"], "status": "measured"}, lang)
    y -= 6 * mm
    c.drawString(LEFT, y, t("unit", lang, ref=u["ref"], name=u["name"] or u["ref"], area=area))
    y -= 4.5 * mm
    c.drawString(LEFT, y, ", ".join(x for x in (p["name"], p["address"]) if x))
    return y - 4.5 * mm


def _page(c: Canvas, content: dict, settings: dict, logo, recipient: str, lang: str, corrects) -> None:
    letter_head(c, settings, logo, recipient)
    y = HEIGHT - 100 * mm
    if corrects:  # a boxed line above the title: this letter replaces an earlier one
        c.setFillColorRGB(*ALERT)
        c.rect(LEFT - 2 * mm, y + 5 * mm, RIGHT - LEFT + 4 * mm, 7 * mm, stroke=0, fill=1)
        c.setFillColorRGB(1, 1, 1)
        c.setFont("Helvetica-Bold", 10)
        when = day_text(corrects["date"], lang)
        c.drawString(LEFT, y + 7.3 * mm, t("corrected_banner", lang, date=when, revision=corrects["revision"]))
    y = title_block(c, y, t("title", lang, month=month_name(content["month"], lang)), content, lang)
    first, last = content["days"]
    c.drawString(LEFT, y, t("days", lang, first=day_text(first, lang), last=day_text(last, lang)))
    y = _table(c, content, lang, y - 9 * mm)
    if content["lines"]:
        y = _chart(c, content["lines"][0], lang, y - 6 * mm)
    _notes(c, content, settings, lang, y - 6 * mm)


def _table(c: Canvas, content: dict, lang: str, y: float) -> float:
    month = content["month"]
    prev = f"{int(month[:4]) - (month[5:] == '01'):04d}-{(int(month[5:]) + 10) % 12 + 1:02d}"
    last_year = f"{int(month[:4]) - 1:04d}-{month[5:]}"
    heads = ["", month_name(month, lang), month_name(prev, lang), month_name(last_year, lang)]
    heads += [t("col_property", lang), t("col_cohort", lang)]
    xs = [LEFT, LEFT + 40 * mm, LEFT + 62 * mm, LEFT + 84 * mm, LEFT + 106 * mm, LEFT + 130 * mm]
    c.setFont("Helvetica-Bold", 8.5)
    for x, head in zip(xs, heads, strict=True):
        c.drawString(x, y, head)
    c.setStrokeColorRGB(*GREY)
    c.line(LEFT, y - 1.8 * mm, RIGHT, y - 1.8 * mm)
    c.setFont("Helvetica", 9.5)
    for line in content["lines"]:
        y -= 6 * mm
        d = decimals_of(line["unit"])
        cells = [f"{t(line['kind'], lang)} ({unit_text(line['unit'], lang)})"]
        cells += [figure_text(line[k], lang, d) for k in ("month", "previous", "last_year")]
        cells += [figure_text(line["benchmarks"][k], lang, d) for k in ("property", "cohort")]
        for x, cell in zip(xs, cells, strict=True):
            c.drawString(x, y, cell)
    return y


def _chart(c: Canvas, line: dict, lang: str, y: float) -> float:
    """Bars of the 13 months of the first line; estimated bars lighter with `*`, none `–`."""
    height, width = 45 * mm, RIGHT - LEFT
    c.setFont("Helvetica-Bold", 9)
    what = t(line["kind"], lang)
    c.drawString(LEFT, y, t("chart", lang, what=what, unit=unit_text(line["unit"], lang)))
    base = y - 5 * mm - height
    values = [h["value"] for h in line["history"] if h["value"] is not None]
    top = max(values + [v for v in (line["benchmarks"]["property"].get("value"),) if v] + [1.0])
    step = width / len(line["history"])
    c.setFont("Helvetica", 7)
    for i, h in enumerate(line["history"]):
        x = LEFT + i * step
        label = figure_text(h, lang, decimals_of(line["unit"]))
        if h["value"] is not None:
            bar = max(0.0, h["value"]) / top * (height - 6 * mm)
            c.setFillColorRGB(*(LIGHT if h["status"] == "estimated" else DARK))
            c.rect(x + step * 0.15, base, step * 0.7, bar, stroke=0, fill=1)
            c.setFillColorRGB(0, 0, 0)
            c.drawCentredString(x + step / 2, base + bar + 1.2 * mm, label)
        else:
            c.drawCentredString(x + step / 2, base + 1.2 * mm, label)
        c.drawCentredString(x + step / 2, base - 3.5 * mm, month_name(h["month"], lang, short=True))
    c.setStrokeColorRGB(*GREY)
    c.line(LEFT, base, RIGHT, base)
    return base - 6 * mm


def _notes(c: Canvas, content: dict, settings: dict, lang: str, y: float) -> None:
    notes = [t("legend", lang)]
    first, last = content["days"]
    if _partial(content):
        notes.append(t("partial", lang, days=_day_count(first, last)))
    lines = content["lines"]
    if any(h["status"] == "before_move_in" for line in lines for h in line["history"]):
        notes.append(t("before_move_in", lang))
    for line in lines:
        cohort = line["benchmarks"]["cohort"]
        if cohort.get("status") == "measured":
            key = cohort_text(cohort["key"], lang)
            notes.append(
                f"{t(line['kind'], lang)} – "
                + t("cohort_line", lang, key=key, size=cohort["size"], basis=basis_text(cohort["basis"], lang))
            )
        elif cohort.get("status") == "too_small":
            notes.append(f"{t(line['kind'], lang)} – " + t("cohort_small", lang, size=cohort["size"]))
        for note in line["notes"]:
            if note == "hca_units":
                notes.append(t("hca_units", lang))
            elif note.startswith("hca_converted:"):
                _, method, version = note.split(":", 2)
                notes.append(t("hca_converted", lang, method=method, version=version))
    c.setFont("Helvetica", 7.5)
    for note in notes:
        for part in _wrap(note, 120):
            c.drawString(LEFT, y, part)
            y -= 3.6 * mm
        y -= 0.8 * mm
    c.setFont("Helvetica", 7.5)
    c.setFillColorRGB(*GREY)
    c.drawString(LEFT, 15 * mm, t("legal", lang))
    if settings.get("supplier_contact"):
        c.drawString(LEFT, 11 * mm, t("questions", lang, contact=settings["supplier_contact"]))
    c.setFillColorRGB(0, 0, 0)


def _partial(content: dict) -> bool:
    month = content["month"]
    first, last = content["days"]
    return first != f"{month}-01" or last[:7] != month or int(last[8:]) < _month_length(month)


def _month_length(month: str) -> int:
    y, m = int(month[:4]), int(month[5:])
    return [31, 29 if y % 4 == 0 and (y % 100 or y % 400 == 0) else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][m - 1]


def _day_count(first: str, last: str) -> int:
    return (date.fromisoformat(last) - date.fromisoformat(first)).days + 1


def _wrap(text: str, width: int) -> list[str]:
    out, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            out.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return out + ([line] if line else [])
