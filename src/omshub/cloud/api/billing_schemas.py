"""Response models of the billing and master-data routes: what the OpenAPI document promises for each
answer (docs/billing.md explains the fields)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class Page(BaseModel):
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null: no more")


class ComputedOut(BaseModel):
    value: float | None
    origin: str
    details: dict[str, Any]


class BillingValueOut(BaseModel):
    id: int
    metering_point_id: int
    quantity: str = Field(description="energy (kWh), volume (m³) or hca (units)")
    boundary: str = Field(description="the boundary, UTC")
    boundary_day: str = Field(description="the local day it starts")
    reason: str = Field(description="month | due_date | move_in | move_out | start")
    value: float | None
    origin: str = Field(description="meter_stored | measured | interpolated | estimated | edited | missing")
    quality: str = Field(description="measured | interpolated | estimated | missing")
    code: str | None = Field(description="the reading code of the German billing exchange (Tabelle S)")
    method: str | None = Field(description="the estimation method of an estimated value")
    details: dict[str, Any] = Field(description="the evidence: telegrams, distance or gap, storage, who edited")
    computed: ComputedOut = Field(description="what omshub computed from the readings (kept next to an edit)")
    state: str = Field(description="ok | review | pending")
    exported_at: str | None
    export_stale: bool = Field(description="changed after it was exported: export again")


class BillingValuePage(Page):
    items: list[BillingValueOut]


class RunOut(BaseModel):
    meter: str
    start: float | None
    start_origin: str
    end: float | None
    end_origin: str
    consumption: float | None


class ConsumptionOut(BaseModel):
    period: str
    quantity: str
    start: str
    end: str
    value: float | None
    quality: str
    runs: list[RunOut]


class ConsumptionPage(Page):
    items: list[ConsumptionOut]


class FindingOut(BaseModel):
    id: int
    metering_point_id: int
    metering_point_ref: str
    quantity: str
    period: str
    rule: str
    severity: str = Field(description="warning | error")
    message: str
    german: str
    details: dict[str, Any]
    state: str = Field(description="open | accepted | rejected | cleared")
    created_at: str
    decided_at: str | None
    decided_by: str | None
    note: str | None


class FindingPage(Page):
    items: list[FindingOut]


class CloseOut(BaseModel):
    period: str
    points: int = Field(description="metering points with a meter in the period")
    values_changed: int
    findings_open: int
    findings_cleared: int
    export_stale: int
    estimated: int = Field(0, description="periods estimated by the close (setting auto_estimate)")


class QuantityOut(BaseModel):
    value: float | None
    quality: str
    metering_points: list[int]


class UnitConsumptionOut(BaseModel):
    unit_id: int
    period: str
    quantities: dict[str, QuantityOut]


class PropertyUnitOut(BaseModel):
    unit_id: int
    ref: str
    area_m2: float
    quantities: dict[str, QuantityOut]
    estimated: bool


class PropertyConsumptionOut(BaseModel):
    property_id: int
    period: str
    units: list[PropertyUnitOut]
    estimated_area_m2: float
    total_area_m2: float
    estimated_share: float
    over_25_percent: bool = Field(description="HeizkostenV §9a(2): costs by area only")


class BandOut(BaseModel):
    from_value: float
    above_pct: float
    below_pct: float


class RulesOut(BaseModel):
    zero_days: int
    heating_months: list[int]
    stale_days: int
    future_tolerance_s: int
    max_power_kw: float
    max_flow_m3h: float
    max_hca_units_per_day: float
    bands: list[BandOut]
    reset_drop_share: float
    measured_within_s: int
    interpolate_within_s: int
    auto_estimate: list[str] = Field(
        description="estimation methods the close tries, in order, for a period without a value (empty: none)"
    )


class DueDateOut(BaseModel):
    month: int
    day: int


class PropertyOut(BaseModel):
    id: int
    ref: str
    name: str
    street: str
    postcode: str
    city: str
    country: str
    heating_system: str
    energy_carrier: str
    size_class: str
    due_date: DueDateOut
    timezone: str
    weather_station_id: int | None
    created_at: str


class PropertyPage(Page):
    items: list[PropertyOut]


class UnitOut(BaseModel):
    id: int
    property_id: int
    ref: str
    name: str
    area_m2: float
    usage: str
    created_at: str
    metering_point_ids: list[int] = Field(default_factory=list)


class UnitPage(Page):
    items: list[UnitOut]


class OccupancyOut(BaseModel):
    id: int
    unit_id: int
    occupant_id: int
    moved_in: str
    moved_out: str | None


class OccupancyPage(Page):
    items: list[OccupancyOut]


class OccupantOut(BaseModel):
    id: int
    customer_ref: str
    name: str
    email: str
    phone: str
    postal_address: str
    channel: str
    language: str
    created_at: str
    occupancies: list[OccupancyOut] | None = None


class OccupantPage(Page):
    items: list[OccupantOut]


class ImportOut(BaseModel):
    kind: str
    lines: int
    created: int
    updated: int


class StationOut(BaseModel):
    id: int
    code: str
    name: str
    days: int
    first_day: str | None
    last_day: str | None
    created_at: str


class StationPage(Page):
    items: list[StationOut]


class DaysImportOut(BaseModel):
    days: int
    replaced: int
    first: str
    last: str


class DegreeDaysOut(BaseModel):
    first: str
    last: str
    degree_days: float
    days_with_data: int
    days_missing: int


class SegmentOccupantOut(BaseModel):
    id: int
    customer_ref: str
    name: str


class SegmentOut(BaseModel):
    metering_point_id: int
    unit_id: int
    quantity: str
    period: str
    first_day: str = Field(description="the segment's first local day")
    last_day: str = Field(description="its last local day (inclusive)")
    occupancy_id: int | None = Field(description="None: the unit was vacant")
    occupant: SegmentOccupantOut | None
    value: float | None = Field(description="the consumption in the segment; None: missing")
    code: str | None = Field(
        description="Tabelle S: 11/12 readings, 13 split by days, 14 by degree days, or an estimate's"
    )
    method: str = Field(description="readings | split_by_days | split_by_degree_days | missing")
    details: dict


class UnitSegmentsOut(BaseModel):
    unit_id: int
    period: str
    items: list[SegmentOut]


class OccupantSegmentsOut(BaseModel):
    occupant_id: int
    period: str
    items: list[SegmentOut]
