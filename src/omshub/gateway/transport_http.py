"""HTTPS uplink transport: ``POST <server>/api/v1/uplink`` with ``Authorization: Bearer``."""

from __future__ import annotations

import httpx

from omshub.protocol.envelope import MAX_RESPONSE, PayloadTooLarge, TransportError, UplinkRejected
from omshub.protocol.topics import HTTP_UPLINK_PATH as UPLINK_PATH


class HttpsTransport:
    name = "https"
    cred_in_envelope = False

    def __init__(self, url: str, credential: str, *, timeout_s: float = 30.0, verify: bool | str = True) -> None:
        if not url.startswith(("https://", "http://")):
            raise ValueError(f"server URL {url!r} must start with https:// (or http:// for tests)")
        url = url.rstrip("/")
        self.url = url if url.endswith(UPLINK_PATH) else url + UPLINK_PATH
        self._credential = credential
        self._client = httpx.AsyncClient(timeout=httpx.Timeout(timeout_s), verify=verify, follow_redirects=False)

    def __repr__(self) -> str:  # never shows the credential
        return f"HttpsTransport({self.url!r})"

    async def send(self, body: bytes, content_type: str = "application/cbor") -> bytes:
        headers = {"Authorization": f"Bearer {self._credential}", "Content-Type": content_type, "Accept": content_type}
        try:
            resp = await self._client.post(self.url, content=body, headers=headers)
        except httpx.TimeoutException:
            raise TransportError(f"POST {self.url}: timed out") from None
        except httpx.HTTPError as exc:
            raise TransportError(f"POST {self.url}: {type(exc).__name__}: {exc}") from None
        if resp.status_code == 413:
            raise PayloadTooLarge(f"POST {self.url}: 413 body of {len(body)} bytes too large")
        if resp.status_code >= 500 or resp.status_code in (408, 429):
            raise TransportError(f"POST {self.url}: server answered {resp.status_code}")
        if resp.status_code >= 400:
            detail = resp.text[:300].replace("\n", " ")
            raise UplinkRejected(resp.status_code, _error_code(resp), f"POST {self.url}: {resp.status_code} {detail}")
        if resp.status_code != 200:
            raise TransportError(f"POST {self.url}: unexpected status {resp.status_code}")
        if len(resp.content) > MAX_RESPONSE:
            raise TransportError(f"POST {self.url}: response of {len(resp.content)} bytes too large")
        return resp.content

    async def close(self) -> None:
        await self._client.aclose()


def _error_code(resp: httpx.Response) -> str:
    """The machine code of the head-end's refusal ({"error": {"code", "message"}}), else "rejected"."""
    try:
        code = resp.json()["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return "rejected"
    return code if isinstance(code, str) else "rejected"
