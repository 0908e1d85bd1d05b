"""A tiny HTTP head-end for tests: POST /api/v1/uplink per docs/formats.md §2 (ack, config)."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.gateway.helpers import FakeHeadend


class HttpHeadend:
    def __init__(self, credential: str = "tok-123") -> None:
        self.credential = credential
        self.logic = FakeHeadend()
        self.auth_failures = 0
        self.status_override: int | None = None
        self.answer_delay_s = 0.0  # uplinks with telegrams: processed, then the answer is slow
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                if self.path != "/api/v1/uplink":
                    return self._reply(404, b"not found", "text/plain")
                if self.headers.get("Authorization") != f"Bearer {outer.credential}":
                    outer.auth_failures += 1
                    return self._reply(401, b"bad credential", "text/plain")
                if outer.status_override:
                    return self._reply(outer.status_override, b"nope", "text/plain")
                if n > 1 << 20:
                    return self._reply(413, b"too large", "text/plain")
                ctype = self.headers.get("Content-Type", "application/cbor")
                answer = outer.logic.handle(body, ctype)
                if outer.answer_delay_s and outer.logic.uplinks[-1]["telegrams"]:
                    time.sleep(outer.answer_delay_s)
                self._reply(200, answer, "application/cbor")

            def _reply(self, code, data, ctype):
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
