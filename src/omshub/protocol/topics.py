"""Names both ends of the link agree on: gateway serials, link modes, MQTT topics, CoAP paths and
MQTT broker addresses (docs/formats.md §2.6, docs/transports.md)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, get_args
from urllib.parse import unquote, urlsplit

#: A gateway serial: 1-64 of A-Z a-z 0-9 . _ - (it is part of MQTT topics and of log lines).
SERIAL_PATTERN = r"^[A-Za-z0-9._-]{1,64}$"
SERIAL_RE = re.compile(SERIAL_PATTERN)

#: The wM-Bus link modes a receiver listens in (a collection window names some of them).
LinkMode = Literal["T1", "C1", "S1", "T2", "C2", "S2", "N"]
LINK_MODES: tuple[str, ...] = get_args(LinkMode)
#: A link mode's number in a CBOR uplink batch; 0 is a frame whose mode the receiver did not say.
LINK_MODE_CODES = {"unknown": 0, **{name: code for code, name in enumerate(LINK_MODES, start=1)}}
#: The same numbering read the other way: LINK_MODE_BY_CODE[code] is the name ("unknown" at 0).
LINK_MODE_BY_CODE = tuple(LINK_MODE_CODES)
LINK_MODE_NAMES = dict(enumerate(LINK_MODE_BY_CODE))

DEFAULT_PREFIX = "omshub"
#: The CoAP resource a gateway POSTs its uplink to, as a path and as URI path segments.
COAP_UPLINK_PATH = "/u"
COAP_UPLINK_SEGMENTS = ("u",)
#: The HTTPS uplink endpoint below the head-end's base URL.
HTTP_UPLINK_PATH = "/api/v1/uplink"


def valid_serial(serial: object) -> bool:
    return isinstance(serial, str) and SERIAL_RE.match(serial) is not None


def up_topic(serial: str, prefix: str = DEFAULT_PREFIX) -> str:
    """Where a gateway publishes its uplinks."""
    return f"{prefix}/up/{serial}"


def down_topic(serial: str, prefix: str = DEFAULT_PREFIX) -> str:
    """Where the head-end answers a gateway."""
    return f"{prefix}/down/{serial}"


def up_filter(prefix: str = DEFAULT_PREFIX) -> str:
    """The head-end's subscription: every gateway's up topic."""
    return f"{prefix}/up/+"


def topic_serial(topic: str) -> str:
    """The gateway serial an up or down topic names (its last level; check it with SERIAL_RE)."""
    return topic.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int
    tls: bool
    username: str | None
    password: str | None


def parse_broker_url(url: str) -> BrokerAddress:
    """``mqtt://[user:pass@]host[:1883]``, ``mqtts://...[:8883]`` or plain ``host:port``."""
    text = url.strip()
    if "://" not in text:
        text = "mqtt://" + text
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"MQTT broker URL {url!r} is malformed: {exc}") from None
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise ValueError(f"MQTT broker URL {url!r} must look like mqtt://host:1883 or mqtts://host:8883")
    if parts.path not in ("", "/") or parts.query:
        raise ValueError(f"MQTT broker URL {url!r} must not have a path or query")
    tls = parts.scheme == "mqtts"
    return BrokerAddress(
        host=parts.hostname,
        port=port or (8883 if tls else 1883),
        tls=tls,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
    )
