"""Estimation of a unit's consumption where it could not be measured (HeizkostenV §9a(1), FFVAV §3),
and the 25 % rule of §9a(2) (docs/billing.md §Estimation).

Three methods, in the order the regulation lists them: the same unit's comparable previous period
(heat scaled by degree days; hot water by days), comparable units of the property in the same period
(per m² of living area), and the property's average per m². Each estimate carries its method, the
reading code of the billing exchange and an explanation a customer can read, in German and English.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from omshub.cloud.domain.billing.origins import EstimationMethod, Origin, tabelle_s_code

ESTIMATED_AREA_LIMIT = 0.25


@dataclass(frozen=True, slots=True)
class Estimate:
    value: float
    method: EstimationMethod
    explanation: str
    german: str
    inputs: dict = field(default_factory=dict)

    @property
    def code(self) -> str | None:
        return tabelle_s_code(Origin.ESTIMATED, main=False, method=self.method)


def _de(value: float, digits: int = 1) -> str:
    return f"{value:,.{digits}f}".replace(",", " ").replace(".", ",").replace(" ", ".")


def from_previous_period(
    previous: float,
    *,
    previous_scale: float,
    current_scale: float,
    heat: bool,
    basis: str | None = None,
) -> Estimate | None:
    """The unit's consumption in the comparable previous period × current / previous scale. The
    scale (`basis`): degree days for heat (weather-dependent; the default for `heat`), the VDI 2067
    monthly per-mille shares for heat where no weather series covers both periods (`per_mille`),
    days for hot water and water, which are never weather-scaled (the default otherwise). None if
    the previous period's scale is zero."""
    if previous_scale <= 0 or previous < 0:
        return None
    basis = basis or ("degree_days" if heat else "days")
    value = round(previous * current_scale / previous_scale, 3)
    used = f"({previous:,.1f})"
    benutzt = f"({_de(previous)})"
    if basis == "degree_days":
        en = f"scaled by degree days ({current_scale:,.0f} now against {previous_scale:,.0f} then)."
        de = f"umgerechnet mit Gradtagzahlen ({_de(current_scale, 0)} jetzt gegenüber {_de(previous_scale, 0)} damals)."
    elif basis == "per_mille":
        en = (
            f"scaled by the monthly heating shares of VDI 2067 ({current_scale:,.1f} ‰ now against "
            f"{previous_scale:,.1f} ‰ then), as no weather series covers both periods."
        )
        de = (
            f"umgerechnet mit den monatlichen Heizanteilen nach VDI 2067 ({_de(current_scale)} ‰ jetzt gegenüber "
            f"{_de(previous_scale)} ‰ damals), da keine Wetterreihe beide Zeiträume abdeckt."
        )
    else:
        en = f"scaled by the number of days ({current_scale:g} now against {previous_scale:g} then)."
        de = f"umgerechnet nach der Zahl der Tage ({current_scale:g} jetzt gegenüber {previous_scale:g} damals)."
    en = f"Estimated from your consumption in the comparable previous period {used}, {en}"
    de = f"Geschätzt aus Ihrem Verbrauch im vergleichbaren Vorzeitraum {benutzt}, {de}"
    inputs = {
        "previous": previous,
        "previous_scale": previous_scale,
        "current_scale": current_scale,
        "heat": heat,
        "basis": basis,
    }
    return Estimate(value, EstimationMethod.PREVIOUS_PERIOD, en, de, inputs)


def from_comparable_units(units: list[tuple[float, float]], own_area: float) -> Estimate | None:
    """Average consumption per m² of comparable units of the property in the same period (each
    `(consumption, area)`, only measured ones) × the unit's own area. None without any."""
    usable = [(c, a) for c, a in units if a > 0 and c >= 0]
    area = sum(a for _, a in usable)
    if not usable or area <= 0 or own_area <= 0:
        return None
    per_m2 = sum(c for c, _ in usable) / area
    value = round(per_m2 * own_area, 3)
    en = (
        f"Estimated from {len(usable)} comparable units of the building in the same period: "
        f"{per_m2:,.2f} per m² × {own_area:,.1f} m²."
    )
    de = (
        f"Geschätzt aus {len(usable)} vergleichbaren Nutzeinheiten des Gebäudes im selben Zeitraum: "
        f"{_de(per_m2, 2)} je m² × {_de(own_area)} m²."
    )
    inputs = {"units": len(usable), "area": area, "per_m2": per_m2, "own_area": own_area}
    return Estimate(value, EstimationMethod.COMPARABLE_UNITS, en, de, inputs)


def from_average(per_m2: float, own_area: float, *, cohort: str, cohort_de: str | None = None) -> Estimate | None:
    """The average consumption per m² of the property or user group (`cohort` names it, `cohort_de`
    in German) × own area."""
    if per_m2 < 0 or own_area <= 0:
        return None
    value = round(per_m2 * own_area, 3)
    en = f"Estimated from the average consumption of {cohort}: {per_m2:,.2f} per m² × {own_area:,.1f} m²."
    whose = cohort_de or f"von {cohort}"
    de = f"Geschätzt aus dem Durchschnittsverbrauch {whose}: {_de(per_m2, 2)} je m² × {_de(own_area)} m²."
    return Estimate(
        value, EstimationMethod.PROPERTY_AVERAGE, en, de, {"per_m2": per_m2, "own_area": own_area, "cohort": cohort}
    )


@dataclass(frozen=True, slots=True)
class AreaShare:
    """The share of a property's area whose consumption is estimated, and whether it exceeds 25 %
    (then costs may be allocated by area only: HeizkostenV §9a(2))."""

    estimated_area: float
    total_area: float

    @property
    def share(self) -> float:
        return self.estimated_area / self.total_area if self.total_area > 0 else 0.0

    @property
    def over_limit(self) -> bool:
        return self.share > ESTIMATED_AREA_LIMIT


def estimated_area_share(units: list[tuple[float, bool]]) -> AreaShare:
    """From each unit's `(area, estimated)`."""
    return AreaShare(sum(a for a, e in units if e), sum(a for a, _ in units))
