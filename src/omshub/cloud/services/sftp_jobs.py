"""Scheduled SFTP delivery of exports (docs/exports.md §SFTP): jobs with a format, a scope, a cron
schedule in a time zone and an SFTP target with key authentication.

A run exports the scope on the job's channel in `changes` mode (the first run delivers everything,
later runs what is new or changed, each changed row naming the export that delivered it before),
uploads the file under a temporary name and renames it (a reader never sees half a file), then
a manifest `<file>.manifest.json` with the file's SHA-256, size and row count the same way. The run's
state, target and error are kept (`GET /api/v1/exports/runs?job=`).

The server's host key must match the job's `host_key` line; a job without one takes the key the
server shows first and keeps it (trust on first use), so a later different key fails the run.
"""

from __future__ import annotations

import io
import json
import socket
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import paramiko
from sqlalchemy import select
from sqlalchemy.orm import Session

from omshub.cloud.domain.errors import Conflict, Invalid, not_found
from omshub.cloud.domain.exports import cron
from omshub.cloud.services import export_runs
from omshub.cloud.services.exports_v1 import Scope, check_scope
from omshub.cloud.store.audit import audit
from omshub.cloud.store.database import Database
from omshub.cloud.store.keystore import KeyStore
from omshub.cloud.store.models import Tenant
from omshub.cloud.store.models_exports import ExportJob, ExportRun

_KEY_AAD = "sftp-private-key"
CONNECT_TIMEOUT_S = 20
_KEY_TYPES = (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey)


def load_private_key(text: str) -> paramiko.PKey:
    for kind in _KEY_TYPES:
        try:
            return kind.from_private_key(io.StringIO(text))
        except (paramiko.SSHException, ValueError, IndexError, TypeError):
            continue
    raise Invalid(
        "private_key: not an unencrypted OpenSSH or PEM private key (Ed25519, ECDSA or RSA)",
        german="private_key: kein unverschlüsselter privater OpenSSH- oder PEM-Schlüssel (Ed25519, ECDSA oder RSA)",
        field="private_key",
    )


def _check(fields: dict) -> cron.Schedule:
    export_runs.check_format(fields["format"])
    if fields["scope"] != "previous_month":
        check_scope(Scope(fields["scope"]))
    try:
        return cron.parse(fields["cron"], fields["timezone"])
    except cron.CronError as exc:
        raise Invalid(str(exc), german=exc.german, field="cron") from None


def create_job(session: Session, keystore: KeyStore, tenant_id: int, fields: dict, *, actor: str, now: datetime):
    schedule = _check(fields)
    load_private_key(fields["private_key"])
    if session.scalar(select(ExportJob.id).where(ExportJob.tenant_id == tenant_id, ExportJob.name == fields["name"])):
        raise Conflict(f"an export job named {fields['name']!r} exists",
                       german=f"Ein Exportauftrag namens {fields['name']!r} existiert schon")  # fmt: skip
    nonce, cipher = keystore.seal(tenant_id, None, _KEY_AAD, fields["private_key"].encode())
    job = ExportJob(
        tenant_id=tenant_id, name=fields["name"], format=fields["format"], scope=fields["scope"], cron=fields["cron"],
        timezone=fields["timezone"], host=fields["host"], port=fields["port"], username=fields["username"],
        directory=fields["directory"], host_key=fields["host_key"].strip(), key_nonce=nonce, key_cipher=cipher,
        enabled=fields["enabled"], next_run_at=schedule.next_after(now), created_at=now,
    )  # fmt: skip
    session.add(job)
    session.flush()
    audit(session, tenant_id, actor, "export_job_created", {"job": job.id, "name": job.name, "host": job.host})
    return job


def job_json(job: ExportJob) -> dict:
    return {
        "id": job.id, "name": job.name, "format": job.format, "scope": job.scope, "cron": job.cron,
        "timezone": job.timezone, "host": job.host, "port": job.port, "username": job.username,
        "directory": job.directory, "host_key": job.host_key, "enabled": job.enabled, "next_run_at": job.next_run_at,
    }  # fmt: skip


def list_jobs(session: Session, tenant_id: int) -> list[ExportJob]:
    return list(session.scalars(select(ExportJob).where(ExportJob.tenant_id == tenant_id).order_by(ExportJob.id)))


def get_job(session: Session, tenant_id: int, job_id: int) -> ExportJob:
    job = session.get(ExportJob, job_id)
    if job is None or job.tenant_id != tenant_id:
        raise not_found(f"export job {job_id}", f"Exportauftrag {job_id}")
    return job


def delete_job(session: Session, tenant_id: int, job_id: int, *, actor: str) -> None:
    job = get_job(session, tenant_id, job_id)
    job.enabled, job.next_run_at = False, None
    job.name = f"{job.name[:60]}~deleted-{job.id}"
    audit(session, tenant_id, actor, "export_job_deleted", {"job": job.id})


def list_runs(session: Session, tenant_id: int, job_id: int | None, limit: int) -> list[ExportRun]:
    q = select(ExportRun).where(ExportRun.tenant_id == tenant_id)
    if job_id is not None:
        q = q.where(ExportRun.job_id == job_id)
    return list(session.scalars(q.order_by(ExportRun.id.desc()).limit(limit)))


def get_run(session: Session, tenant_id: int, run_id: int) -> ExportRun:
    run = session.get(ExportRun, run_id)
    if run is None or run.tenant_id != tenant_id:
        raise not_found(f"export run {run_id}", f"Exportlauf {run_id}")
    return run


def export_id(session: Session, run: ExportRun) -> str:
    slug = session.scalar(select(Tenant.slug).where(Tenant.id == run.tenant_id)) or ""
    return export_runs.export_id_of(slug, run.number)


def period_of(job: ExportJob, now: datetime) -> str:
    """The job's period at `now`: `previous_month` is the month before now's month in the job's zone."""
    if job.scope != "previous_month":
        return job.scope
    first = now.astimezone(ZoneInfo(job.timezone)).date().replace(day=1)
    return f"{(first - timedelta(days=1)):%Y-%m}"


def run_job(db: Database, keystore: KeyStore, tenant_id: int, job_id: int, *, now: datetime, actor: str) -> dict:
    """Export the job's scope and upload it; the run's outcome (a failure is recorded, not raised)."""
    with db.session() as session:
        job = get_job(session, tenant_id, job_id)
        key_text = keystore.open(tenant_id, None, _KEY_AAD, job.key_nonce, job.key_cipher).decode()
    target = {"host": job.host, "port": job.port, "username": job.username, "directory": job.directory,
              "host_key": job.host_key}  # fmt: skip

    def deliver(result: export_runs.RunResult) -> str:
        seen = upload(target, load_private_key(key_text), result)
        if not job.host_key:
            with db.transaction() as s:
                stored = s.get(ExportJob, job.id)
                if stored is not None and not stored.host_key:
                    stored.host_key = seen
        return f"sftp://{job.username}@{job.host}:{job.port}/{job.directory.rstrip('/')}/{result.file_name}"

    try:
        result = export_runs.export_now(
            db, tenant_id, job.format, period_of(job, now), channel=f"job:{job.id}", mode="changes", actor=actor,
            now=now, deliver=deliver, job_id=job.id,
        )  # fmt: skip
        return {"job_id": job.id, "run_id": result.run_id, "export_id": result.export_id, "state": result.state,
                "rows": result.rows, "file_name": result.file_name, "error": None}  # fmt: skip
    except Exception as exc:  # recorded in the run by export_now
        with db.session() as session:
            run = session.scalars(
                select(ExportRun).where(ExportRun.job_id == job.id).order_by(ExportRun.id.desc()).limit(1)
            ).first()
        return {"job_id": job.id, "run_id": run.id if run else None, "state": "failed", "rows": 0,
                "error": f"{type(exc).__name__}: {exc}"}  # fmt: skip


def upload(target: dict, key: paramiko.PKey, result: export_runs.RunResult) -> str:
    """Upload the file then its manifest, each under a temporary name renamed into place. The
    server's host key line ("type base64") is returned; a mismatch with `target['host_key']` fails."""
    sock = socket.create_connection((target["host"], target["port"]), timeout=CONNECT_TIMEOUT_S)
    transport = paramiko.Transport(sock)
    try:
        transport.start_client(timeout=CONNECT_TIMEOUT_S)
        server_key = transport.get_remote_server_key()
        seen = f"{server_key.get_name()} {server_key.get_base64()}"
        expected = " ".join(target["host_key"].split()[:2])
        if expected and expected != seen:
            raise ConnectionError(f"host key of {target['host']} is {seen[:40]}…, not the job's {expected[:40]}…")
        transport.auth_publickey(target["username"], key)
        sftp = paramiko.SFTPClient.from_transport(transport)
        assert sftp is not None
        directory = target["directory"].rstrip("/") or "."
        _put_atomic(sftp, directory, result.file_name, lambda f: _copy(result, f))
        manifest = {
            "export_id": result.export_id, "created_by": "omshub",
            "files": [{"name": result.file_name, "sha256": result.sha256, "size": result.size, "rows": result.rows}],
        }  # fmt: skip
        data = json.dumps(manifest, indent=1).encode()
        _put_atomic(sftp, directory, f"{result.file_name}.manifest.json", lambda f: f.write(data))
        sftp.close()
        return seen
    finally:
        transport.close()


def _copy(result: export_runs.RunResult, remote) -> None:
    assert result.path is not None
    with result.path.open("rb") as local:
        while chunk := local.read(1 << 16):
            remote.write(chunk)


def _put_atomic(sftp: paramiko.SFTPClient, directory: str, name: str, write) -> None:
    temp, final = f"{directory}/.{name}.part", f"{directory}/{name}"
    with sftp.open(temp, "wb") as f:
        f.set_pipelined(True)
        write(f)
    sftp.posix_rename(temp, final)


def due_jobs(db: Database, keystore: KeyStore, now: datetime) -> list[dict]:
    """Run every enabled job whose time has come (all tenants); its next time from its schedule."""
    with db.transaction() as session:
        due = list(session.scalars(select(ExportJob).where(ExportJob.enabled.is_(True), ExportJob.next_run_at <= now)))
        for job in due:  # next time first: a job that fails is not retried every tick
            job.next_run_at = cron.parse(job.cron, job.timezone).next_after(now)
        todo = [(job.tenant_id, job.id) for job in due]
    return [run_job(db, keystore, tenant, job, now=now, actor="schedule") for tenant, job in todo]
