"""Partial configuration changes: JSON merge patch (RFC 7386) next to the configuration schema.

The laws are property-tested on arbitrary JSON; RFC 7386's own examples (appendix A) pin the
details; a patch applied to a real configuration and validated keeps what it does not name.
"""

from __future__ import annotations

import copy

import pytest
from hypothesis import given
from hypothesis import strategies as st

from omshub.protocol.config import ConfigError, GatewayConfig, diff_patch, merge_patch, patch_depth, validate_config

KEYS = st.text(alphabet="abcxyz_", min_size=1, max_size=3)  # few names: patches hit the target's keys
SCALARS = st.one_of(st.booleans(), st.integers(-5, 5), st.floats(allow_nan=False), st.text(max_size=3))


def _json(with_null: bool):
    leaves = st.one_of(st.none(), SCALARS) if with_null else SCALARS
    return st.recursive(
        leaves,
        lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(KEYS, inner, max_size=4)),
        max_leaves=12,
    )


DOCS = st.dictionaries(KEYS, _json(with_null=False), max_size=5)  # stored documents never hold null
PATCHES = st.dictionaries(KEYS, _json(with_null=True), max_size=5)


def _null_member(value) -> bool:
    """Does `value` or an object nested in it through objects hold a null member? (An array is
    taken as it is, nulls and all: RFC 7386 merges only objects.)"""
    return isinstance(value, dict) and any(v is None or _null_member(v) for v in value.values())


@given(DOCS)
def test_the_empty_patch_is_identity(doc):
    assert merge_patch(doc, {}) == doc


@given(DOCS, PATCHES)
def test_applying_a_patch_twice_equals_once(doc, patch):
    once = merge_patch(doc, patch)
    assert merge_patch(once, patch) == once


@given(DOCS, PATCHES)
def test_a_patch_touches_only_what_it_names(doc, patch):
    merged = merge_patch(doc, patch)
    for key in doc.keys() - patch.keys():
        assert merged[key] == doc[key]
    for key, value in patch.items():
        if value is None:
            assert key not in merged  # null: back to the default
        elif not isinstance(value, dict):
            assert merged[key] == value  # arrays and scalars replace whole
    assert set(merged) <= set(doc) | set(patch)


@given(DOCS, PATCHES)
def test_merging_never_stores_null_and_never_changes_its_inputs(doc, patch):
    doc_before, patch_before = copy.deepcopy(doc), copy.deepcopy(patch)
    merged = merge_patch(doc, patch)
    assert not _null_member(merged)
    assert doc == doc_before and patch == patch_before
    # the result shares nothing mutable with the inputs: editing it leaves them as they were
    for value in merged.values():
        if isinstance(value, (dict, list)):
            value.clear()
    assert doc == doc_before and patch == patch_before


@given(DOCS, DOCS)
def test_the_diff_is_a_patch_from_one_document_to_the_other(before, after):
    patch = diff_patch(before, after)
    assert merge_patch(before, patch) == after
    assert diff_patch(after, after) == {}
    # it names only keys that differ (false and 0 are different JSON values, though equal in Python)
    assert all(
        before.get(k) != after.get(k)
        or type(before.get(k)) is not type(after.get(k))
        or k not in before
        or k not in after
        or isinstance(after[k], dict)
        for k in patch
    )


@given(DOCS, PATCHES, PATCHES)
def test_a_later_patch_wins_where_both_name_a_scalar(doc, first, second):
    merged = merge_patch(merge_patch(doc, first), second)
    for key, value in second.items():
        if value is not None and not isinstance(value, dict):
            assert merged[key] == value


# RFC 7386, appendix A: (original, patch, result)
RFC_EXAMPLES = [
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    (["a", "b"], ["c", "d"], ["c", "d"]),
    ({"a": "b"}, ["c"], ["c"]),
    ({"a": "foo"}, None, None),
    ({"a": "foo"}, "bar", "bar"),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
]


@pytest.mark.parametrize("original, patch, result", RFC_EXAMPLES)
def test_rfc7386_examples(original, patch, result):
    assert merge_patch(original, patch) == result


def _full(**changes) -> dict:
    return {k: v for k, v in validate_config(changes).model_dump(mode="json").items() if k != "version"}


def test_an_upload_change_keeps_the_time_zone_and_everything_else():
    desired = _full(
        timezone="Europe/Berlin",
        spread_s=600,
        filters={"mode": "blacklist", "meters": [{"manufacturer": "KAM", "id": "12345678"}]},
    )
    merged = validate_config(merge_patch(desired, {"upload": {"cron": "0 0 4 * * *"}})).model_dump(mode="json")
    assert merged["timezone"] == "Europe/Berlin" and merged["spread_s"] == 600
    assert merged["upload"] == {"cron": "0 0 4 * * *", "max_batch": desired["upload"]["max_batch"]}
    assert merged["filters"] == desired["filters"]


def test_null_returns_a_setting_to_its_default_and_lists_replace_whole():
    desired = _full(
        timezone="Europe/Berlin",
        upload={"cron": "0 0 4 * * *", "max_batch": 100},
        collection=[{"cron": "0 0 1 * * *"}, {"cron": "0 0 13 * * *"}],
    )
    merged = validate_config(
        merge_patch(desired, {"timezone": None, "upload": {"max_batch": None}, "collection": [{"cron": "0 0 5 * * *"}]})
    )
    default = GatewayConfig()
    assert merged.timezone == default.timezone
    assert merged.upload.max_batch == default.upload.max_batch and merged.upload.cron == "0 0 4 * * *"
    assert [w.cron for w in merged.collection] == ["0 0 5 * * *"]


def test_a_merged_configuration_is_validated_whole():
    with pytest.raises(ConfigError) as exc:
        validate_config(merge_patch(_full(), {"upload": {"max_batch": 0}}))
    assert "upload.max_batch" in str(exc.value)


def test_patch_depth_counts_nesting_without_recursion():
    assert patch_depth(1) == 0 and patch_depth({}) == 1 and patch_depth({"a": [1]}) == 2
    assert patch_depth({"filters": {"meters": [{"id": "12345678"}]}}) == 4
    deep: dict = {}
    node = deep
    for _ in range(5000):  # far beyond Python's recursion limit
        node["x"] = {}
        node = node["x"]
    assert patch_depth(deep) == 5001


def test_false_and_zero_are_different_values_to_the_diff():
    """JSON tells false from 0: a change of type is a change."""
    assert diff_patch({"_": False}, {"_": 0}) == {"_": 0}
    assert merge_patch({"_": False}, diff_patch({"_": False}, {"_": 0})) == {"_": 0}
