"""The webhook SSRF guard (services/webhooks.check_target): only http/https, no credentials in the
URL, and no loopback, link-local, private, multicast or reserved address unless the operator allows
its network (OMSHUB_WEBHOOK_ALLOW_PRIVATE) — on entry and before every delivery. Addresses are IP
literals or names resolved by a stand-in resolver (no DNS needed)."""

from __future__ import annotations

import socket
from datetime import timedelta

import pytest

from omshub.cloud.domain.errors import Invalid
from omshub.cloud.services import webhooks

from .test_webhooks import Receiver


def resolver(table: dict[str, list[str]]):
    def resolve(host, port, type=0):
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(socket.AF_INET6 if ":" in a else socket.AF_INET, type, 6, "", (a, port)) for a in table[host]]

    return resolve


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("http://127.0.0.1:8080/hook", "loopback"),
        ("http://[::1]/hook", "loopback"),
        ("http://169.254.169.254/latest/meta-data", "link-local"),
        ("https://10.1.2.3/hook", "private"),
        ("https://192.168.0.10/hook", "private"),
        ("http://224.0.0.1/hook", "multicast"),
        ("http://0.0.0.0/hook", "unspecified"),
        ("http://[::ffff:127.0.0.1]/hook", "loopback"),
        ("http://100.64.0.1/hook", "not public"),
    ],
)
def test_internal_addresses_refused(monkeypatch, url, kind):
    monkeypatch.delenv("OMSHUB_WEBHOOK_ALLOW_PRIVATE", raising=False)
    with pytest.raises(Invalid) as err:
        webhooks.check_target(url)
    assert kind in str(err.value) and "OMSHUB_WEBHOOK_ALLOW_PRIVATE" in str(err.value)
    assert "Adresse" in err.value.german and "öffentliche" in err.value.german


def test_a_name_is_checked_by_every_address_it_resolves_to(monkeypatch):
    monkeypatch.delenv("OMSHUB_WEBHOOK_ALLOW_PRIVATE", raising=False)
    resolve = resolver({"hooks.example.net": ["93.184.216.34"], "sneaky.example.net": ["93.184.216.34", "10.0.0.5"]})
    assert webhooks.check_target("https://hooks.example.net/in", resolve) == "https://hooks.example.net/in"
    with pytest.raises(Invalid, match=r"'sneaky.example.net' is 10.0.0.5, a private address"):
        webhooks.check_target("https://sneaky.example.net/in", resolve)
    with pytest.raises(Invalid, match="cannot be resolved") as err:
        webhooks.check_target("https://nowhere.example.net/in", resolve)
    assert "lässt sich nicht auflösen" in err.value.german


@pytest.mark.parametrize(
    ("url", "text", "german"),
    [
        ("ftp://93.184.216.34/x", "http:// or https://", "http://- oder https://-URL"),
        ("file:///etc/passwd", "http:// or https://", "http://- oder https://-URL"),
        ("https://user:secret@93.184.216.34/x", "no user name or password", "kein Benutzername"),
        ("https://token@93.184.216.34/x", "no user name or password", "kein Benutzername"),
        ("https://93.184.216.34:99999/x", "not a URL", "keine URL"),
    ],
)
def test_scheme_and_credentials(url, text, german):
    with pytest.raises(Invalid, match=text) as err:
        webhooks.check_target(url)
    assert german in err.value.german and "secret" not in str(err.value)


def test_operator_allows_networks(monkeypatch):
    monkeypatch.setenv("OMSHUB_WEBHOOK_ALLOW_PRIVATE", "10.20.0.0/16, 127.0.0.1")
    assert webhooks.check_target("http://10.20.3.4/hook")
    assert webhooks.check_target("http://127.0.0.1:9/hook")
    with pytest.raises(Invalid, match="private"):
        webhooks.check_target("http://10.21.0.1/hook")
    monkeypatch.setenv("OMSHUB_WEBHOOK_ALLOW_PRIVATE", "yes")
    assert webhooks.check_target("http://169.254.169.254/")
    monkeypatch.setenv("OMSHUB_WEBHOOK_ALLOW_PRIVATE", "10.20.0.0/16,intranet")
    with pytest.raises(Invalid, match="'intranet' is not a network") as err:
        webhooks.check_target("http://10.20.3.4/hook")
    assert "ist kein Netz" in err.value.german


def test_api_refuses_on_entry_in_both_languages(client, hub, monkeypatch):
    monkeypatch.delenv("OMSHUB_WEBHOOK_ALLOW_PRIVATE", raising=False)
    t = hub.tenant()
    r = client.post("/api/v1/webhooks", json={"url": "http://127.0.0.1:9/hook"}, headers=hub.headers(t))
    assert r.status_code in (400, 422), r.text
    assert "loopback" in r.text
    r = client.post("/api/v1/webhooks", json={"url": "http://127.0.0.1:9/hook"},
                    headers={**hub.headers(t), "Accept-Language": "de"})  # fmt: skip
    assert "Loopback" in r.text and "öffentliche" in r.text


def test_checked_again_before_each_delivery(client, hub, db, app, monkeypatch):
    """An endpoint made while loopback was allowed: once it is not any more, the delivery is
    refused (no request reaches the receiver) and retried like a failure, then delivered when allowed."""
    receiver = Receiver(fail=0)
    try:
        t = hub.tenant()
        r = client.post("/api/v1/webhooks", json={"url": receiver.url, "retry_for_s": 3600}, headers=hub.headers(t))
        assert r.status_code == 201, r.text
        ep = r.json()["id"]
        assert client.post(f"/api/v1/webhooks/{ep}/test", headers=hub.headers(t)).status_code == 202
        monkeypatch.delenv("OMSHUB_WEBHOOK_ALLOW_PRIVATE")
        with db.session() as s:
            now = webhooks.deliveries(s, t.id, "pending", None, 10)[0]["next_at"]
        assert webhooks.deliver_due(db, app.state.keystore, now) == {"delivered": 0, "retry": 1, "dead": 0}
        assert receiver.seen == []
        items = client.get("/api/v1/webhooks/deliveries", headers=hub.headers(t)).json()["items"]
        assert items[0]["last_error"].startswith("refused: url: the host '127.0.0.1' is 127.0.0.1, a loopback")
        monkeypatch.setenv("OMSHUB_WEBHOOK_ALLOW_PRIVATE", "127.0.0.1/32")
        later = now + timedelta(hours=1)
        assert webhooks.deliver_due(db, app.state.keystore, later)["delivered"] == 1
        assert len(receiver.ok) == 1
    finally:
        receiver.close()
