"""gateway.toml: validation, path resolution, transports from settings."""

import pytest

from omshub.gateway.agent import make_clock, make_transport
from omshub.gateway.clock import Clock, SimClock
from omshub.gateway.settings import EXAMPLE, SettingsError, load_settings, settings_from_dict

BASE = {"serial": "GW-1", "credential": "c", "server": "https://h", "source": "hexfile:x.hex", "state_dir": "st"}


def test_example_is_valid(tmp_path):
    p = tmp_path / "g.toml"
    p.write_text(EXAMPLE)
    (tmp_path / "gateway.credential").write_text("abc\n")
    s = load_settings(p)
    assert s.secret() == "abc" and s.state_dir == str(tmp_path / "state")
    assert s.initial_config().timezone == "Europe/Berlin"


def test_relative_paths_follow_the_file(tmp_path):
    p = tmp_path / "g.toml"
    p.write_text(
        'serial = "GW-1"\ncredential = "c"\nserver = "https://h"\nsource = "hexfile:cap/in.hex"\n'
        'state_dir = "/var/lib/gw"\n'
    )
    s = load_settings(p)
    assert s.source == f"hexfile:{tmp_path}/cap/in.hex" and s.state_dir == "/var/lib/gw"
    assert settings_from_dict({**BASE, "source": "rtlwmbus:-"}, base=tmp_path).source == "rtlwmbus:-"
    assert settings_from_dict({**BASE, "source": "im871a:/dev/ttyUSB0"}, base=tmp_path).source == "im871a:/dev/ttyUSB0"


@pytest.mark.parametrize(
    "change, why",
    [
        ({"credential": None}, "exactly one of credential"),
        ({"credential_file": "f"}, "exactly one of credential"),
        ({"serial": "a b"}, "serial"),
        ({"transport": "smoke"}, "transport"),
        ({"surprise": 1}, "surprise"),
        ({"config": {"timezone": "Nowhere/Land"}}, r"\[config\]: timezone"),
        ({"config": {"upload": {"cron": "0 30 3 * *"}}}, "6 fields"),
        ({"spool": {"max_rows": 0}}, "max_rows"),
    ],
)
def test_invalid_settings(change, why):
    data = {k: v for k, v in {**BASE, **change}.items() if v is not None}
    with pytest.raises(SettingsError, match=why):
        settings_from_dict(data)


def test_bad_files(tmp_path):
    with pytest.raises(SettingsError, match="No such file"):
        load_settings(tmp_path / "missing.toml")
    (tmp_path / "bad.toml").write_text("serial = [")
    with pytest.raises(SettingsError, match="not valid TOML"):
        load_settings(tmp_path / "bad.toml")
    s = settings_from_dict({**BASE, "credential": None, "credential_file": str(tmp_path / "nope")})
    with pytest.raises(SettingsError, match="credential_file"):
        s.secret()


def test_transports_and_clock_from_settings():
    https = make_transport(settings_from_dict(BASE))
    assert https.name == "https" and not https.cred_in_envelope
    coap = make_transport(settings_from_dict({**BASE, "transport": "coap", "server": "coap://127.0.0.1/u"}))
    assert coap.name == "coap" and coap.cred_in_envelope
    mqtt = make_transport(
        settings_from_dict(
            {**BASE, "transport": "mqtt", "server": "mqtt://127.0.0.1:1883", "uplink": {"options": {"prefix": "test"}}}
        )
    )
    assert mqtt.name == "mqtt" and mqtt.up_topic == "test/up/GW-1"
    assert type(make_clock(settings_from_dict(BASE))) is Clock
    sim = make_clock(settings_from_dict({**BASE, "clock": {"speed": 0, "start": 1000}}))
    assert isinstance(sim, SimClock) and sim.jump and sim.now() == 1000
