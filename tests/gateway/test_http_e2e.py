"""HTTPS transport and the agent against a small HTTP head-end; the CLI as a subprocess."""

import asyncio
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from omshub.gateway.agent import Agent
from omshub.gateway.clock import SimClock
from omshub.gateway.settings import EXAMPLE, load_settings, settings_from_dict
from omshub.gateway.transport_http import HttpsTransport
from omshub.protocol.envelope import TransportError, UplinkRejected, build_envelope
from tests.gateway.fake_headend_http import HttpHeadend
from tests.gateway.helpers import ScheduledSource, frame
from tests.gateway.test_agent import DAY, START

pytestmark = pytest.mark.subprocess  # every test here starts another process: not in the fast lane


@pytest.fixture
def headend():
    h = HttpHeadend()
    yield h
    h.close()


def test_https_transport_auth_and_errors(headend):
    async def main():
        good = HttpsTransport(headend.url, "tok-123", timeout_s=5)
        body = build_envelope(serial="GW-9", seq=1, cfg=0)
        answer = await good.send(body)
        bad = HttpsTransport(headend.url, "wrong", timeout_s=5)
        with pytest.raises(UplinkRejected) as e:
            await bad.send(body)
        headend.status_override = 503
        with pytest.raises(TransportError, match="503"):
            await good.send(body)
        headend.status_override = None
        down = HttpsTransport("http://127.0.0.1:9", "tok-123", timeout_s=2)
        with pytest.raises(TransportError):
            await down.send(body)
        for t in (good, bad, down):
            await t.close()
        return answer, e.value.status

    answer, status = asyncio.run(main())
    assert answer and status == 401
    assert "tok-123" not in repr(HttpsTransport(headend.url, "tok-123"))


def test_agent_over_https_with_config_delivery(headend, tmp_path):
    settings = settings_from_dict(
        {
            "serial": "GW-HTTP",
            "credential": "tok-123",
            "server": headend.url,
            "transport": "https",
            "source": "hexfile:/unused",
            "state_dir": str(tmp_path / "st"),
            "config": {"timezone": "UTC", "spread_s": 600},
        }
    )
    clock = SimClock(START, 0)
    source = ScheduledSource(clock, [frame(f"{i:08d}") for i in range(30)], interval=30, step=1)
    headend.logic.desired = {
        "version": 2,
        "timezone": "UTC",
        "spread_s": 0,
        "filters": {"mode": "whitelist", "meters": [{"id": f"{i:08d}"} for i in range(0, 20, 2)]},
    }
    agent = Agent(settings, clock=clock, source=source, rng=random.Random(3))

    async def main():
        await agent.run(until=START + 2 * DAY)
        await agent.close()

    asyncio.run(main())
    ups = headend.logic.uplinks
    assert ups[0]["cfg"] == 0 and all(u["cfg"] == 2 for u in ups[1:])
    assert len(headend.logic.stored) == 20  # whitelist of 10, two windows
    assert agent.last_window.reason == "all_heard"
    assert ups[-1]["status"]["filtered"] > 0
    assert "cred" not in ups[0]  # HTTPS: credential in the header only


def _write_settings(
    tmp_path: Path, url: str, source: str, credential="tok-123", window_cron: str = "*/2 * * * * *", window_s: int = 1
) -> Path:
    cfg = tmp_path / "gateway.toml"
    (tmp_path / "cred").write_text(credential + "\n")
    cfg.write_text(f'''
serial = "GW-CLI"
credential_file = "cred"
server = "{url}"
source = "{source}"
state_dir = "state"
log_level = "debug"
[uplink]
retry_base_s = 1
retry_max_s = 2
[config]
timezone = "UTC"
spread_s = 0
[[config.collection]]
cron = "{window_cron}"
duration_s = {window_s}
link_modes = ["T1"]
[config.upload]
cron = "*/3 * * * * *"
''')
    return cfg


def test_cli_run_sigterm(headend, tmp_path):
    hexfile = tmp_path / "in.hex"
    hexfile.write_text("\n".join(f"{frame(f'{i:08d}').hex()};-60;T1" for i in range(5)) + "\n")
    cfg = _write_settings(tmp_path, headend.url, "hexfile:in.hex")
    proc = subprocess.Popen(
        [sys.executable, "-m", "omshub", "gateway", "run", "-c", str(cfg)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )

    def acked():  # all 5 stored, and a later uplink reports an empty spool (the batch was acked)
        ups = headend.logic.uplinks
        return len(headend.logic.stored) == 5 and ups[-1]["status"]["spool"] == 0 and ups[-1]["seq"] > 2

    deadline = time.time() + 30
    while time.time() < deadline and not acked():
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err
    assert len(headend.logic.stored) == 5
    assert "tok-123" not in err and "tok-123" not in out
    assert "uplink seq" in err and "stopping" in err
    status = subprocess.run(
        [sys.executable, "-m", "omshub", "gateway", "status", "-c", str(cfg)], capture_output=True, text=True
    )
    assert status.returncode == 0 and '"spool": 0' in status.stdout


def test_cli_errors(tmp_path):
    cfg = _write_settings(tmp_path, "http://127.0.0.1:9", "im871a:/dev/nonexistent-stick")
    r = subprocess.run(
        [sys.executable, "-m", "omshub", "gateway", "run", "-c", str(cfg)], capture_output=True, text=True, timeout=30
    )
    assert r.returncode == 1 and "cannot open /dev/nonexistent-stick" in r.stderr
    assert "Traceback" not in r.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text('serial = "x y"\n')
    r = subprocess.run(
        [sys.executable, "-m", "omshub", "gateway", "run", "-c", str(bad)], capture_output=True, text=True, timeout=30
    )
    assert r.returncode == 2 and "serial" in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run(
        [sys.executable, "-m", "omshub", "gateway", "init", str(tmp_path / "g.toml")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode == 0
    (tmp_path / "gateway.credential").write_text("x")
    s = load_settings(tmp_path / "g.toml")
    assert s.serial == "GW-0001" and s.initial_config().collection[0].link_modes == ["T1", "C1"]


def test_cli_sigkill_during_upload_then_restart(headend, tmp_path):
    hexfile = tmp_path / "in.hex"
    frames = [frame(f"{i:08d}") for i in range(5)]
    hexfile.write_text("\n".join(f.hex() for f in frames) + "\n")
    # a window long enough to spool all five frames even when fsyncs are slow on a busy machine
    cfg = _write_settings(tmp_path, headend.url, "hexfile:in.hex", window_cron="*/5 * * * * *", window_s=4)
    headend.answer_delay_s = 30  # stores the batch, then the answer hangs
    cmd = [sys.executable, "-m", "omshub", "gateway", "run", "-c", str(cfg)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 20
    while time.time() < deadline and len(headend.logic.stored) < 5:
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)  # power cut while waiting for the ack
    proc.wait(10)
    killed_seq = headend.logic.uplinks[-1]["seq"]
    assert len(headend.logic.uplinks[-1]["telegrams"]) == 5
    hexfile.write_text("")  # the radio hears nothing new after the restart
    headend.answer_delay_s = 0
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 20
    while time.time() < deadline and len(headend.logic.uplinks) < 4:
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err
    resent = [u for u in headend.logic.uplinks if u["seq"] == killed_seq]
    assert len(resent) == 2 and resent[0]["telegrams"] == resent[1]["telegrams"]
    assert len(headend.logic.stored) == 5  # stored once
    assert {t["raw"] for t in headend.logic.stored.values()} == set(frames)
    assert headend.logic.uplinks[-1]["status"]["spool"] == 0


def test_readme_gateway_init_redirected_to_a_file(tmp_path):
    """The README's `omshub gateway init > gateway.toml`: the shell makes the file before the command
    runs, so the settings go to standard output, not to a file that then 'exists'."""
    r = subprocess.run(
        f"{sys.executable} -m omshub gateway init > gateway.toml",
        shell=True,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "gateway.toml").read_text() == EXAMPLE
    (tmp_path / "gateway.credential").write_text("x")
    assert load_settings(tmp_path / "gateway.toml").serial == "GW-0001"
