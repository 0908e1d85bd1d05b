"""Faults end to end: a gateway process SIGKILLed in the middle of an upload (before and after the
head-end stored the batch), and a head-end SIGKILLed and restarted between uploads. Every telegram
a gateway collected is stored and decoded exactly once."""

from __future__ import annotations

import http.server
import os
import signal
import sqlite3
import subprocess
import sys
import threading

import httpx

from omshub.demo import gateway_config
from omshub.gateway.clock import SimClock
from omshub.protocol.envelope import decode_envelope

from .conftest import DAY, check_exactly_once, day_start, make_world, run_agent, write_gateway_toml


class KillingProxy:
    """HTTP relay gateway -> head-end that records every uplink body and, on planned requests,
    SIGKILLs the gateway process: ``"before"`` the head-end sees the batch, or ``"after"`` it
    stored it (the answer is then lost)."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.bodies: list[bytes] = []
        self.plan: dict[int, str] = {}
        self.killed: list[tuple[int, str, dict]] = []  # (request number, when, envelope)
        self.pid: int | None = None
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                proxy.bodies.append(body)
                n = len(proxy.bodies)
                action = proxy.plan.get(n)
                if action == "before":
                    proxy._kill(n, action, body)
                    return
                r = httpx.post(
                    proxy.target + self.path,
                    content=body,
                    timeout=30,
                    headers={
                        "Authorization": self.headers["Authorization"],
                        "Content-Type": self.headers["Content-Type"],
                    },
                )
                if action == "after":
                    proxy._kill(n, action, body)
                    return
                self.send_response(r.status_code)
                self.send_header("Content-Type", r.headers.get("content-type", "application/cbor"))
                self.send_header("Content-Length", str(len(r.content)))
                self.end_headers()
                self.wfile.write(r.content)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def _kill(self, n: int, when: str, body: bytes) -> None:
        os.kill(self.pid, signal.SIGKILL)
        self.killed.append((n, when, decode_envelope(body)))

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_gateway_sigkill_during_upload(database_url, live_server, tmp_path):
    server = live_server()
    world = make_world(tmp_path, database_url, server, tag="KILL")
    serial = world.serials[0]
    gw = world.gateways[serial]
    proxy = KillingProxy(server.base_url)
    start = day_start(6)
    until = start + 5 * DAY
    state = tmp_path / "state"
    log = open(tmp_path / "gateway.log", "ab")

    def run_gateway(clock_start: float) -> int:
        cfg = write_gateway_toml(
            tmp_path / "gateway.toml",
            {
                "serial": serial,
                "credential": gw.credential,
                "server": proxy.url,
                "transport": "https",
                "source": f"sim:{world.path}",
                "state_dir": str(state),
                "log_level": "info",
                "uplink": {"timeout_s": 30, "retry_base_s": 600},
                "spool": {"synchronous": "full"},
                "clock": {"speed": 0, "start": clock_start},
                "config": gateway_config(world.fleet, serial),
            },
        )
        proc = subprocess.Popen(
            [sys.executable, "-m", "omshub", "gateway", "run", "--config", str(cfg), "--until", str(until)],
            stdout=log,
            stderr=log,
        )
        proxy.pid = proc.pid
        return proc.wait(120)

    def spool_rows() -> set:
        with sqlite3.connect(state / "spool.sqlite3") as db:
            return {(bytes(raw), int(rx)) for raw, rx in db.execute("SELECT raw, rx_time FROM telegram")}

    try:
        # request 1: the status contact at start; 2: day 1's batch (killed after the head-end stored
        # it: the answer is lost); the restarted gateway resends it (3); 5: killed before delivery.
        proxy.plan = {2: "after", 5: "before"}
        assert run_gateway(start) == -signal.SIGKILL
        in_spool = spool_rows()
        killed_env = proxy.killed[-1][2]
        assert killed_env["telegrams"] and in_spool >= {(t["raw"], t["rx"]) for t in killed_env["telegrams"]}
        assert run_gateway(killed_env["status"]["time"]) == -signal.SIGKILL
        assert len(proxy.killed) == 2
        in_spool |= spool_rows()
        resent = decode_envelope(proxy.bodies[2])
        assert resent["seq"] == killed_env["seq"], "the same batch must be sent again after the crash"
        assert run_gateway(proxy.killed[-1][2]["status"]["time"]) == 0
        assert not spool_rows(), "spool must be empty at the end"
    finally:
        proxy.close()
        log.close()
    sent = {(t["raw"], t["rx"]) for b in proxy.bodies for t in decode_envelope(b)["telegrams"]}
    assert in_spool <= sent
    world.sent[serial] = sent
    world.serials = (serial,)
    check_exactly_once(world)


def test_headend_restart_between_uploads(database_url, live_server, tmp_path):
    server = live_server()
    world = make_world(tmp_path, database_url, server, tag="RESTART")
    start = day_start(6)
    clocks = {s: SimClock(start, 0) for s in world.serials}

    def run_until(t) -> list[int]:
        spools = []
        for serial in world.serials:
            agent = world.agent(serial, clocks[serial], server=server.base_url, state_dir=tmp_path / serial)
            spools.append(run_agent(agent, t))
        return spools

    run_until(start + 2 * DAY)
    server.kill()  # SIGKILL: the decode pipeline may be mid-batch
    assert all(run_until(start + 3 * DAY)), "uploads to a dead head-end must leave telegrams spooled"
    server.start()
    assert run_until(start + 5 * DAY) == [0, 0]
    server.kill()
    server.start()
    check_exactly_once(world)
