"""Where a boundary value came from, its quality, and the industry's reading codes.

Every value omshub derives for billing carries an `Origin`. Exports translate it to the reading
flags of the German billing exchange (ARGE HeiWaKo / bved "Tabelle S"), which SAP IS-U and housing
ERPs also understand: docs/billing.md lists the mapping with the reasons.
"""

from __future__ import annotations

from enum import StrEnum


class Origin(StrEnum):
    """How a register value at a boundary was obtained."""

    METER_STORED = "meter_stored"  # the meter's own due-date or month-end value
    MEASURED = "measured"  # a reading close enough to the boundary
    INTERPOLATED = "interpolated"  # linear between the readings on either side
    ESTIMATED = "estimated"  # by one of the estimation methods (method code kept)
    EDITED = "edited"  # set by an operator (who, when, why; the original kept)
    MISSING = "missing"  # nothing could be derived; never shown as zero


class Quality(StrEnum):
    """The quality a customer document shows: estimated values get `*`, missing ones `–`."""

    MEASURED = "measured"
    INTERPOLATED = "interpolated"
    ESTIMATED = "estimated"
    MISSING = "missing"


QUALITY_OF_ORIGIN = {
    Origin.METER_STORED: Quality.MEASURED,
    Origin.MEASURED: Quality.MEASURED,
    Origin.INTERPOLATED: Quality.INTERPOLATED,
    Origin.ESTIMATED: Quality.ESTIMATED,
    Origin.EDITED: Quality.ESTIMATED,
    Origin.MISSING: Quality.MISSING,
}


class EstimationMethod(StrEnum):
    """The estimation methods HeizkostenV §9a(1) allows, and the interim split of §9b."""

    PREVIOUS_PERIOD = "previous_period"  # the same unit's comparable period, degree-day scaled
    COMPARABLE_UNITS = "comparable_units"  # other units of the property, same period, per m²
    PROPERTY_AVERAGE = "property_average"  # the property's (or user group's) average per m²
    BY_AREA = "by_area"  # a share by living area alone
    SPLIT_BY_DAYS = "split_by_days"  # a period value split pro rata temporis
    SPLIT_BY_DEGREE_DAYS = "split_by_degree_days"  # split by degree days (or the per-mille table)


# "Tabelle S" reading flags (docs/billing.md §Codes)
TABELLE_S = {
    "estimate": "01",
    "estimate_previous_year": "02",
    "estimate_by_area": "06",
    "estimate_comparable_periods": "07",
    "estimate_average": "08",
    "main_reading": "11",
    "interim_reading": "12",
    "split_by_days": "13",
    "split_by_degree_days": "14",
    "estimate_comparable_rooms": "15",
}

_METHOD_CODE = {
    EstimationMethod.PREVIOUS_PERIOD: TABELLE_S["estimate_comparable_periods"],
    EstimationMethod.COMPARABLE_UNITS: TABELLE_S["estimate_comparable_rooms"],
    EstimationMethod.PROPERTY_AVERAGE: TABELLE_S["estimate_average"],
    EstimationMethod.BY_AREA: TABELLE_S["estimate_by_area"],
    EstimationMethod.SPLIT_BY_DAYS: TABELLE_S["split_by_days"],
    EstimationMethod.SPLIT_BY_DEGREE_DAYS: TABELLE_S["split_by_degree_days"],
}


def tabelle_s_code(origin: Origin, *, main: bool, method: EstimationMethod | None = None) -> str | None:
    """The reading flag of a boundary value: `main` is True at the yearly due date (a main reading),
    False at other boundaries (month ends, moves: interim readings). A value the meter stored or a
    reading close to the boundary is a reading; a value interpolated linearly in time between two
    readings is a split by days (13); an estimate carries its method's code; an edited value counts
    as an estimate (01) unless its method is known. None: a missing value has no code."""
    if origin in (Origin.METER_STORED, Origin.MEASURED):
        return TABELLE_S["main_reading"] if main else TABELLE_S["interim_reading"]
    if origin is Origin.INTERPOLATED:
        return TABELLE_S["split_by_days"]
    if origin in (Origin.ESTIMATED, Origin.EDITED):
        if method is not None:
            return _METHOD_CODE[method]
        return TABELLE_S["estimate"]
    return None
