"""A gateway that lost its spool state numbers its uplinks from 1 again (issue 9 item 9).

A repeat is a repeat only when its telegrams are the same; new telegrams under an old seq are
stored and answered as usual, and the gateway gets a `gateway_seq_reset` alarm, cleared once its
seq passes the highest it had used before.
"""

from __future__ import annotations

import asyncio
import random
import shutil
from datetime import timedelta

import cbor2
from sqlalchemy import func, select, update

from omshub.cloud.services import alarms
from omshub.cloud.store.models import Alarm, Telegram, Uplink
from omshub.cloud.store.uplink_bodies import full_body

from ..clock import EPOCH
from .conftest import encode

T0 = int(EPOCH.timestamp())


def _count(db, model, **where) -> int:
    with db.session() as s:
        stmt = select(func.count()).select_from(model)
        for key, value in where.items():
            stmt = stmt.where(getattr(model, key) == value)
        return s.scalar(stmt)


def _seq_alarms(db, gateway_id: int, active: bool | None = True) -> list[Alarm]:
    with db.session() as s:
        stmt = select(Alarm).where(
            Alarm.kind == alarms.GATEWAY_SEQ_RESET, Alarm.subject_type == "gateway", Alarm.subject_id == gateway_id
        )
        if active is not None:
            stmt = stmt.where(Alarm.active.is_(active))
        return list(s.scalars(stmt))


def _evaluate(db) -> None:
    with db.transaction() as s:
        alarms.evaluate(s, EPOCH)


def test_new_telegrams_under_a_reused_seq_are_stored_and_raise_an_alarm(hub, db):
    t = hub.tenant()
    gw = hub.gateway(t)
    before = {seq: [encode(f"2100{seq:04d}")] for seq in (1, 2, 3)}
    for seq, frames in before.items():
        assert hub.send(gw, seq, frames, t0=T0 + seq * 600)["stored"] == 1
    assert _seq_alarms(db, gw.id) == []

    # the gateway lost its state: seq 1 again, with telegrams it collected since
    fresh = [encode("21100001"), encode("21100002")]
    answer = hub.send(gw, 1, fresh, t0=T0 + 86_400)
    assert (answer["ack"], answer["stored"], answer["duplicates"]) == (1, 2, 0)
    assert _count(db, Telegram, gateway_id=gw.id) == 5
    assert _count(db, Uplink, gateway_id=gw.id) == 4
    [alarm] = _seq_alarms(db, gw.id)
    assert alarm.tenant_id == t.id
    assert alarm.details["highest_seq_before"] == 3 and alarm.details["first_reused_seq"] == 1
    assert alarm.details["reused_uplinks"] == 1 and alarm.details["telegrams_stored"] == 2
    assert gw.serial in alarm.message and "lost its uplink state" in alarm.message

    # its retry of that uplink (fresh status, same telegrams) is a repeat: the answer stored
    again = hub.send(gw, 1, fresh, t0=T0 + 86_400, status={"battery_pct": 55, "time": T0 + 86_500})
    assert (again["ack"], again["stored"]) == (1, 2)
    assert _count(db, Uplink, gateway_id=gw.id) == 4 and _count(db, Telegram, gateway_id=gw.id) == 5
    # and the first uplink ever sent under seq 1 is still recognised as such
    first_again = hub.send(gw, 1, before[1], t0=T0 + 600)
    assert (first_again["ack"], first_again["stored"]) == (1, 1)
    assert _count(db, Uplink, gateway_id=gw.id) == 4

    # climbing through its old numbers: each one stored, one alarm refreshed
    overlap = [before[2][0], encode("21100003")]  # one telegram it had sent before
    answer = hub.send(gw, 2, overlap, t0=T0 + 1200)
    assert (answer["stored"], answer["duplicates"]) == (1, 1)
    assert hub.send(gw, 3, [encode("21100004")], t0=T0 + 2 * 86_400)["stored"] == 1
    [refreshed] = _seq_alarms(db, gw.id)
    assert refreshed.id == alarm.id
    assert refreshed.details["reused_uplinks"] == 3 and refreshed.details["last_reused_seq"] == 3
    _evaluate(db)
    assert len(_seq_alarms(db, gw.id)) == 1  # still within the numbers it had used

    # past the highest seq it had used: new numbers again, the alarm clears
    assert hub.send(gw, 4, [encode("21100005")], t0=T0 + 3 * 86_400)["stored"] == 1
    _evaluate(db)
    assert _seq_alarms(db, gw.id) == []
    [cleared] = _seq_alarms(db, gw.id, active=None)
    assert cleared.cleared_at is not None
    assert _count(db, Telegram, gateway_id=gw.id) == 8


def test_uplinks_stored_before_their_content_was_hashed_are_compared_by_their_body(hub, db):
    """Rows from before migration 0005 have no content hash: the stored body is hashed instead."""
    t = hub.tenant()
    gw = hub.gateway(t)
    frames = [encode("21200001")]
    hub.send(gw, 1, frames, t0=T0)
    with db.transaction() as s:
        s.execute(update(Uplink).where(Uplink.gateway_id == gw.id).values(content_hash=None))
    assert hub.send(gw, 1, frames, t0=T0, status={"battery_pct": 1})["stored"] == 1
    assert _count(db, Uplink, gateway_id=gw.id) == 1 and _seq_alarms(db, gw.id) == []
    assert hub.send(gw, 1, [encode("21200002")], t0=T0 + 60)["stored"] == 1
    assert _count(db, Uplink, gateway_id=gw.id) == 2 and len(_seq_alarms(db, gw.id)) == 1


def test_reused_seq_alarm_listed_in_the_api(hub, client):
    t = hub.tenant()
    gw = hub.gateway(t)
    hub.send(gw, 1, [encode("21300001")], t0=T0)
    hub.send(gw, 1, [encode("21300002")], t0=T0 + 60)
    r = client.get(
        "/api/v1/alarms", params={"kind": "gateway_seq_reset", "active": "true"}, headers=hub.headers(t, "viewer")
    )
    assert r.status_code == 200, r.text
    [item] = r.json()["items"]
    assert item["subject"] == {"type": "gateway", "id": gw.id, "name": gw.serial, "label": ""}
    assert item["details"]["highest_seq_before"] == 1


def test_gateway_agent_that_lost_its_state_dir_loses_no_telegrams(hub, db, tmp_path):
    """The real agent over CoAP into the real ingest: it runs, its state directory is deleted,
    a new agent starts at seq 1 again; everything either of them collected is stored."""
    from omshub.cloud.ingest.coap import CoapServer
    from omshub.gateway.agent import Agent
    from omshub.gateway.clock import SimClock
    from omshub.gateway.settings import settings_from_dict
    from omshub.gateway.transport_coap import CoapTransport

    from ..gateway.helpers import ScheduledSource, frame

    t = hub.tenant()
    gw = hub.gateway(t)
    start = (EPOCH - timedelta(days=10)).replace(hour=12, minute=0, second=0, microsecond=0).timestamp()
    state = tmp_path / "state"
    clock = SimClock(start, 0)

    async def run(meters: list[bytes], until: float) -> tuple[int, int]:
        """-> (the agent's last seq, telegrams left in its spool)"""
        server = CoapServer.for_database(db, host="127.0.0.1", port=0)
        await server.start()
        url = f"coap://127.0.0.1:{server.port}/u"
        settings = settings_from_dict(
            {
                "serial": gw.serial,
                "credential": gw.credential,
                "server": url,
                "transport": "coap",
                "source": "hexfile:/unused",
                "state_dir": str(state),
                "spool": {"synchronous": "normal"},
                "config": {
                    "timezone": "UTC",
                    "spread_s": 0,
                    "collection": [{"cron": "0 0 3 * * *", "duration_s": 600, "link_modes": ["T1"]}],
                    "upload": {"cron": "0 0 5 * * *", "max_batch": 5},
                },
            }
        )
        agent = Agent(
            settings,
            clock=clock,
            source=ScheduledSource(clock, meters, interval=40, step=3),
            transport=CoapTransport(url, timeout_s=20),
            rng=random.Random(5),
        )
        try:
            await agent.run(until=until)
            return agent.spool.last_seq, agent.spool.rows
        finally:
            await agent.close()
            await server.stop()

    old_meters = [frame(f"{31000000 + i}", access=i) for i in range(8)]
    seqs_used, left = asyncio.run(run(old_meters, start + 2 * 86_400))
    assert seqs_used >= 4 and left == 0
    stored_before = _count(db, Telegram, gateway_id=gw.id)
    assert stored_before == 2 * 8

    shutil.rmtree(state)  # the gateway loses its spool and its seq counter
    new_meters = [frame(f"{32000000 + i}", access=100 + i) for i in range(8)]
    last_seq, left = asyncio.run(run(new_meters, start + 4 * 86_400))
    assert left == 0 and last_seq <= seqs_used  # it acknowledged everything, under old numbers

    rows = hub.telegrams(gw)
    assert len(rows) == stored_before + 2 * 8
    assert {r.meter_id for r in rows} == {f"{31000000 + i}" for i in range(8)} | {f"{32000000 + i}" for i in range(8)}
    [alarm] = _seq_alarms(db, gw.id)
    assert alarm.details["highest_seq_before"] == seqs_used
    # the stored CoAP bodies do not hold the credential (item 8)
    with db.session() as s:
        bodies = [full_body(s, u) for u in s.scalars(select(Uplink).where(Uplink.gateway_id == gw.id))]
    assert bodies and all(gw.credential.encode() not in body for body in bodies)
    assert all(cbor2.loads(body)["cred"] == "*" * len(gw.credential) for body in bodies)
