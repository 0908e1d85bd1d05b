"""`omshub customers monthly`: records, PDFs, e-mails through SMTP and the print batch; the second run
sends and prints nothing."""

from __future__ import annotations

import json

import time_machine
from typer.testing import CliRunner

from omshub.cli import app as cli
from omshub.cloud.services.customer_settings import update_settings
from tests.cloud import customer_scenario
from tests.cloud.customer_scenario import NOW
from tests.cloud.test_customer_channels import smtp_server  # noqa: F401 (a fixture, used by name)


def test_the_monthly_run_does_everything_once(hub, db, database_url, data_dir, tmp_path, smtp_server):
    inbox, port = smtp_server
    t = hub.tenant()
    with db.transaction() as s:
        customer_scenario.build(s, t.id)
        update_settings(s, t.id, {"smtp": {"host": "127.0.0.1", "port": port}}, actor="test", now=NOW)
    args = ["customers", "monthly", "--tenant", t.slug, "--month", "2026-11", "--database", database_url]
    args += ["--data-dir", str(data_dir), "--out", str(tmp_path)]
    with time_machine.travel(NOW, tick=False):
        first = CliRunner().invoke(cli, [*args, "--json"])
        assert first.exit_code == 0, first.output
        r = json.loads(first.stdout)
        assert r["records"]["new"] == 10 and r["records"]["incomplete"] == 1  # Emil: estimated
        assert r["pdfs"] == 10 and len(list((tmp_path / "2026-11").glob("*-occupant-*.pdf"))) == 7
        assert r["emails"] == {"sent": 6, "retry": 0, "failed": 0} and len(inbox.messages) == 6
        assert r["printed"] == 1 and (tmp_path / "2026-11").glob("print-batch-*.pdf")
        again = CliRunner().invoke(cli, args)
        assert again.exit_code == 0, again.output
        assert "10 / 0 / 0" not in again.stdout and "0 / 0 / 10" in again.stdout  # new / changed / unchanged
        assert len(inbox.messages) == 6
        bad = CliRunner().invoke(cli, [*args[:5], "2026-12", *args[6:]])
        assert bad.exit_code == 1 and "not over" in bad.output
