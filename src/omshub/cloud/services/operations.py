"""Remote configuration as operations, with partial changes and their conflicts (docs/formats.md).

A change to a gateway's configuration is a JSON merge patch (RFC 7386, gateway/config.py) applied
to its desired configuration — the latest version, including one still waiting for the gateway —
and validated whole. A change that changes something becomes a new `GatewayConfigVersion` and an
`Operation` that moves PENDING -> DELIVERED (handed to the gateway in an uplink response)
-> SUCCESSFUL (the gateway reports the version as applied) | FAILED (the gateway refused it,
`cfg_error`). A newer configuration for the same gateway marks older unfinished operations
SUPERSEDED; for a selection of gateways only when the operator decided so (`on_conflict`).
Input: sessions and ORM rows; output: rows changed in the session (the caller commits).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import and_, func, select, tuple_
from sqlalchemy.orm import Session

from omshub.cloud.domain.errors import Conflict, Invalid, NotFound
from omshub.cloud.domain.operations import (
    DELIVERED,
    FAILED,
    MAX_ERROR_LEN,
    OPEN_STATES,
    PENDING,
    STATES,
    SUCCESSFUL,
    SUPERSEDED,
)
from omshub.cloud.domain.wording import german_of, plain_problems
from omshub.cloud.ingest.config_answer import expected_next_contact, on_uplink, running_config
from omshub.cloud.store.audit import audit
from omshub.cloud.store.models import Gateway, GatewayConfigVersion, Operation
from omshub.protocol.config import (
    MAX_PATCH_DEPTH,
    ConfigError,
    GatewayConfig,
    diff_patch,
    merge_patch,
    patch_depth,
    validate_config,
)
from omshub.times import utc, utcnow

# the states (domain/operations.py) and the uplink's configuration answer (ingest/config_answer.py)
# are named here too: this is where the API and the tests find operations
__all__ = [
    "CREATED",
    "DELIVERED",
    "FAILED",
    "MAX_ERROR_LEN",
    "MAX_GATEWAYS_PER_REQUEST",
    "MAX_ID",
    "ON_CONFLICT",
    "OPEN_STATES",
    "PENDING",
    "SKIPPED",
    "STATES",
    "SUCCESSFUL",
    "SUPERSEDED",
    "SUPERSEDED_PENDING",
    "UNCHANGED",
    "ConfigChangeError",
    "ConfigResult",
    "PendingChanges",
    "UnknownGateway",
    "change_config",
    "default_config",
    "desired_config",
    "expected_next_contact",
    "normalized_config",
    "on_uplink",
    "open_operation",
    "running_config",
    "set_desired_config",
]

# A selection of gateways in one request; bounded so one call cannot build an unbounded transaction.
MAX_GATEWAYS_PER_REQUEST = 10_000
MAX_ID = 2**63 - 1  # ids are BIGINT: a larger one names no gateway


class ConfigChangeError(Invalid):
    """A configuration change that cannot be made (nothing was changed). `code` is stable."""

    def __init__(self, code: str, message: str, german: str | None = None) -> None:
        super().__init__(message, code=code, german=german)


class UnknownGateway(NotFound):
    """A selected gateway does not exist in the principal's tenant."""

    def __init__(self, gateway_id: int) -> None:
        super().__init__(f"gateway {gateway_id} not found", german=f"Das Gateway {gateway_id} gibt es nicht.")
        self.gateway_id = gateway_id


class PendingChanges(Conflict):
    """Selected gateways have an unfinished change this one would supersede, and the operator has
    not decided (`on_conflict`); nothing was changed. `conflicts`: one dict per open operation
    (also in the refusal's details, docs/formats.md §3)."""

    code = "pending_changes"

    def __init__(self, conflicts: list[dict]) -> None:
        gateways = list(dict.fromkeys(c["gateway"] for c in conflicts))
        names = ", ".join(gateways[:5]) + (f" and {len(gateways) - 5} more" if len(gateways) > 5 else "")
        super().__init__(
            f"{len(gateways)} gateway(s) have a change that is not applied yet ({names}); "
            'nothing was changed. Send the request again with on_conflict "supersede" (the new '
            'change replaces theirs, which it includes) or "skip" (those gateways keep their '
            "pending change and get nothing new)",
            german=f"{len(gateways)} Gateway(s) haben eine Änderung, die noch nicht angekommen ist ({names}); "
            "es wurde nichts geändert. Entscheiden Sie: Die neue Änderung ersetzt die offene (sie enthält sie), "
            "oder diese Gateways behalten ihre offene Änderung und bekommen nichts Neues.",
            details={"conflicts": conflicts},
        )
        self.conflicts = conflicts


ON_CONFLICT = ("supersede", "skip")
# What happened to each selected gateway: a new version (that replaced an unfinished one, or
# not), its pending change kept (skip), or nothing to change.
CREATED, SUPERSEDED_PENDING, SKIPPED, UNCHANGED = "created", "superseded", "skipped", "unchanged"


@dataclass
class ConfigResult:
    gateway: Gateway
    outcome: str
    version: int  # the gateway's desired version afterwards
    config: dict  # its full desired configuration afterwards (with `version`)
    operation: Operation | None  # new (created/superseded), kept pending (skipped), or the current version's
    superseded: list[Operation] = field(default_factory=list)
    from_version: int = 0


def default_config() -> dict:
    """The factory configuration with every setting filled in (without `version`)."""
    return GatewayConfig().model_dump(mode="json", exclude={"version"})


def normalized_config(config: dict) -> dict:
    """Validate a configuration and return the full dict with every default filled in, without
    `version` (the head-end assigns it). Raises ConfigError."""
    if not isinstance(config, dict):
        raise ConfigError("configuration must be a JSON object")
    body = {k: v for k, v in config.items() if k != "version"}
    return validate_config(body).model_dump(mode="json", exclude={"version"})


def _filled(config: dict) -> dict:
    """A stored configuration with defaults filled in; as stored when it no longer validates (a
    newer schema, or a hand-edited row: a patch can still mend it)."""
    try:
        return normalized_config(config)
    except ConfigError:
        return {k: v for k, v in config.items() if k != "version"}


def desired_config(session: Session, gateway: Gateway) -> tuple[dict, GatewayConfigVersion | None]:
    """(full desired configuration with its `version`, its stored row or None for the factory one)."""
    row = None
    if gateway.desired_config_version:
        row = session.scalars(
            select(GatewayConfigVersion).where(
                GatewayConfigVersion.gateway_id == gateway.id,
                GatewayConfigVersion.version == gateway.desired_config_version,
            )
        ).first()
    if row is None:
        return {**default_config(), "version": 0}, None
    return {**_filled(row.config), "version": row.version}, row


def open_operation(session: Session, gateway: Gateway) -> Operation | None:
    """The gateway's unfinished (PENDING or DELIVERED) change, newest first."""
    return session.scalars(
        select(Operation)
        .where(Operation.gateway_id == gateway.id, Operation.state.in_(OPEN_STATES))
        .order_by(Operation.config_version.desc(), Operation.id.desc())
        .limit(1)
    ).first()


def _check_patch(patch) -> dict:
    if not isinstance(patch, dict):
        raise ConfigChangeError(
            "invalid_config",
            "a configuration change must be a JSON object (a merge patch)",
            german="Eine Änderung der Konfiguration muss eine Gruppe von Einstellungen sein.",
        )
    if patch_depth(patch) > MAX_PATCH_DEPTH:
        raise ConfigChangeError(
            "invalid_config",
            f"configuration change is nested more than {MAX_PATCH_DEPTH} levels deep; no setting is",
            german=f"Die Änderung ist tiefer als {MAX_PATCH_DEPTH} Ebenen verschachtelt; "
            "so eine Einstellung gibt es nicht.",
        )
    return {k: v for k, v in patch.items() if k != "version"}  # the head-end assigns versions


def _config_rows(session: Session, pairs) -> dict[tuple[int, int], dict]:
    """Stored configurations by (gateway id, version)."""
    pairs = list(dict.fromkeys(pairs))
    out: dict[tuple[int, int], dict] = {}
    for chunk in range(0, len(pairs), 500):  # bounded IN lists
        part = pairs[chunk : chunk + 500]
        for gid, version, config in session.execute(
            select(GatewayConfigVersion.gateway_id, GatewayConfigVersion.version, GatewayConfigVersion.config).where(
                tuple_(GatewayConfigVersion.gateway_id, GatewayConfigVersion.version).in_(part)
            )
        ):
            out[(gid, version)] = config
    return out


def _conflicts(session: Session, gateways: dict[int, Gateway], pending: list[Operation]) -> list[dict]:
    """What each unfinished operation changes (a merge patch from the version before it), who
    asked for it and when."""
    before: dict[int, int] = {}
    ids = [op.id for op in pending]
    for chunk in range(0, len(ids), 500):
        before.update(
            session.execute(
                select(Operation.id, func.max(GatewayConfigVersion.version))
                .join(
                    GatewayConfigVersion,
                    and_(
                        GatewayConfigVersion.gateway_id == Operation.gateway_id,
                        GatewayConfigVersion.version < Operation.config_version,
                    ),
                )
                .where(Operation.id.in_(ids[chunk : chunk + 500]))
                .group_by(Operation.id)
            ).all()
        )
    rows = _config_rows(
        session,
        [(op.gateway_id, op.config_version) for op in pending]
        + [(op.gateway_id, before[op.id]) for op in pending if op.id in before],
    )
    out = []
    for op in pending:
        prev_version = before.get(op.id, 0)
        prev = _filled(rows[(op.gateway_id, prev_version)]) if prev_version else default_config()
        mine = rows.get((op.gateway_id, op.config_version))
        out.append(
            {
                "gateway_id": op.gateway_id,
                "gateway": gateways[op.gateway_id].serial,
                "operation_id": op.id,
                "config_version": op.config_version,
                "state": op.state,
                "changes": diff_patch(prev, _filled(mine)) if mine is not None else None,
                "changes_from_version": prev_version,
                "created_by": op.created_by,
                "created_at": utc(op.created_at),
            }
        )
    return out


def _checked_request(gateway_ids: list[int], patch, on_conflict: str | None) -> tuple[list[int], dict]:
    """(gateway ids without repeats, the patch without `version`) or ConfigChangeError/UnknownGateway."""
    if on_conflict is not None and on_conflict not in ON_CONFLICT:
        raise ConfigChangeError(
            "invalid_request",
            f'on_conflict must be "supersede" or "skip", not {on_conflict!r}',
            german="Bei offenen Änderungen: entweder ersetzen oder diese Gateways auslassen.",
        )
    patch = _check_patch(patch)
    ids = list(dict.fromkeys(int(i) for i in gateway_ids))
    if not ids:
        raise ConfigChangeError("invalid_request", "no gateway selected", german="Es ist kein Gateway ausgewählt.")
    if len(ids) > MAX_GATEWAYS_PER_REQUEST:
        raise ConfigChangeError(
            "invalid_request",
            f"at most {MAX_GATEWAYS_PER_REQUEST} gateways per request, got {len(ids)}",
            german=f"Höchstens {MAX_GATEWAYS_PER_REQUEST:,} Gateways auf einmal; ausgewählt sind {len(ids):,}.".replace(
                ",", "."
            ),
        )
    for gid in ids:
        if not 0 < gid <= MAX_ID:
            raise UnknownGateway(gid)
    return ids, patch


@dataclass
class _Selection:
    """The selected gateways (locked), their latest stored version and their unfinished operations."""

    gateways: dict[int, Gateway] = field(default_factory=dict)
    latest: dict[int, int] = field(default_factory=dict)
    open_ops: dict[int, list[Operation]] = field(default_factory=dict)


def _select(session: Session, tenant_id: int, ids: list[int]) -> _Selection:
    sel = _Selection()
    for chunk in range(0, len(ids), 500):  # bounded IN lists
        part = ids[chunk : chunk + 500]
        # Locked first, read after: two changes of one gateway are made one after the other, the
        # second merged onto the first.
        for gw in session.scalars(
            select(Gateway).where(Gateway.tenant_id == tenant_id, Gateway.id.in_(part)).with_for_update()
        ):
            sel.gateways[gw.id] = gw
        sel.latest.update(
            session.execute(
                select(GatewayConfigVersion.gateway_id, func.max(GatewayConfigVersion.version))
                .where(GatewayConfigVersion.gateway_id.in_(part))
                .group_by(GatewayConfigVersion.gateway_id)
            ).all()
        )
        for op in session.scalars(
            select(Operation)
            .where(Operation.gateway_id.in_(part), Operation.state.in_(OPEN_STATES))
            .order_by(Operation.id)
        ):
            sel.open_ops.setdefault(op.gateway_id, []).append(op)
    for gid in ids:
        if gid not in sel.gateways:
            raise UnknownGateway(gid)
    return sel


def _plan(session: Session, sel: _Selection, ids: list[int], patch: dict) -> list[tuple[Gateway, dict, dict, bool]]:
    """(gateway, configuration before, after, whether it changes something) per gateway; decided
    before anything changes, so an invalid result leaves every gateway as it was."""
    stored = _config_rows(
        session, [(gid, gw.desired_config_version) for gid, gw in sel.gateways.items() if gw.desired_config_version]
    )
    plans = []
    for gid in ids:
        gw = sel.gateways[gid]
        row = stored.get((gid, gw.desired_config_version))
        before = _filled(row) if row is not None else default_config()
        try:
            after = normalized_config(merge_patch(before, patch))
        except ConfigError as exc:
            where = f" for gateway {gw.serial}" if len(ids) > 1 else ""
            german = f" für das Gateway {gw.serial}" if len(ids) > 1 else ""
            problems = exc.problems
            refusal = ConfigChangeError(
                "invalid_config",
                f"configuration rejected{where}: {exc}",
                german=f"Die Konfiguration{german} wurde abgelehnt: "
                + (plain_problems(problems, "de") if problems else german_of(str(exc)) or str(exc)),
            )
            refusal.problems = problems
            raise refusal from None
        plans.append((gw, before, after, row is None or after != before))
    return plans


def _new_version(
    session: Session,
    sel: _Selection,
    gw: Gateway,
    after: dict,
    principal,
    now: datetime,
) -> tuple[int, Operation]:
    """Store the gateway's next configuration version and its PENDING operation."""
    # Also above what the gateway runs: it ignores a version it already has.
    version = max(sel.latest.get(gw.id) or 0, gw.desired_config_version or 0, gw.applied_config_version or 0) + 1
    session.add(
        GatewayConfigVersion(
            tenant_id=gw.tenant_id,
            gateway_id=gw.id,
            version=version,
            config={**after, "version": version},
            created_at=now,
            created_by=principal.name,
        )
    )
    gw.desired_config_version = version
    expected = (
        gw.next_contact_at
        if gw.next_contact_at and utc(gw.next_contact_at) > now
        else expected_next_contact(gw, running_config(session, gw), now)
    )
    op = Operation(
        tenant_id=gw.tenant_id,
        gateway_id=gw.id,
        kind="config",
        config_version=version,
        state=PENDING,
        created_at=now,
        created_by=principal.name,
        expected_contact_at=expected,
    )
    session.add(op)
    return version, op


def change_config(
    session: Session,
    principal,
    gateway_ids: list[int],
    patch: dict,
    *,
    on_conflict: str | None = None,
    now: datetime | None = None,
) -> list[ConfigResult]:
    """Apply the merge patch `patch` to the desired configuration of each gateway (all of the
    principal's tenant) and validate the result; where it changes something, a new version and a
    PENDING operation. A gateway with an unfinished change is a conflict: PendingChanges unless
    `on_conflict` says what to do ("supersede": the new operation replaces the old one, whose
    settings it includes; "skip": the gateway keeps its pending change and gets nothing new).
    The first configuration of a gateway always makes a version: what the gateway runs before is
    its own initial configuration, unknown here. Raises ConfigChangeError, UnknownGateway,
    PendingChanges — all before anything is changed. Audited."""
    now = utc(now or utcnow())
    ids, patch = _checked_request(gateway_ids, patch, on_conflict)
    sel = _select(session, principal.tenant_id, ids)
    plans = _plan(session, sel, ids, patch)
    pending = [op for gw, _, _, changes in plans if changes for op in sel.open_ops.get(gw.id, [])]
    if pending and on_conflict is None:
        raise PendingChanges(_conflicts(session, sel.gateways, pending))

    results = _config_results(session, sel, plans, principal, on_conflict, now)
    session.flush()
    _supersede(results, now)
    _audit_config(session, principal, patch, on_conflict, results)
    session.flush()
    return results


def _config_results(
    session: Session, sel, plans, principal, on_conflict: str | None, now: datetime
) -> list[ConfigResult]:
    """Each planned gateway's outcome: unchanged or skipped (its current version and the
    operation that set it, or its pending one), else a new version and operation."""
    current_ops = _operations_of(
        session,
        [
            (gw.id, gw.desired_config_version)
            for gw, _, _, changes in plans
            if not changes and gw.desired_config_version
        ],
    )
    results: list[ConfigResult] = []
    for gw, before, after, changes in plans:
        current = gw.desired_config_version or 0
        if not changes or (on_conflict == "skip" and sel.open_ops.get(gw.id)):
            kept = sel.open_ops[gw.id][-1] if changes else current_ops.get((gw.id, current))
            results.append(
                ConfigResult(
                    gw,
                    UNCHANGED if not changes else SKIPPED,
                    current,
                    {**before, "version": current},
                    kept,
                    from_version=current,
                )
            )
            continue
        version, op = _new_version(session, sel, gw, after, principal, now)
        unfinished = sel.open_ops.get(gw.id, [])
        results.append(
            ConfigResult(
                gw,
                SUPERSEDED_PENDING if unfinished else CREATED,
                version,
                {**after, "version": version},
                op,
                list(unfinished),
                from_version=current,
            )
        )
    return results


def _supersede(results: list[ConfigResult], now: datetime) -> None:
    """The unfinished operations the new ones replace: SUPERSEDED by them."""
    for res in results:
        for old in res.superseded:  # only new operations supersede
            old.state = SUPERSEDED
            old.superseded_by = res.operation.id if res.operation is not None else None
            old.finished_at = now


def _audit_config(
    session: Session, principal, patch: dict, on_conflict: str | None, results: list[ConfigResult]
) -> None:
    """The change in the audit log: the patch and each gateway's outcome."""
    audit(
        session,
        principal.tenant_id,
        principal.name,
        "gateway.config",
        {
            "patch": patch,
            "on_conflict": on_conflict,
            "gateways": [
                {
                    "gateway_id": r.gateway.id,
                    "outcome": r.outcome,
                    "from_version": r.from_version,
                    "version": r.version,
                    "operation_id": r.operation.id if r.operation else None,
                    "superseded_operations": [o.id for o in r.superseded],
                }
                for r in results
            ],
        },
    )


def _operations_of(session: Session, pairs) -> dict[tuple[int, int], Operation]:
    """The operation that set each (gateway id, version)."""
    pairs = list(dict.fromkeys(pairs))
    out: dict[tuple[int, int], Operation] = {}
    for chunk in range(0, len(pairs), 500):  # bounded IN lists
        for op in session.scalars(
            select(Operation)
            .where(tuple_(Operation.gateway_id, Operation.config_version).in_(pairs[chunk : chunk + 500]))
            .order_by(Operation.id)
        ):
            out[(op.gateway_id, op.config_version)] = op  # the newest, should one version have two
    return out


def set_desired_config(
    session: Session, principal, gateway_ids: list[int], config: dict, *, now: datetime | None = None
) -> list[Operation]:
    """`change_config` superseding unfinished changes (whose settings the new version includes);
    the new operations."""
    results = change_config(session, principal, gateway_ids, config, on_conflict="supersede", now=now)
    return [r.operation for r in results if r.outcome in (CREATED, SUPERSEDED_PENDING) and r.operation is not None]
