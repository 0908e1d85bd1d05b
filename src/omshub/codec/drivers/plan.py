"""Per-meter-kind driver plans: everything ``apply`` needs for one (manufacturer, device type,
version), worked out once and reused for every telegram of that kind.

A plan holds the matching drivers, which of their parts can run at all (VIF rules, relabels,
layouts, computed fields), and the field rules compiled into lookup tables: rules that name an
exact (quantity, storage, tariff, subunit, function) become one dict entry, so naming the fields
of a telegram is one pass over its records plus one dict lookup per rule. Rules with wildcards
or an exact ``dif_vif`` keep the general matcher (:func:`.engine.select`).
"""

from __future__ import annotations

from collections.abc import Callable
from operator import itemgetter
from typing import Any

from . import engine as _engine

_RECORD_KEY = itemgetter("quantity", "storage", "tariff", "subunit", "function")
_STORAGE = itemgetter(1)
_VALUE = itemgetter("value")
_MAX_LAYOUTS = 4096  # record layouts remembered per plan (a few per meter model in practice)


class Plan:
    """What ``apply`` does for one kind of meter (see module doc)."""

    __slots__ = (
        "drivers",
        "owns_apl",
        "needs_apl",
        "work",
        "record_layouts",
        "rules",
        "keys",
        "series",
        "series_from",
        "computed",
        "by_layout",
    )

    def __init__(
        self, drivers: tuple[Any, ...], generic_rules: tuple[Any, ...], series: tuple[Any, ...], version: Any
    ) -> None:
        self.drivers = drivers
        # the driver work that changes or adds records, in the order apply runs it
        # per driver with anything to do: (driver, its layouts that apply to this version)
        work = []
        for d in drivers:
            layouts = tuple(
                layout
                for layout in d.layouts
                if layout.source != "ci" and (layout.versions is None or version in layout.versions)
            )
            if d.vifs or d.relabel or layouts:
                work.append((d, layouts))
        self.work = tuple(work)
        every = [layout for _, layouts in work for layout in layouts]
        self.record_layouts = any(layout.source == "record" for layout in every)
        self.owns_apl = any(layout.source == "apl" and layout.replace_records for layout in every)
        self.needs_apl = any(layout.source == "apl" for layout in every)
        # (field name, exact key or None, rule, from a driver); generic rules first, then drivers'
        rules = [(rule.field, _exact_key(rule), rule, False) for rule in generic_rules]
        rules += [(rule.field, _exact_key(rule), rule, True) for d in drivers for rule in d.fields]
        self.rules = tuple(rules)
        self.keys = frozenset(key for _, key, _, _ in rules if key is not None)
        self.series = series
        self.series_from = min((s.first_storage for s in series), default=0)
        self.computed = tuple(v for d in drivers for v in d.computed)
        # layout -> field picks; only when every rule names an exact key (see name_fields)
        self.by_layout: dict[Any, Any] | None = {} if all(key is not None for _, key, _, _ in rules) else None

    def name_fields(self, records: list[Any], fields: dict[str, Any], layout: Any = None) -> None:
        """Fill ``fields`` from ``records`` by the plan's rules (values already there are kept).

        ``layout`` (the decoder passes it) is the records' ``dif_vif`` texts joined, for records
        exactly as the record decoder made them: their keys then follow from it, so which
        record each field takes is worked out once per layout (see :meth:`_by_layout`)."""
        by_layout = self.by_layout
        keys: Any = None
        if by_layout is not None and layout is None:
            # records a driver changed or added (no dif_vif layout): their keys are the layout
            try:
                keys = layout = tuple(map(_RECORD_KEY, records))
                hash(layout)
            except (KeyError, TypeError):  # records without the usual keys, or with odd values
                keys = layout = None
        if layout is not None and by_layout is not None:
            names, pick, deep = by_layout.get(layout) or self._by_layout(layout, records)
            try:
                values = pick(list(map(_VALUE, records))) if names else ()
            except (KeyError, IndexError):  # not the records the layout describes
                values = None
            if values is not None and None not in values:  # else: a record without a valid value
                if names:
                    if fields:  # values already there are kept
                        setdefault = fields.setdefault
                        for name, value in zip(names, values, strict=False):
                            setdefault(name, value)
                    else:
                        fields.update(zip(names, values, strict=False))
                if deep:
                    self._series(records, fields)
                return
        try:
            keys = list(keys if keys is not None else map(_RECORD_KEY, records))
            index = dict(zip(reversed(keys), reversed(records), strict=False))  # the first record of a key wins
            deepest = max(map(_STORAGE, keys), default=0) if self.series else 0
        except (KeyError, TypeError):  # records without the usual keys, or with odd values
            index = _loose_index(records)
            deepest = None  # unknown: let the series look
        named: dict[str, Any] = {}
        select = _engine.select
        for field, key, rule, from_driver in self.rules:
            if not from_driver and field in named:
                continue  # the first generic rule that finds a value names the field
            if key is None:
                value = select(records, rule)
            else:
                r = index.get(key)
                if r is None:
                    continue
                value = r.get("value")
                if value is None or r.get("error_value"):
                    value = select(records, rule)  # a later record of the same key may hold a value
            if value is not None:
                named[field] = value
        if fields:
            for name, value in named.items():
                fields.setdefault(name, value)
        else:
            fields.update(named)
        if self.series and (deepest is None or deepest >= self.series_from):
            self._series(records, fields)

    def _series(self, records: list[Any], fields: dict[str, Any]) -> None:
        for s in self.series:
            if s.field not in fields:
                history = _engine.series_values(records, s.quantity, s.name, s.first_storage)
                if history:
                    fields[s.field] = history

    def _by_layout(self, layout: Any, records: list[Any]) -> tuple[Any, ...]:
        """(field names, getter of their records' positions, any history records) for a layout.

        Made from the records of the first telegram with this layout: the record each rule
        takes is the first of its key (the general path takes the first with a valid value,
        the same record whenever its value is valid, which the caller checks)."""
        memo = self.by_layout
        assert memo is not None  # only plans whose rules all name exact keys pick by layout
        found: tuple[Any, ...] | None = memo.get(layout)
        if found is not None:
            return found
        first: dict[Any, int] = {}
        for position, key in enumerate(map(_RECORD_KEY, records)):
            first.setdefault(key, position)
        chosen: dict[str, int] = {}
        for field, key, _rule, from_driver in self.rules:
            at = first.get(key)
            if at is not None and (from_driver or field not in chosen):
                chosen[field] = at
        positions = tuple(chosen.values())
        pick: Callable[[Any], tuple[Any, ...]] | None
        if len(positions) == 1:
            single = itemgetter(positions[0])
            pick = lambda values: (single(values),)  # noqa: E731 - itemgetter of one index returns no tuple
        else:
            pick = itemgetter(*positions) if positions else None
        deep = bool(self.series) and any(isinstance(key[1], int) and key[1] >= self.series_from for key in first)
        found = (tuple(chosen), pick, deep)
        if len(memo) >= _MAX_LAYOUTS:
            memo.clear()
        memo[layout] = found
        return found


def _exact_key(rule: Any) -> tuple[Any, ...] | None:
    if rule.dif_vif is not None or None in (rule.storage, rule.tariff, rule.subunit, rule.function):
        return None
    return (rule.quantity, rule.storage, rule.tariff, rule.subunit, rule.function)


def _loose_index(records: list[Any]) -> dict[Any, Any]:
    """(quantity, storage, tariff, subunit, function) -> first record, for records of any shape."""
    index: dict[Any, Any] = {}
    for r in records:
        if not isinstance(r, dict):
            continue
        key = (r.get("quantity"), r.get("storage"), r.get("tariff"), r.get("subunit"), r.get("function"))
        try:
            index.setdefault(key, r)
        except TypeError:  # an unhashable value: no rule can name it
            continue
    return index
