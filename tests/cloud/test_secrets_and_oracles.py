"""Secrets and oracles (issue 9, item 13): an error never contains key material, and no answer
reveals the names of another tenant.

A key file with swapped columns used to echo 20 of the key's 32 hex digits. The property: whatever
the key file (CSV through the parser, the API and the CLI), no error message contains a run of 6
or more hex digits of any key in the input. A taken username or gateway serial gets one neutral
answer, the same whether the clash is in the caller's tenant or another one.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from omshub.cloud.store.keystore import KeyStoreError, parse_key_csv, parse_meter_list

RUN = 6


def _leaks(message: str, keys: list[str]) -> list[str]:
    """The runs of >= RUN hex digits of `keys` that appear in `message` (case-insensitive)."""
    lowered = message.lower()
    return sorted(
        {key[i : i + RUN] for key in keys for i in range(len(key) - RUN + 1) if key[i : i + RUN].lower() in lowered}
    )


_key = st.from_regex(r"[0-9A-Fa-f]{32}", fullmatch=True)
_id = st.from_regex(r"[0-9A-Fa-f]{8}", fullmatch=True)


@st.composite
def key_files(draw) -> tuple[str, list[str]]:
    """(key file, its keys): files right and wrong, the keys placed in any column — swapped and
    shifted columns, short and long keys, keys with spaces, quotes, extra columns, CSV syntax
    errors, repeats, other text."""
    header = draw(
        st.sampled_from(
            [
                "id,key",
                "key,id",
                "manufacturer,id,key",
                "id,manufacturer,key",
                "id;key",
                "ID,KEY,extra",
                "id,key,manufacturer",
                "",
                "key",
                "# comment\nid,key",
            ]
        )
    )
    rows, keys = [], []
    for _ in range(draw(st.integers(0, 6))):
        key = draw(_key)
        keys.append(key)
        meter, short, text = draw(_id), key[: draw(st.integers(1, 31))], draw(st.text(max_size=20))
        cells = draw(
            st.sampled_from(
                [
                    [meter, key],
                    [key, meter],
                    ["KAM", meter, key],
                    ["KAM", key, meter],
                    [short, meter],
                    [meter, short],
                    [meter, key + "0"],
                    [meter, key + "X"],
                    [meter, key[:16] + " " + key[16:]],
                    [meter, key, key],
                    [key],
                    [f'"{key}', meter],
                    [key + key[:3], "KAM"],
                    [meter, "ZZ" + key[2:]],
                    [meter[:7] + "G", key],
                    ["K" + key[:2], meter, key],
                    [key, key],
                    [text, key],
                    [key, text],
                ]
            )
        )
        rows.append(",".join(cells))
    if rows and draw(st.booleans()):
        rows.append(rows[0])  # a repeated meter
    return "\n".join([header, *rows]), keys


@given(key_files())
def test_no_key_file_error_contains_a_run_of_any_key(case):
    text, keys = case
    try:
        entries = parse_key_csv(text)
    except KeyStoreError as exc:
        message = str(exc)
        assert message and not _leaks(message, keys), message
        event("refused")
        return
    event("parsed")
    assert all(len(e.key) == 16 for e in entries)


def test_swapped_columns_name_the_problem_without_the_key():
    key = "00112233445566778899AABBCCDDEEFF"
    with pytest.raises(KeyStoreError) as caught:
        parse_key_csv(f"id,key\n{key},12345678\n")
    message = str(caught.value)
    assert not _leaks(message, [key]), message
    assert "line 2" in message and "column id" in message and "swapped" in message


def test_a_key_pasted_into_a_meter_list_is_not_echoed():
    key = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
    with pytest.raises(KeyStoreError) as caught:
        parse_meter_list(f"12345678,KAM:{key}")
    assert not _leaks(str(caught.value), [key]) and "meter 2" in str(caught.value)


@pytest.fixture(scope="module")
def operator_csv(module_hub):
    return {**module_hub.headers(module_hub.tenant(), "operator"), "Content-Type": "text/csv"}


@settings(
    max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow], deadline=None
)
@given(case=key_files(), multipart=st.booleans())
def test_key_import_api_errors_contain_no_key(client, operator_csv, case, multipart):
    text, keys = case
    if multipart:
        headers = {k: v for k, v in operator_csv.items() if k != "Content-Type"}
        r = client.post("/api/v1/keys/import", files={"file": ("keys.csv", text.encode(), "text/csv")}, headers=headers)
    else:
        r = client.post("/api/v1/keys/import", content=text.encode(), headers=operator_csv)
    assert r.status_code == 200 or 400 <= r.status_code < 500, r.text
    if r.status_code != 200:
        assert not _leaks(r.text, keys), r.text


def test_key_import_cli_errors_contain_no_key(tmp_path, module_hub, database_url, data_dir):
    from omshub.cli import app as cli

    key = "A1B2C3D4E5F60718293A4B5C6D7E8F90"
    path = tmp_path / "keys.csv"
    path.write_text(f"key,id,manufacturer\n12345678,{key},KAM\n")
    r = CliRunner().invoke(
        cli,
        [
            "keys",
            "import",
            str(path),
            "--tenant",
            module_hub.tenant().slug,
            "--database",
            database_url,
            "--data-dir",
            str(data_dir),
        ],
    )
    assert r.exit_code != 0 and "line 2" in r.output and not _leaks(r.output, [key]), r.output


# --- names of other tenants ---


def test_a_taken_username_gets_the_same_answer_in_every_tenant(hub, client):
    a, b = hub.tenant(), hub.tenant()
    admin_a = hub.headers(a, "admin")
    own = hub.user(a, "viewer")
    others = hub.user(b, "viewer")
    r_own = client.post("/api/v1/users", json={"username": own, "password": "long enough"}, headers=admin_a)
    r_other = client.post("/api/v1/users", json={"username": others, "password": "long enough"}, headers=admin_a)
    assert r_own.status_code == r_other.status_code == 409
    assert r_own.json()["error"]["code"] == r_other.json()["error"]["code"] == "username_unavailable"
    assert r_own.json()["error"]["message"].replace(own, "NAME") == r_other.json()["error"]["message"].replace(
        others, "NAME"
    )
    assert b.slug not in r_other.text and a.slug not in r_other.text


def test_a_taken_gateway_serial_gets_the_same_answer_in_every_tenant(hub, client):
    a, b = hub.tenant(), hub.tenant()
    operator_a = hub.headers(a, "operator")
    own, others = hub.gateway(a), hub.gateway(b)
    r_own = client.post("/api/v1/gateways", json={"serial": own.serial}, headers=operator_a)
    r_other = client.post("/api/v1/gateways", json={"serial": others.serial}, headers=operator_a)
    assert r_own.status_code == r_other.status_code == 409
    assert r_own.json()["error"]["code"] == r_other.json()["error"]["code"] == "serial_unavailable"
    assert r_own.json()["error"]["message"].replace(own.serial, "S") == r_other.json()["error"]["message"].replace(
        others.serial, "S"
    )
    assert b.slug not in r_other.text and "unique across" in r_other.text


def test_a_username_created_concurrently_is_a_409_not_a_500(hub, db):
    """Two creations of one name at once: the second one's check runs before the first commits
    (on PostgreSQL; SQLite's writers queue, so there the check sees it). The unique index decides,
    and the answer is the same 409, not a 500."""
    import threading
    import time

    from omshub.cloud.api.errors import http_status
    from omshub.cloud.domain.errors import DomainError
    from omshub.cloud.services.accounts import create_user

    t = hub.tenant()
    name = f"race-{t.id}"
    created, commit = threading.Event(), threading.Event()
    outcome: dict = {}

    def first():
        with db.transaction() as s:
            create_user(s, t.id, name, "long enough", "viewer")
            created.set()
            commit.wait(30)

    def second():
        try:
            with db.transaction() as s:
                create_user(s, t.id, name, "long enough", "viewer")
            outcome["second"] = "created"
        except DomainError as exc:
            outcome["second"] = (http_status(exc), exc.code)

    one = threading.Thread(target=first)
    one.start()
    assert created.wait(30)
    two = threading.Thread(target=second)
    two.start()
    time.sleep(1.0)  # the second creation is now waiting on the first one's row (or write lock)
    commit.set()
    one.join(30)
    two.join(30)
    assert outcome["second"] == (409, "username_unavailable")


def test_a_key_in_the_meter_import_is_not_echoed(client, operator_csv):
    """The meter CSV names a bad cell, but a long one (a key in the wrong file or column) only by
    its length."""
    key = "00112233445566778899AABBCCDDEEFF"
    for row in (f"KAM,{key},heat", f"{key},12345678,heat"):
        r = client.post(
            "/api/v1/meters/import", content=f"manufacturer,id,device_type\n{row}\n".encode(), headers=operator_csv
        )
        assert r.status_code == 422, r.text
        message = r.json()["error"]["message"]
        assert not _leaks(message, [key]) and "line 2" in message and "32 characters" in message, message
