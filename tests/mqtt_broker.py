"""A real mosquitto for tests: started on a free loopback port, stoppable and restartable.

Only 127.0.0.1, ever. The config sets ``user root`` when the tests run as root
(mosquitto otherwise drops to its own user and cannot read the test's files),
and can add a TLS listener that requires client certificates.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

LOOPBACK = "127.0.0.1"


def find_mosquitto() -> str | None:
    return shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class BrokerTls:
    ca: Path
    cert: Path
    key: Path


class Broker:
    def __init__(
        self, workdir: Path, *, tls: BrokerTls | None = None, persistent: bool = False
    ) -> None:
        """``persistent``: retained messages survive a ``stop`` and ``start`` (saved on stop)."""
        exe = find_mosquitto()
        if exe is None:
            raise RuntimeError("mosquitto is not installed (./dev.sh test installs it)")
        self.exe = exe
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.tls = tls
        self.host = LOOPBACK
        self._proc: subprocess.Popen[bytes] | None = None
        self.config = workdir / "mosquitto.conf"
        lines = [
            "persistence true" if persistent else "persistence false",
            f"persistence_location {workdir}/",
            f"log_dest file {workdir / 'mosquitto.log'}",
            "log_type all",
            f"listener {self.port} {LOOPBACK}",
        ]
        if os.geteuid() == 0:
            lines.insert(0, "user root")
        if tls is None:
            lines.append("allow_anonymous true")
        else:
            lines += [
                f"cafile {tls.ca}",
                f"certfile {tls.cert}",
                f"keyfile {tls.key}",
                "require_certificate true",
                "use_identity_as_username true",
                "allow_anonymous false",
            ]
        self.config.write_text("\n".join(lines) + "\n")

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout_s: float = 10.0) -> None:
        if self.running:
            return
        self._proc = subprocess.Popen(
            [self.exe, "-c", str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                err = self._proc.stderr.read().decode() if self._proc.stderr else ""
                raise RuntimeError(f"mosquitto exited at start: {err}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection((LOOPBACK, self.port), timeout=0.2),
            ):
                return
            time.sleep(0.02)
        raise RuntimeError(f"mosquitto did not listen on {LOOPBACK}:{self.port}")

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        if proc.stderr is not None:
            proc.stderr.close()

    def log(self) -> str:
        path = self.workdir / "mosquitto.log"
        return path.read_text(errors="replace") if path.exists() else ""


def make_tls_files(workdir: Path) -> tuple[BrokerTls, Path, Path]:
    """A throwaway CA, a server certificate for 127.0.0.1 and a client certificate.

    Returns the broker's files and the client's (cert, key), all signed by the CA.
    """
    openssl = shutil.which("openssl")
    if openssl is None:
        raise RuntimeError("openssl is needed to make test certificates")

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], check=True, capture_output=True, cwd=workdir)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-keyout", "ca.key", "-out", "ca.crt", "-subj", "/CN=gatewayd test CA")  # fmt: skip
    for name, cn in (("server", LOOPBACK), ("client", "kit-test")):
        run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key",
            "-out", f"{name}.csr", "-subj", f"/CN={cn}")  # fmt: skip
        ext = workdir / f"{name}.ext"
        ext.write_text(f"subjectAltName=IP:{LOOPBACK}\n" if name == "server" else "")
        run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "2", "-out", f"{name}.crt",
            "-extfile", str(ext))  # fmt: skip
    tls = BrokerTls(workdir / "ca.crt", workdir / "server.crt", workdir / "server.key")
    return tls, workdir / "client.crt", workdir / "client.key"
