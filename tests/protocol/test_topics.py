"""Names both ends agree on: gateway serials, MQTT topics, CoAP paths, broker addresses."""

import pytest

from omshub.protocol.topics import (
    SERIAL_RE,
    down_topic,
    parse_broker_url,
    topic_serial,
    up_filter,
    up_topic,
    valid_serial,
)


@pytest.mark.parametrize(
    "serial, ok",
    [
        ("GW-0001", True),
        ("a.b_c-9", True),
        ("x" * 64, True),
        ("x" * 65, False),
        ("", False),
        ("bad serial", False),
        ("gw/1", False),
        ("gw+", False),
    ],
)
def test_one_serial_rule(serial, ok):
    assert bool(SERIAL_RE.match(serial)) is ok and valid_serial(serial) is ok


def test_topics_name_the_gateway():
    assert up_topic("GW-1") == "omshub/up/GW-1" and down_topic("GW-1", "p") == "p/down/GW-1"
    assert up_filter("p") == "p/up/+" and topic_serial(up_topic("GW-1", "p")) == "GW-1"


def test_broker_urls():
    a = parse_broker_url("mqtts://u%40x:p@broker")
    assert (a.host, a.port, a.tls, a.username, a.password) == ("broker", 8883, True, "u@x", "p")
    assert parse_broker_url("host:1884").port == 1884
    for bad in ("http://x", "mqtt://x/path", "mqtt://x:99999"):
        with pytest.raises(ValueError):
            parse_broker_url(bad)
