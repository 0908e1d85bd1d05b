"""Response models of the customer information routes (operator API and customer portal): what the
OpenAPI document promises for a record, its lines and comparisons, deliveries and completeness."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

Status = Literal[
    "measured", "interpolated", "estimated", "missing", "not_collected", "before_move_in", "after_move_out"
]


class Figure(BaseModel):
    value: float | None = Field(description="None where there is no value: never a silent zero")
    status: Status
    mark: str = Field(description='"*" estimated, "–" no value, "" measured or interpolated')


class HistoryItem(Figure):
    month: str


class Benchmark(BaseModel):
    key: str = Field(description="the group: property:<id> or the cohort (energy carrier × building size × flat size)")
    size: int = Field(description="units in the group with a measured value of the month")
    basis: str = Field(description="what was measured where, per what")
    per_m2: float | None
    value: float | None = Field(description="the group's average per m² × this unit's area × share of the month")
    status: Literal["measured", "not_collected", "too_small", "not_comparable"]


class Benchmarks(BaseModel):
    property: Benchmark
    cohort: Benchmark


class Line(BaseModel):
    kind: Literal["heat", "hot_water", "hca"]
    unit: str
    month: Figure
    previous: Figure
    last_year: Figure
    history: list[HistoryItem]
    benchmarks: Benchmarks
    notes: list[str]


class UnitRef(BaseModel):
    id: int
    ref: str
    name: str
    area_m2: float


class PropertyRef(BaseModel):
    id: int
    name: str
    address: str


class OccupantRef(BaseModel):
    id: int
    name: str
    moved_in: str


class RecordOut(BaseModel):
    id: int
    month: str
    days: list[str] = Field(description="first and last day the record covers")
    unit: UnitRef
    property: PropertyRef
    occupant: OccupantRef | None
    lines: list[Line]
    complete: bool
    gaps: list[str]
    revision: int
    corrects: dict | None = Field(None, description="the earlier revision this one corrects: revision, date")
    changed_at: str


class RecordPage(BaseModel):
    items: list[RecordOut]
    next_cursor: str | None


class MonthCounts(BaseModel):
    month: str
    units: int
    new: int
    changed: int
    unchanged: int
    incomplete: int


class DeliveryOut(BaseModel):
    id: int
    record_id: int
    channel: Literal["email", "post"]
    state: Literal["pending", "sent", "failed"]
    attempts: int
    next_attempt_at: str | None
    last_error: str
    errors: list[dict]
    sent_at: str | None


class DeliveryPage(BaseModel):
    items: list[DeliveryOut]
    next_cursor: str | None


class CompletenessUnit(BaseModel):
    record_id: int
    delivery_id: int | None = None
    unit_ref: str
    occupant: str
    days: list[str]
    channel: str | None
    state: str | None
    sent_at: str | None
    last_error: str = ""
    complete: bool
    reasons: list[str]


class CompletenessProperty(BaseModel):
    property_id: int
    name: str
    complete: int
    missing: int
    units: list[CompletenessUnit]


class Completeness(BaseModel):
    month: str
    deadline: str
    occupants: int
    complete: int
    missing: int
    reasons: dict[str, int]
    alarm: bool
    properties: list[CompletenessProperty]


class ChannelCounts(BaseModel):
    pending: int = 0
    sent: int = 0
    failed: int = 0


class MonthSummary(BaseModel):
    month: str
    records: int
    complete_records: int
    notices: dict[str, ChannelCounts]
    next_attempt_at: str | None


class RunOut(BaseModel):
    month: str
    records: MonthCounts
    deliveries_planned: dict[str, int]
    summary: MonthSummary


class InvitationOut(BaseModel):
    occupant_id: int
    customer_ref: str
    name: str
    email: str
    channel: str
    state: Literal["none", "invited", "expired", "active", "locked"]
    invite_expires_at: str | None


class InvitationPage(BaseModel):
    items: list[InvitationOut]
    next_cursor: str | None
