"""Billing rules without the database (docs/billing.md): periods and their boundaries, the value of a
register at a boundary with its origin, validation rules, estimation methods and degree days.

Everything here is a pure function of plain values: datetimes are aware UTC, registers are floats in
the canonical unit of their quantity (docs/formats.md). The services feed them from the store and
keep their results.
"""
