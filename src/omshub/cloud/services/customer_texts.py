"""The customer information's words in German and English, and how its numbers, months and marks
are written (Babel): shared by the PDF letter, the e-mail and the portal's JSON."""

from __future__ import annotations

from datetime import date

from babel.dates import format_date
from babel.numbers import format_decimal

from omshub.cloud.domain.customer_info import mark

TEXTS: dict[str, tuple[str, str]] = {
    "title": ("Ihre Verbrauchsinformation für {month}", "Your consumption information for {month}"),
    "unit": ("Nutzeinheit {ref} ({name}), {area} m² Wohnfläche", "Unit {ref} ({name}), {area} m² living area"),
    "days": ("Zeitraum: {first} bis {last}", "Period: {first} to {last}"),
    "partial": (
        "Sie wohnten in diesem Monat nur an {days} Tagen hier; die Vergleichswerte gelten für diese Tage.",
        "You lived here on {days} days of this month only; the comparison values are for these days.",
    ),
    "heat": ("Heizung", "Heating"),
    "hot_water": ("Warmwasser", "Hot water"),
    "hca": ("Heizkostenverteiler", "Heat cost allocators"),
    "col_month": ("{month}", "{month}"),
    "col_property": ("Ø Liegenschaft", "Ø property"),
    "col_cohort": ("Ø Vergleichsnutzer", "Ø comparable user"),
    "chart": ("{what}: die letzten 13 Monate ({unit})", "{what}: the last 13 months ({unit})"),
    "legend": ("* geschätzt   – keine Daten", "* estimated   – no data"),
    "cohort_line": (
        "Vergleichsnutzer: {key}; {size} Nutzeinheiten; Basis: {basis}",
        "Comparable users: {key}; {size} units; basis: {basis}",
    ),
    "cohort_small": (
        "Vergleichsnutzer: zu wenige vergleichbare Nutzeinheiten ({size}) für einen Vergleich.",
        "Comparable users: too few comparable units ({size}) for a comparison.",
    ),
    "hca_units": (
        "Heizkostenverteiler zählen Einheiten, keine kWh; eine Umrechnung ist nicht festgelegt. Die Einheiten "
        "sind nur mit Ihren eigenen Werten und denen Ihres Hauses vergleichbar.",
        "Heat cost allocators count units, not kWh; no conversion has been declared. The units compare only "
        "with your own values and those of your building.",
    ),
    "hca_converted": (
        "Heizkostenverteiler-Einheiten in kWh umgerechnet (Verfahren {method}, Version {version}); "
        "die Werte können von der Jahresabrechnung abweichen.",
        "Heat cost allocator units converted to kWh (method {method}, version {version}); the values may "
        "differ from the annual bill.",
    ),
    "before_move_in": (
        "Monate vor Ihrem Einzug werden nicht gezeigt (–).",
        "Months before you moved in are not shown (–).",
    ),
    "legal": (
        "Monatliche Verbrauchsinformation nach § 6a Heizkostenverordnung und § 4 Abs. 4 FFVAV.",
        "Monthly consumption information under § 6a Heizkostenverordnung and § 4(4) FFVAV.",
    ),
    "questions": ("Fragen? {contact}", "Questions? {contact}"),
    "basis_heat": (
        "Wärmezähler der Nutzeinheit, kWh je m² Wohnfläche, derselbe Monat",
        "the unit's heat meter, kWh per m² living area, same month",
    ),
    "basis_hot_water": (
        "Warmwasserzähler der Nutzeinheit, m³ je m² Wohnfläche, derselbe Monat",
        "the unit's hot water meter, m³ per m² living area, same month",
    ),
    "basis_hca": (
        "Heizkostenverteiler der Nutzeinheit, Einheiten je m² Wohnfläche, derselbe Monat, dieselbe Liegenschaft",
        "the unit's heat cost allocators, units per m² living area, same month, same property",
    ),
    "mail_subject": ("Ihre Verbrauchsinformation {month}", "Your consumption information {month}"),
    "mail_body": (
        "Guten Tag {name},\n\nIhre Verbrauchsinformation für {month} ist da.\n{how}\n\n"
        "Heizung {month}: {heat}\n\nMit freundlichen Grüßen\n{supplier}\n",
        "Hello {name},\n\nyour consumption information for {month} is ready.\n{how}\n\n"
        "Heating {month}: {heat}\n\nKind regards\n{supplier}\n",
    ),
    "mail_attached": ("Sie finden sie im Anhang (PDF).", "You find it attached (PDF)."),
    "mail_link": ("Sie finden sie im Kundenportal: {url}", "You find it in the customer portal: {url}"),
    "mail_subject_corrected": (
        "Korrigierte Verbrauchsinformation {month}",
        "Corrected consumption information {month}",
    ),
    "mail_corrected": (
        "Korrigierte Information: Sie ersetzt unsere Verbrauchsinformation für {month} vom {sent} "
        "(Stand {revision}), deren Werte sich seitdem geändert haben.",
        "Corrected information: it replaces our consumption information for {month} of {sent} "
        "(version {revision}), whose values have changed since.",
    ),
    "corrected_banner": (
        "Korrigierte Information – ersetzt die Information vom {date} (Stand {revision})",
        "Corrected information – replaces the information of {date} (version {revision})",
    ),
    "annual_title": ("Ihre Jahresinformation {period}", "Your annual information {period}"),
    "annual_periods": (
        "Abrechnungszeitraum {first} bis {last}; Vorjahreszeitraum {pfirst} bis {plast}",
        "Billing period {first} to {last}; previous period {pfirst} to {plast}",
    ),
    "annual_col_kind": ("Verbrauch", "Consumption"),
    "annual_col_previous": ("Vorjahreszeitraum", "Previous period"),
    "annual_col_current": ("Abrechnungszeitraum", "Billing period"),
    "annual_measured": ("gemessen", "measured"),
    "annual_corrected": ("witterungsbereinigt", "weather-corrected"),
    "annual_chart": (
        "Vergleich mit dem Vorjahreszeitraum (Heizung witterungsbereinigt, Warmwasser wie gemessen)",
        "Comparison with the previous period (heating weather-corrected, hot water as measured)",
    ),
    "annual_method": (
        "Witterungsbereinigung der Heizung nach Gradtagzahlen (Verbrauch × G_ref / G): {now} Gradtage im "
        "Abrechnungszeitraum, {then} im Vorjahreszeitraum, Bezug {ref}. Warmwasser wird nie witterungsbereinigt "
        "(§ 6a Abs. 3 HeizkostenV).",
        "Heating weather-corrected by degree days (consumption × G_ref / G): {now} degree days in the billing "
        "period, {then} in the previous one, reference {ref}. Hot water is never weather-corrected "
        "(§ 6a(3) HeizkostenV).",
    ),
    "annual_legal": (
        "Jahresinformation nach § 6a Abs. 3 Heizkostenverordnung und § 5 FFVAV.",
        "Annual information under § 6a(3) Heizkostenverordnung and § 5 FFVAV.",
    ),
    "block_energy_mix": ("Energieträgermix", "Energy mix"),
    "block_emissions": ("Treibhausgasemissionen", "Greenhouse-gas emissions"),
    "block_primary_energy_factor": ("Primärenergiefaktor", "Primary energy factor"),
    "block_taxes_levies": ("Steuern, Abgaben und Zölle", "Taxes, levies and duties"),
    "block_device_charges": ("Entgelte für Geräte, Ablesung und Abrechnung", "Charges for devices, reading, billing"),
    "block_consumer_organisations": (
        "Verbraucherorganisationen und Energieagenturen",
        "Consumer organisations and energy agencies",
    ),
    "block_dispute_resolution": ("Beschwerden und Streitbeilegung", "Complaints and dispute resolution"),
}


def t(name: str, language: str, /, **kw) -> str:
    de, en = TEXTS[name]
    return (de if language == "de" else en).format(**kw)


def _locale(language: str) -> str:
    return "de_DE" if language == "de" else "en_GB"


def month_name(label: str, language: str, short: bool = False) -> str:
    """ "2026-11" -> "November 2026" / "Nov. 26" (German), "Nov 26" (English)."""
    day = date(int(label[:4]), int(label[5:7]), 1)
    return format_date(day, "MMM yy" if short else "MMMM yyyy", locale=_locale(language))


def day_text(iso: str, language: str) -> str:
    return format_date(
        date.fromisoformat(iso), "dd.MM.yyyy" if language == "de" else "d MMM yyyy", locale=_locale(language)
    )


def figure_text(figure: dict, language: str, decimals: int = 1) -> str:
    """A value with its mark: "1.234,5", "640,0*", "–"."""
    m = mark(figure)
    if figure.get("value") is None:
        return "–"
    pattern = "#,##0." + "0" * decimals if decimals else "#,##0"
    return format_decimal(figure["value"], format=pattern, locale=_locale(language)) + m


def decimals_of(unit: str) -> int:
    return 2 if unit == "m³" else 0 if unit == "units" else 1


def unit_text(unit: str, language: str) -> str:
    return {"units": "Einheiten" if language == "de" else "units"}.get(unit, unit)


CARRIERS = {
    "district_heat": ("Fernwärme", "district heat"),
    "local_heat": ("Nahwärme", "local heat"),
    "gas": ("Gas", "gas"),
    "oil": ("Heizöl", "heating oil"),
    "heat_pump": ("Wärmepumpe", "heat pump"),
    "wood": ("Holz", "wood"),
    "electricity": ("Strom", "electricity"),
}


def cohort_text(key: str, language: str) -> str:
    """ "energy_carrier=district_heat|size_class=7-12|flat_size=50-80" -> "Fernwärme, Gebäude mit 7-12
    Nutzeinheiten, Wohnfläche 50-80 m²"."""
    de = language == "de"
    parts = []
    for item in key.split("|"):
        name, _, value = item.partition("=")
        if name == "energy_carrier":
            pair = CARRIERS.get(value, (value, value))
            parts.append(pair[0] if de else pair[1])
        elif name == "size_class":
            parts.append(f"Gebäude mit {value} Nutzeinheiten" if de else f"buildings with {value} units")
        elif name == "flat_size":
            parts.append(f"Wohnfläche {value} m²" if de else f"living area {value} m²")
        elif name.startswith("property"):
            parts.append("Ihre Liegenschaft" if de else "your property")
    return ", ".join(parts) or ("alle" if de else "all")


def basis_text(basis: str, language: str) -> str:
    """A stored basis code ("unit_heat_meter_kwh_per_m2_same_month|converted:…") in words."""
    kind = "hot_water" if "hot_water" in basis else "hca" if "allocators" in basis else "heat"
    return t(f"basis_{kind}", language)
