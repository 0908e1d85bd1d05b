"""Debian's OpenSSH server on a loopback port for the SFTP tests: its own configuration, host key
and authorized key in a temporary directory, run as the current user. Skips (with the reason)
where `sshd` or `ssh-keygen` is not installed (`scripts/test` installs openssh-server)."""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

SSHD = "/usr/sbin/sshd"


@dataclass
class SftpServer:
    port: int
    user: str
    private_key: str  # the client's key (OpenSSH format)
    host_key: str  # the server's public host key line
    drop: Path  # an empty directory the client may write to


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_sshd(tmp: Path):
    """Yields an SftpServer; stops the server afterwards."""
    keygen = shutil.which("ssh-keygen")
    if not Path(SSHD).exists() or keygen is None:
        pytest.skip("OpenSSH server not installed (apt-get install openssh-server; scripts/test does it)")
    for name in ("host", "client"):
        subprocess.run([keygen, "-q", "-t", "ed25519", "-N", "", "-f", str(tmp / name)], check=True)
    (tmp / "authorized_keys").write_text((tmp / "client.pub").read_text())
    drop = tmp / "drop"
    drop.mkdir()
    port = _free_port()
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege separation directory
    config = tmp / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {tmp / 'host'}\nPidFile {tmp / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {tmp / 'authorized_keys'}\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nPermitRootLogin prohibit-password\n"
        "Subsystem sftp internal-sftp\n"
    )
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
            pytest.skip(f"sshd did not start: {out.strip()[:300]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.05)
    else:
        proc.kill()
        pytest.skip("sshd did not listen within 10 s")
    host = " ".join((tmp / "host.pub").read_text().split()[:2])
    try:
        yield SftpServer(port, getpass.getuser(), (tmp / "client").read_text(), host, drop)
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
