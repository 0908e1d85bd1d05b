"""Request bodies authenticated before and bounded while they are read (issue 9 item 7).

Before: bodies of JSON routes and the meter import were read whole before authentication and
without a limit (4 GiB without credentials left the server at 9.3 GB RSS). Now a request guard
(cloud/api/guard.py) answers 401 before reading a body a route needs credentials for, and 413 as soon
as a body passes its route's limit. Done means: a real `omshub serve` stays within 64 MiB of its
idle RSS while 256 MiB are sent to any route without credentials.
"""

from __future__ import annotations

import asyncio
import select
import socket
import threading
import time
from pathlib import Path

import cbor2
import pytest

from ..clock import EPOCH
from .conftest import batch_envelope, encode

API = "/api/v1"
MiB = 1 << 20


# --- the guard, at the ASGI level: what it answers and whether the body was touched ---


def _asgi(
    app, method: str, path: str, headers: dict[str, str], chunks: list[bytes], root_path: str = ""
) -> tuple[int, dict, int]:
    """Run one request through the app -> (status, JSON/CBOR body, body messages the app took)."""
    taken = 0
    pending = list(chunks)
    sent: list[dict] = []

    async def receive():
        nonlocal taken
        if not pending:
            return {"type": "http.disconnect"}
        taken += 1
        chunk = pending.pop(0)
        return {"type": "http.request", "body": chunk, "more_body": bool(pending)}

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": root_path + path,
        "raw_path": (root_path + path).encode(),
        "root_path": root_path,
        "query_string": b"",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8080),
    }
    asyncio.run(app(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    content_type = dict(start["headers"]).get(b"content-type", b"")
    decoded = cbor2.loads(body) if content_type.startswith(b"application/cbor") else __import__("orjson").loads(body)
    return start["status"], decoded, taken


def test_no_body_is_read_without_credentials(app, hub):
    t = hub.tenant()
    gw = hub.gateway(t)
    chunk = b"x" * 65536
    for path, headers in [
        (f"{API}/uplink", {"content-type": "application/cbor"}),
        (f"{API}/uplink", {"content-type": "application/cbor", "authorization": "Bearer omg_wrong"}),
        (f"{API}/meters/import", {"content-type": "text/csv"}),
        (f"{API}/keys/import", {"content-type": "text/csv", "authorization": "Bearer omh_not-a-token"}),
        (f"{API}/metering-points", {"content-type": "application/json"}),
        (f"{API}/gateways/{gw.id}/config", {"content-type": "application/json", "authorization": "Basic eDp5"}),
        (f"{API}/no-such-route", {"content-type": "application/json"}),
    ]:
        for framing in ({"content-length": str(len(chunk) * 4)}, {"transfer-encoding": "chunked"}):
            status, body, taken = _asgi(
                app, "PUT" if "config" in path else "POST", path, {**headers, **framing}, [chunk] * 4
            )
            assert (status, body["error"]["code"], taken) == (401, "unauthorized", 0), (path, framing, body)
    # behind a proxy that mounts the head-end under a prefix (uvicorn --root-path) alike
    status, body, taken = _asgi(
        app,
        "POST",
        f"{API}/meters/import",
        {"content-type": "text/csv", "transfer-encoding": "chunked"},
        [chunk] * 4,
        root_path="/omshub",
    )
    assert (status, taken) == (401, 0)
    # a gateway's uplink over HTTP: the header, not the envelope, carries the credential
    status, body, _ = _asgi(
        app, "POST", f"{API}/uplink", {"content-type": "application/cbor", "content-length": "10"}, [b"x" * 10]
    )
    assert "Authorization: Bearer" in body["error"]["message"] and "CoAP and MQTT" in body["error"]["message"]


def test_declared_length_over_the_limit_is_refused_unread(app, hub):
    t = hub.tenant()
    gw = hub.gateway(t)
    limits = app.state.settings
    token = {"authorization": f"Bearer {hub.token(t, 'admin')}"}
    cases = [
        (
            f"{API}/uplink",
            {"authorization": f"Bearer {gw.credential}", "content-type": "application/cbor"},
            limits.max_uplink_body,
        ),
        (f"{API}/auth/login", {"content-type": "application/json"}, limits.max_json_body),
        (f"{API}/metering-points", {**token, "content-type": "application/json"}, limits.max_json_body),
        (f"{API}/meters/import", {**token, "content-type": "text/csv"}, limits.max_import_body),
        (f"{API}/keys/import", {**token, "content-type": "text/csv"}, limits.max_import_body),
        ("/no-such-page", {}, limits.max_json_body),
    ]
    for path, headers, limit in cases:
        status, body, taken = _asgi(app, "POST", path, {**headers, "content-length": str(limit + 1)}, [b"x"])
        assert (status, body["error"]["code"], taken) == (413, "payload_too_large", 0), (path, body)
        assert str(limit) in body["error"]["message"]


def test_chunked_body_over_the_limit_is_cut_off_at_the_limit(app, hub):
    t = hub.tenant()
    gw = hub.gateway(t)
    token = {"authorization": f"Bearer {hub.token(t, 'operator')}"}
    chunk = b"x" * 65536
    cases = [
        (
            f"{API}/uplink",
            {"authorization": f"Bearer {gw.credential}", "content-type": "application/cbor"},
            app.state.settings.max_uplink_body,
            "cbor",
        ),
        (f"{API}/auth/login", {"content-type": "application/json"}, app.state.settings.max_json_body, "json"),
        (f"{API}/meters/import", {**token, "content-type": "text/csv"}, app.state.settings.max_import_body, "json"),
        (f"{API}/keys/import", {**token, "content-type": "text/csv"}, app.state.settings.max_import_body, "json"),
    ]
    for path, headers, limit, _encoding in cases:
        n = limit // len(chunk) + 8
        status, body, taken = _asgi(app, "POST", path, {**headers, "transfer-encoding": "chunked"}, [chunk] * n)
        assert (status, body["error"]["code"]) == (413, "payload_too_large"), (path, body)
        assert taken == limit // len(chunk) + 1  # it stopped at the first chunk past the limit


def test_bodies_within_the_limits_still_work(hub, client):
    t = hub.tenant()
    gw = hub.gateway(t)
    h = hub.headers(t, "operator")
    answer = hub.send(gw, 1, [encode("23000001")], t0=int(EPOCH.timestamp()))
    assert answer["stored"] == 1

    def chunks(data: bytes, size: int = 1000):
        for i in range(0, len(data), size):
            yield data[i : i + size]

    csv = b"manufacturer,id,device_type\n" + b"".join(b"KAM,%08d,heat\n" % (23100000 + i) for i in range(300))
    r = client.post(f"{API}/meters/import", content=chunks(csv), headers={**h, "Content-Type": "text/csv"})
    assert r.status_code == 200 and r.json()["created"] == 300, r.text
    keys = b"id,key\n" + b"".join(b"%08d,%s\n" % (23100000 + i, b"00" * 16) for i in range(300))
    r = client.post(f"{API}/keys/import", content=chunks(keys), headers={**h, "Content-Type": "text/csv"})
    assert r.status_code == 200, r.text
    # the key export takes up to 100,000 meters: more than the 1 MiB of other JSON routes
    many = {"meters": [f"KAM:{23200000 + i:08d}" for i in range(100_000)]}
    r = client.post(f"{API}/keys/export", json=many, headers=hub.headers(t, "admin"))
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found", r.text[:200]
    body = cbor2.dumps(batch_envelope(gw.serial, 2, [encode("23000002")], t0=int(EPOCH.timestamp())))
    r = client.post(
        f"{API}/uplink",
        content=chunks(body, 50),
        headers={"Authorization": f"Bearer {gw.credential}", "Content-Type": "application/cbor"},
    )
    assert r.status_code == 200 and cbor2.loads(r.content)["stored"] == 1


# --- a real server while 256 MiB are sent to it ---


def _rss(pid: int, field: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field} for pid {pid}")


class Sampler(threading.Thread):
    """The server's peak RSS while it runs (every 5 ms)."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak, self.stopping = pid, 0, threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            self.peak = max(self.peak, _rss(self.pid))
            time.sleep(0.005)

    def stop(self) -> int:
        self.stopping.set()
        self.join(5)
        return self.peak


def _send(
    port: int, method: str, path: str, headers: dict[str, str], framing: str, total: int
) -> tuple[int | None, int]:
    """Send `total` bytes of body (framing "length": honest Content-Length, "chunked", or "lying":
    Content-Length 1000 and the rest anyway) -> (the status answered or None, body bytes sent).
    Stops when the server answers or closes."""
    size = 256 << 10
    piece = b"x" * size
    if framing == "chunked":
        piece = (b"%x\r\n" % size) + piece + b"\r\n"
    head = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", *(f"{k}: {v}" for k, v in headers.items())]
    head.append(
        {
            "length": f"Content-Length: {total}",
            "chunked": "Transfer-Encoding: chunked",
            "lying": "Content-Length: 1000",
        }[framing]
    )
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sent, answer, closed = 0, b"", False
    try:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        pending = memoryview(b"")
        deadline = time.monotonic() + 120
        # as an attacker would: go on sending after the answer, until the server closes
        while (sent < total or pending) and not closed and time.monotonic() < deadline:
            readable, writable, _ = select.select([sock], [sock], [], 1)
            if readable:
                more = sock.recv(65536)
                answer += more
                closed = not more
            elif writable:
                if not pending:
                    pending = memoryview(piece)
                    sent += size
                pending = pending[sock.send(pending) :]
        if framing == "chunked" and sent >= total and not pending:
            sock.sendall(b"0\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass
    try:
        while b"\r\n" not in answer and not closed:
            more = sock.recv(65536)
            answer += more
            closed = not more
    except (ConnectionResetError, TimeoutError):
        pass
    finally:
        sock.close()
    status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else None
    return status, sent


@pytest.mark.slow
def test_server_memory_stays_bounded_while_256_mib_are_sent_without_credentials(live_server, hub):
    server = live_server(pipeline="false")
    t = hub.tenant()
    gw = hub.gateway(t)
    port, pid = server.port, server.proc.pid
    # warm up: every route once, normally
    import httpx

    with httpx.Client(base_url=server.base_url, timeout=30) as http:
        http.post(f"{API}/auth/login", json={"username": "nobody", "password": "wrong password"})
        http.post(f"{API}/metering-points", json={"ref": "x"})
        http.post(f"{API}/meters/import", content=b"manufacturer,id\n", headers={"Content-Type": "text/csv"})
        http.post(f"{API}/uplink", content=b"\xa0", headers={"Authorization": f"Bearer {gw.credential}"})
        http.get("/no-such-page")
    time.sleep(0.5)
    idle = _rss(pid)
    high_water_before = _rss(pid, "VmHWM")

    routes = [
        ("POST", f"{API}/uplink", {"Content-Type": "application/cbor"}),
        ("POST", f"{API}/auth/login", {"Content-Type": "application/json"}),
        ("POST", f"{API}/meters/import", {"Content-Type": "text/csv"}),
        ("POST", f"{API}/keys/import", {"Content-Type": "text/csv"}),
        ("POST", f"{API}/metering-points", {"Content-Type": "application/json"}),
        ("PUT", f"{API}/gateways/{gw.id}/config", {"Content-Type": "application/json"}),
        ("POST", f"{API}/no-such-route", {"Content-Type": "application/json"}),
        ("POST", "/no-such-page", {"Content-Type": "application/json"}),
    ]
    expected = {  # (route, framing) -> status; anything not listed: 401 (no credentials)
        (f"{API}/auth/login", "length"): 413,
        (f"{API}/auth/login", "chunked"): 413,
        (f"{API}/auth/login", "lying"): 422,
        ("/no-such-page", "length"): 413,
        ("/no-such-page", "chunked"): 404,
        ("/no-such-page", "lying"): 404,
    }
    for route in routes:
        expected.setdefault((route[1], "length"), 413)
    sampler = Sampler(pid)
    sampler.start()
    results = {}
    try:
        for method, path, headers in routes:
            for framing in ("length", "chunked", "lying"):
                results[(path, framing)] = _send(port, method, path, headers, framing, 256 * MiB)
    finally:
        peak = sampler.stop()
    high_water_after = _rss(pid, "VmHWM")
    statuses = {key: status for key, (status, _sent) in results.items()}
    print(
        {key: f"{status} after {sent / MiB:.1f} MiB" for key, (status, sent) in results.items()},
        f"idle {idle / MiB:.1f} MiB, peak {peak / MiB:.1f} MiB, VmHWM {high_water_after / MiB:.1f} MiB",
    )
    assert peak - idle <= 64 * MiB, f"RSS rose from {idle / MiB:.0f} to {peak / MiB:.0f} MiB"
    assert high_water_after <= max(high_water_before, idle + 64 * MiB), (
        f"peak RSS {high_water_after / MiB:.0f} MiB (idle {idle / MiB:.0f} MiB)"
    )
    assert statuses == {key: expected.get(key, 401) for key in results}, statuses
    assert httpx.get(server.base_url + f"{API}/health", timeout=10).status_code == 200
    assert "Traceback" not in server.log()


def test_imports_named_by_their_path_take_the_import_limit(app, hub):
    """Master data, ARGE records and a weather station's days are files like the meter import: a body
    larger than the JSON limit reaches the route (which answers about its content, not its size)."""
    t = hub.tenant()
    token = {"authorization": f"Bearer {hub.token(t, 'admin')}", "content-type": "text/csv"}
    size = app.state.settings.max_json_body + 1
    assert size < app.state.settings.max_import_body
    for path in (f"{API}/master-data/import/units", f"{API}/arge/import", f"{API}/weather-stations/999999/days"):
        status, body, _ = _asgi(app, "POST", path, {**token, "content-length": str(size)}, [b"x" * size])
        assert status != 413, (path, body)
    status, body, _ = _asgi(
        app, "POST", f"{API}/master-data/import/units/extra", {**token, "content-length": str(size)}, [b"x"]
    )
    assert status == 413, body
