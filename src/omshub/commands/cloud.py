"""`omshub serve`, `omshub admin …` and `omshub keys …`: run and bootstrap the head-end.

Every command takes `--database`, `--config` and `--data-dir` like `serve` (flags > OMSHUB_…
environment > TOML file > defaults) and applies pending migrations first, so a fresh database
works. Secrets (passwords generated here, tokens, gateway credentials) are printed once.

The head-end (SQLAlchemy, FastAPI, argon2, rich tables) is imported inside the commands: `omshub`
imports this module for every command, and importing the head-end's services takes about a second
on a cold start (measured with `python -X importtime`), which `omshub decode` must not pay.
"""

from __future__ import annotations

import getpass
import json
import logging
import os
import secrets
import sys
from pathlib import Path
from typing import NoReturn

import typer

from omshub.cloud.domain.errors import DomainError
from omshub.commands import fail, say
from omshub.times import iso

admin_app = typer.Typer(help="Bootstrap the head-end: tenants, users, API tokens, gateways.", no_args_is_help=True)
keys_app = typer.Typer(
    help="Meter keys: import a CSV key file, export the key file for given meters.", no_args_is_help=True
)

DatabaseOpt = typer.Option(
    None, "--database", help="database URL (default sqlite in the data dir; postgresql://… for PostgreSQL)"
)
ConfigOpt = typer.Option(None, "--config", help="settings TOML file")
DataDirOpt = typer.Option(None, "--data-dir", help="data directory (SQLite database, master key)")
JsonOpt = typer.Option(False, "--json", help="print JSON instead of a table")


def _fail(message: str, code: int = 1) -> NoReturn:
    fail("omshub", message, code)


def _no_database(url: str, exc: Exception) -> NoReturn:
    where, why = url.split("@")[-1], str(exc).splitlines()[0]
    _fail(say(f"cannot open database {where}: {why}", f"Datenbank {where} lässt sich nicht öffnen: {why}"))


def _settings(database, config, data_dir, **flags):
    # lazy: start-up cost (module docstring)
    from omshub.cloud.settings import SettingsError, load_settings

    try:
        return load_settings(config, database=database, data_dir=data_dir, **flags)
    except SettingsError as exc:
        _fail(str(exc), 2)


def _open_db(settings):
    # lazy: start-up cost (module docstring)
    from sqlalchemy.exc import SQLAlchemyError

    from omshub.cloud.store.database import Database

    try:
        db = Database(settings.database_url, settings.database_read_url)
        db.migrate()
    except (SQLAlchemyError, OSError) as exc:
        _no_database(settings.database_url, exc)
    return db


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:
        return "cli"


def _show(record: dict, as_json: bool, title: str) -> None:
    if as_json:
        typer.echo(json.dumps(record, indent=2, default=str))
        return
    # lazy: start-up cost (module docstring)
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    for key, value in record.items():
        table.add_row(key, "" if value is None else str(value))
    Console().print(table)


def _api_call(fn):
    """Run fn(); a refusal of the head-end (DomainError) becomes a one-line message and exit code 1."""
    try:
        return fn()
    except DomainError as exc:
        _fail(say(exc.message, exc.german or exc.message))


def serve(
    host: str | None = typer.Option(None, "--host", help="bind address (default 127.0.0.1)"),
    port: int | None = typer.Option(None, "--port", help="HTTP port (default 8080)"),
    database: str | None = DatabaseOpt,
    config: Path | None = ConfigOpt,
    data_dir: Path | None = DataDirOpt,
    coap_port: int | None = typer.Option(None, "--coap-port", help="also serve CoAP uplinks on this UDP port"),
    mqtt_url: str | None = typer.Option(
        None, "--mqtt-url", help="also take uplinks from this MQTT broker (mqtt[s]://[user:pass@]host:port)"
    ),
    mqtt_prefix: str | None = typer.Option(None, "--mqtt-prefix", help="MQTT topic prefix (default omshub)"),
    mqtt_shared_group: str | None = typer.Option(
        None, "--mqtt-shared-group", help="share the uplinks among head-end instances ($share/GROUP/...)"
    ),
    pipeline_workers: int | None = typer.Option(
        None, "--pipeline-workers", help="decode worker processes (0: a thread; default: cores - 1)"
    ),
    log_level: str | None = typer.Option(None, "--log-level"),
) -> None:
    """Run the head-end: REST API + uplink ingest (HTTP), the decode pipeline and periodic alarms."""
    # lazy: start-up cost (module docstring)
    import uvicorn
    from sqlalchemy.exc import SQLAlchemyError

    from omshub.cloud.app import create_app
    from omshub.cloud.store.database import Database
    from omshub.cloud.store.keystore import KeyStoreError

    settings = _settings(
        database,
        config,
        data_dir,
        host=host,
        port=port,
        coap_port=coap_port,
        mqtt_url=mqtt_url,
        mqtt_prefix=mqtt_prefix,
        mqtt_shared_group=mqtt_shared_group,
        pipeline_workers=pipeline_workers,
        log_level=log_level,
    )
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        db = Database(settings.database_url, settings.database_read_url)
        app = create_app(settings, db=db, workers=True)
    except (SQLAlchemyError, OSError, ValueError) as exc:
        _no_database(settings.database_url, exc)
    except KeyStoreError as exc:
        _fail(str(exc))
    typer.echo(
        f"omshub: serving on http://{settings.host}:{settings.port} (database {db.dialect}): "
        f"console at /, API docs at /docs",
        err=True,
    )
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        access_log=False,
        timeout_graceful_shutdown=10,
    )


@admin_app.command("create-tenant")
def create_tenant(
    slug: str = typer.Argument(..., help="short name, e.g. stadtwerke-nord"),
    name: str = typer.Option("", "--name", help="display name"),
    timezone: str | None = typer.Option(
        None, "--timezone", help="IANA zone of the tenant's local dates (default Europe/Berlin)"
    ),
    meter_timezone: str | None = typer.Option(
        None, "--meter-timezone", help="IANA zone of its meters' clocks (default Europe/Berlin)"
    ),
    database: str | None = DatabaseOpt,
    config: Path | None = ConfigOpt,
    data_dir: Path | None = DataDirOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Create a tenant (e.g. one heat supplier)."""
    # lazy: start-up cost (module docstring)
    from omshub.cloud.services.accounts import audit
    from omshub.cloud.services.accounts import create_tenant as _create

    db = _open_db(_settings(database, config, data_dir))
    with db.transaction() as session:
        tenant = _api_call(lambda: _create(session, slug, name, timezone=timezone, meter_timezone=meter_timezone))
        audit(
            session,
            tenant.id,
            _actor(),
            "tenant.create",
            {"slug": slug, "timezone": tenant.timezone, "meter_timezone": tenant.meter_timezone},
        )
        record = {
            "id": tenant.id,
            "slug": tenant.slug,
            "name": tenant.name,
            "timezone": tenant.timezone,
            "meter_timezone": tenant.meter_timezone,
            "created_at": iso(tenant.created_at),
        }
    _show(record, as_json, "tenant created")


@admin_app.command("create-user")
def create_user(
    username: str = typer.Argument(...),
    tenant: str = typer.Option(..., "--tenant", help="tenant slug"),
    role: str = typer.Option("viewer", "--role", help="admin | operator | viewer"),
    password: str | None = typer.Option(None, "--password", help="password (else prompted; empty = generate one)"),
    database: str | None = DatabaseOpt,
    config: Path | None = ConfigOpt,
    data_dir: Path | None = DataDirOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Create a user of a tenant. Without --password: prompted on a terminal, else generated and printed once."""
    # lazy: start-up cost (module docstring)
    from omshub.cloud.services.accounts import audit, tenant_by_slug
    from omshub.cloud.services.accounts import create_user as _create

    generated = None
    if password is None:
        if sys.stdin.isatty():
            password = getpass.getpass("password (empty: generate one): ")
        if not password:
            password = generated = secrets.token_urlsafe(15)
    db = _open_db(_settings(database, config, data_dir))
    with db.transaction() as session:
        t = _api_call(lambda: tenant_by_slug(session, tenant))
        user = _api_call(lambda: _create(session, t.id, username, password, role))
        audit(session, t.id, _actor(), "user.create", {"user_id": user.id, "role": role})
        record = {
            "id": user.id,
            "tenant": t.slug,
            "username": user.username,
            "role": user.role,
            "created_at": iso(user.created_at),
        }
    if generated:
        record["password"] = generated
    _show(record, as_json, "user created" + (" (the password is shown only now)" if generated else ""))


@admin_app.command("create-token")
def create_token(
    tenant: str = typer.Option(..., "--tenant", help="tenant slug"),
    name: str = typer.Option(..., "--name", help="what the token is for, e.g. billing"),
    role: str = typer.Option("viewer", "--role", help="admin | operator | viewer"),
    database: str | None = DatabaseOpt,
    config: Path | None = ConfigOpt,
    data_dir: Path | None = DataDirOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Create a service token of the tenant: a long-lived API token that belongs to no user (printed
    once; only its hash is stored). It works until revoked (`revoke-token`, or the API)."""
    # lazy: start-up cost (module docstring)
    from omshub.cloud.services.accounts import create_api_token, tenant_by_slug

    db = _open_db(_settings(database, config, data_dir))
    with db.transaction() as session:
        t = _api_call(lambda: tenant_by_slug(session, tenant))
        row, token = _api_call(lambda: create_api_token(session, t.id, name, role, actor=_actor()))
        record = {
            "id": row.id,
            "tenant": t.slug,
            "name": row.name,
            "role": row.role,
            "created_at": iso(row.created_at),
            "token": token,
        }
    _show(record, as_json, "API token created (the token is shown only now)")


@admin_app.command("list-tokens")
def list_tokens(
    tenant: str = typer.Option(..., "--tenant", help="tenant slug"),
    database: str | None = DatabaseOpt,
    config: Path | None = ConfigOpt,
    data_dir: Path | None = DataDirOpt,
    as_json: bool = JsonOpt,
) -> None:
    """The tenant's API tokens (service tokens and users' tokens; never the tokens themselves)."""
    # lazy: start-up cost (module docstring)
    from sqlalchemy import select

    from omshub.cloud.services.accounts import tenant_by_slug
    from omshub.cloud.store.models import ApiToken, User

    db = _open_db(_settings(database, config, data_dir))
    with db.session() as session:
        t = _api_call(lambda: tenant_by_slug(session, tenant))
        rows = session.execute(
            select(ApiToken, User.username)
            .outerjoin(User, User.id == ApiToken.user_id)
            .where(ApiToken.tenant_id == t.id, ApiToken.kind == "api")
            .order_by(ApiToken.id)
        )
        records = [
            {
                "id": row.id,
                "name": row.name,
                "owner": username or "(service)",
                "role": row.role,
                "created_at": iso(row.created_at),
                "last_used_at": iso(row.last_used_at),
                "revoked": row.revoked,
            }
            for row, username in rows
        ]
    if as_json:
        typer.echo(json.dumps(records, indent=2))
        return
    # lazy: start-up cost (module docstring)
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"API tokens of {tenant}")
    columns = ("id", "name", "owner", "role", "created_at", "last_used_at", "revoked")
    for col in columns:
        table.add_column(col)
    for r in records:
        table.add_row(*("" if r[c] is None else str(r[c]) for c in columns))
    Console().print(table)


@admin_app.command("revoke-token")
def revoke_token(
    token_id: int = typer.Argument(..., help="id from list-tokens"),
    tenant: str = typer.Option(..., "--tenant", help="tenant slug"),
    database: str | None = DatabaseOpt,
    config: Path | None = ConfigOpt,
    data_dir: Path | None = DataDirOpt,
) -> None:
    """Revoke a token of the tenant at once (a service token, a user's token or a session)."""
    # lazy: start-up cost (module docstring)
    from sqlalchemy import select

    from omshub.cloud.services.accounts import audit, tenant_by_slug
    from omshub.cloud.store.models import ApiToken

    db = _open_db(_settings(database, config, data_dir))
    with db.transaction() as session:
        t = _api_call(lambda: tenant_by_slug(session, tenant))
        row = session.scalar(select(ApiToken).where(ApiToken.id == token_id, ApiToken.tenant_id == t.id))
        if row is None:
            _fail(
                say(
                    f"token {token_id} not found in tenant {tenant}",
                    f"Token {token_id} im Mandanten {tenant} nicht gefunden",
                )
            )
        row.revoked = True
        audit(
            session,
            t.id,
            _actor(),
            "token.revoke",
            {"token_id": row.id, "name": row.name, "kind": row.kind, "owner_id": row.user_id},
        )
    typer.echo(f"omshub: token {token_id} revoked", err=True)


@admin_app.command("add-gateway")
def add_gateway(
    serial: str = typer.Argument(...),
    tenant: str = typer.Option(..., "--tenant", help="tenant slug"),
    name: str = typer.Option("", "--name"),
    database: str | None = DatabaseOpt,
    config: Path | None = ConfigOpt,
    data_dir: Path | None = DataDirOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Register a gateway; prints its credential once (put it into the gateway's configuration)."""
    # lazy: start-up cost (module docstring)
    from omshub.cloud.services.accounts import tenant_by_slug
    from omshub.cloud.services.gateways import register_gateway

    db = _open_db(_settings(database, config, data_dir))
    with db.transaction() as session:
        t = _api_call(lambda: tenant_by_slug(session, tenant))
        gateway, credential = _api_call(lambda: register_gateway(session, t.id, serial, name, actor=_actor()))
        record = {
            "id": gateway.id,
            "tenant": t.slug,
            "serial": gateway.serial,
            "name": gateway.name,
            "credential": credential,
        }
    _show(record, as_json, "gateway registered (the credential is shown only now)")


@admin_app.command("list-tenants")
def list_tenants(
    database: str | None = DatabaseOpt,
    config: Path | None = ConfigOpt,
    data_dir: Path | None = DataDirOpt,
    as_json: bool = JsonOpt,
) -> None:
    """The tenants of this installation."""
    # lazy: start-up cost (module docstring)
    from sqlalchemy import select

    from omshub.cloud.store.models import Tenant

    db = _open_db(_settings(database, config, data_dir))
    with db.session() as session:
        rows = [
            {"id": t.id, "slug": t.slug, "name": t.name, "created_at": iso(t.created_at)}
            for t in session.scalars(select(Tenant).order_by(Tenant.id))
        ]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    # lazy: start-up cost (module docstring)
    from rich.console import Console
    from rich.table import Table

    table = Table(title="tenants")
    for col in ("id", "slug", "name", "created_at"):
        table.add_column(col)
    for r in rows:
        table.add_row(*(str(r[c]) for c in ("id", "slug", "name", "created_at")))
    Console().print(table)


@admin_app.command("redecode")
def redecode(
    tenant: str = typer.Option(..., "--tenant", help="tenant slug"),
    states: str = typer.Option(
        "invalid,no_key,wrong_key,unknown_meter", "--states", help="comma-separated states to decode again"
    ),
    database: str | None = DatabaseOpt,
    config: Path | None = ConfigOpt,
    data_dir: Path | None = DataDirOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Queue a tenant's undecoded telegrams for decoding again (e.g. after an omshub upgrade)."""
    # lazy: start-up cost (module docstring)
    from omshub.cloud.services.accounts import audit, tenant_by_slug
    from omshub.cloud.store.telegram_states import requeue_states

    wanted = tuple(x.strip() for x in states.split(",") if x.strip())
    db = _open_db(_settings(database, config, data_dir))
    with db.transaction() as session:
        t = _api_call(lambda: tenant_by_slug(session, tenant))
        try:
            count = requeue_states(session, t.id, wanted)
        except ValueError as exc:
            _fail(str(exc), 2)
        audit(session, t.id, _actor(), "telegrams.redecode", {"states": list(wanted), "count": count})
    _show({"tenant": tenant, "states": ",".join(wanted), "requeued": count}, as_json, "telegrams queued for decoding")


@admin_app.command("retime")
def retime(
    tenant: str = typer.Option(..., "--tenant", help="tenant slug"),
    meter: list[str] = typer.Option([], "--meter", help="only this meter (8-digit id; repeatable)"),
    database: str | None = DatabaseOpt,
    config: Path | None = ConfigOpt,
    data_dir: Path | None = DataDirOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Re-time a tenant's stored readings from their meters' own date-times with the time zones set
    now (after a change of the tenant's, a model's or a meter's zone). Raw telegrams stay as they are."""
    # lazy: start-up cost (module docstring)
    from sqlalchemy import select

    from omshub.cloud.services.accounts import tenant_by_slug
    from omshub.cloud.services.time_zones import retime_and_audit
    from omshub.cloud.store.models import Meter

    settings = _settings(database, config, data_dir)
    db = _open_db(settings)
    with db.transaction() as session:
        t = _api_call(lambda: tenant_by_slug(session, tenant))
        pks = None
        if meter:
            ids = sorted({m.strip().upper() for m in meter})
            rows = session.execute(
                select(Meter.meter_id, Meter.id).where(Meter.tenant_id == t.id, Meter.meter_id.in_(ids))
            ).all()
            found = {pk: mid for mid, pk in rows}
            missing = [m for m in ids if m not in set(found.values())]
            if missing:
                _fail(
                    say(
                        f"no meter {', '.join(missing)} in tenant {tenant!r}",
                        f"kein Zähler {', '.join(missing)} im Mandanten {tenant!r}",
                    ),
                    2,
                )
            pks = sorted(found)
        result = retime_and_audit(session, t.id, settings.meter_timezone, _actor(), pks)
    _show({"tenant": tenant, **result}, as_json, "readings re-timed")


def _keystore(settings):

    # lazy: start-up cost (module docstring)
    from omshub.cloud.store.keystore import KeyStore, KeyStoreError, load_master_key

    try:
        return KeyStore(load_master_key(settings.master_key, settings.data_dir))
    except KeyStoreError as exc:
        _fail(str(exc))


@keys_app.command("import")
def keys_import(
    file: Path = typer.Argument(..., help="CSV with header id,key[,manufacturer]; - for stdin"),
    tenant: str = typer.Option(..., "--tenant", help="tenant slug"),
    database: str | None = DatabaseOpt,
    config: Path | None = ConfigOpt,
    data_dir: Path | None = DataDirOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Import meter keys (encrypted at rest; audited). Waiting telegrams of these meters are decoded again."""
    # lazy: start-up cost (module docstring)
    from omshub.cloud.services.accounts import tenant_by_slug
    from omshub.cloud.store.keystore import MAX_IMPORT_BYTES, KeyStoreError, parse_key_csv

    try:
        if str(file) == "-":
            text = sys.stdin.read(MAX_IMPORT_BYTES + 1)
        else:
            if file.stat().st_size > MAX_IMPORT_BYTES:
                _fail(
                    say(
                        f"{file}: key file exceeds {MAX_IMPORT_BYTES} bytes",
                        f"{file}: Schlüsseldatei größer als {MAX_IMPORT_BYTES} Bytes",
                    )
                )
            text = file.read_text(encoding="utf-8-sig")
        entries = parse_key_csv(text)
    except OSError as exc:
        _fail(f"{file}: {exc.strerror}")
    except UnicodeDecodeError:
        _fail(say(f"{file}: not UTF-8 text", f"{file}: kein UTF-8-Text"))
    except KeyStoreError as exc:
        _fail(f"{file}: {exc}")
    settings = _settings(database, config, data_dir)
    store = _keystore(settings)
    db = _open_db(settings)
    with db.transaction() as session:
        t = _api_call(lambda: tenant_by_slug(session, tenant))
        result = store.import_keys(session, t.id, entries, actor=_actor(), source=f"cli:{file.name}")
    _show({"tenant": tenant, **result}, as_json, "keys imported")


@keys_app.command("export")
def keys_export(
    tenant: str = typer.Option(..., "--tenant", help="tenant slug"),
    meters: str = typer.Option(..., "--meters", help="ID[,ID…] or MAN:ID items"),
    out: Path | None = typer.Option(None, "--out", help="write the CSV here (mode 0600) instead of stdout"),
    database: str | None = DatabaseOpt,
    config: Path | None = ConfigOpt,
    data_dir: Path | None = DataDirOpt,
) -> None:
    """Write the key file (CSV id,key,manufacturer) for the given meters, e.g. for a building owner. Audited."""
    # lazy: start-up cost (module docstring)
    from omshub.cloud.services.accounts import tenant_by_slug
    from omshub.cloud.store.keystore import KeyStoreError, parse_meter_list

    try:
        wanted = parse_meter_list(meters)
    except KeyStoreError as exc:
        _fail(str(exc), 2)
    settings = _settings(database, config, data_dir)
    store = _keystore(settings)
    db = _open_db(settings)
    try:
        with db.transaction() as session:
            t = _api_call(lambda: tenant_by_slug(session, tenant))
            text = store.export_keys(session, t.id, wanted, actor=_actor(), source="cli")
    except LookupError as exc:
        _fail(str(exc))
    if out is None:
        sys.stdout.write(text)
        return
    try:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
    except OSError as exc:
        _fail(f"{out}: {exc.strerror}")
    typer.echo(f"omshub: wrote {len(wanted)} keys to {out}", err=True)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    app.add_typer(admin_app, name="admin")
    app.add_typer(keys_app, name="keys")
