"""End to end through the real CLI: `gatewayd check-config` on good and bad files, and
`gatewayd demo` — the README's "run it" command — with its embedded broker and with a
real mosquitto named in a kit config."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import aiomqtt
import pytest

from tests.mqtt_broker import Broker

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
VERDICT_CODES = (
    "commissioned",
    "installed_no_wan",
    "aborted [UNABLE_TO_ESTABLISH_WAN]",
    "aborted [UNABLE_TO_ESTABLISH_HAN]",
    "aborted [SMETS_METER_TYPE_NOT_AVAILABLE]",
)


def gatewayd(
    *args: str, timeout: float = 120, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gatewayd", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def credential_kit(tmp_path: Path) -> Path:
    """A sound kit config whose MQTT password is the systemd credential ``mqtt-password``."""
    port = tmp_path / "hub"
    port.touch()
    kit = tmp_path / "kit.toml"
    kit.write_text(
        f"[hub]\nport = '{port}'\n"
        "[mqtt]\nkit_id = 'kit-1'\nhost = '127.0.0.1'\nport = 1\n"
        "password_credential = 'mqtt-password'\n"
    )
    return kit


def test_check_config_passes_every_shipped_example() -> None:
    files = [str(p) for p in sorted(EXAMPLES.rglob("*.toml"))]
    run = gatewayd("check-config", *files)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Traceback" not in run.stderr
    assert run.stdout.count(": valid kit config") == len(list(EXAMPLES.glob("*.toml")))
    assert run.stdout.count(": valid job file") == len(list((EXAMPLES / "jobs").glob("*.toml")))


def test_check_config_lists_every_problem_with_file_and_key(tmp_path: Path) -> None:
    kit = tmp_path / "kit.toml"
    kit.write_text(
        "[hub]\nport = '/dev/ttyUSB0'\nbaudrate = -5\n"
        "[metrics]\nlisten = 'everywhere'\n"
        "[log]\nlevel = 'loud'\n"
        "[mqtt]\nkit_id = 'kit 1'\n"
    )
    job = tmp_path / "job.toml"
    job.write_text("job_id = 'J-1'\nfuels = ['water']\n")
    broken = tmp_path / "broken.toml"
    broken.write_text("[hub\n")
    run = gatewayd("check-config", str(kit), str(job), str(broken), str(tmp_path / "gone.toml"))
    assert run.returncode == 2
    err = run.stderr
    assert "Traceback" not in err
    for where in ("hub.baudrate", "metrics.listen", "log.level", "mqtt.kit_id"):
        assert f"{kit}: {where}: " in err, err
    assert f"{job}: fuels[0]: " in err
    assert f"{broken}: (top level): invalid TOML" in err
    assert f"{tmp_path / 'gone.toml'}: (top level): file not found" in err
    assert f"{kit}: invalid kit config: 4 problems" in run.stdout
    assert f"{job}: invalid job file" in run.stdout


def test_check_config_checks_the_files_a_kit_config_names(tmp_path: Path) -> None:
    kit = tmp_path / "kit.toml"
    kit.write_text(
        "[hub]\nport = '/dev/no-such-hub'\n"
        "[mqtt]\nkit_id = 'kit-1'\npassword_file = '/no/such/secret'\n"
        "[mqtt.tls]\nca_file = '/no/such/ca.pem'\n"
        "[metrics]\nlisten = '0.0.0.0:9477'\n"
    )
    # Off the kit these are warnings: the files live on the kit the config is for.
    run = gatewayd("check-config", "--kind", "kit", str(kit))
    assert run.returncode == 0, run.stderr
    assert f"{kit}: mqtt.password_file: /no/such/secret: no such file (warning)" in run.stderr
    assert f"{kit}: mqtt.tls.ca_file: /no/such/ca.pem: no such file (warning)" in run.stderr
    assert "hub.port: /dev/no-such-hub does not exist now (unplugged?) (warning)" in run.stderr
    assert "metrics.listen: 0.0.0.0:9477 is not a loopback address" in run.stderr
    # On the kit (--strict) they are errors.
    run = gatewayd("check-config", "--strict", str(kit))
    assert run.returncode == 2
    assert f"{kit}: mqtt.password_file: /no/such/secret: no such file\n" in run.stderr
    assert "4 problems" in run.stdout


def test_check_config_notes_a_credential_it_cannot_see(tmp_path: Path) -> None:
    kit = credential_kit(tmp_path)
    outside = {k: v for k, v in os.environ.items() if k != "CREDENTIALS_DIRECTORY"}
    note = (
        f"{kit}: mqtt.password_credential: $CREDENTIALS_DIRECTORY is not set here, so the "
        "credential cannot be checked: only the service gets it (LoadCredential=), and "
        "gatewayd run refuses to start without it (note)\n"
    )
    # Outside the service the credential cannot exist: a note, never held against the file.
    for strict in ([], ["--strict"]):
        run = gatewayd("check-config", *strict, str(kit), env=outside)
        assert run.returncode == 0, run.stderr
        assert run.stderr == note
        assert run.stdout == f"{kit}: valid kit config\n"
    # Where systemd gave credentials, a missing one is a warning, and an error with --strict.
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    inside = {**outside, "CREDENTIALS_DIRECTORY": str(credentials)}
    missing = f"{kit}: mqtt.password_credential: credential mqtt-password: no such file in "
    run = gatewayd("check-config", str(kit), env=inside)
    assert (run.returncode, run.stderr) == (0, f"{missing}{credentials} (warning)\n")
    run = gatewayd("check-config", "--strict", str(kit), env=inside)
    assert (run.returncode, run.stderr) == (2, f"{missing}{credentials}\n")
    (credentials / "mqtt-password").write_text("not-a-real-password\n")
    run = gatewayd("check-config", "--strict", str(kit), env=inside)
    assert (run.returncode, run.stderr) == (0, "")


def test_demo_refuses_a_config_whose_password_it_cannot_read(tmp_path: Path) -> None:
    kit = credential_kit(tmp_path)
    outside = {k: v for k, v in os.environ.items() if k != "CREDENTIALS_DIRECTORY"}
    run = gatewayd("demo", "--config", str(kit), env=outside)
    assert run.returncode == 2, run.stderr[-3000:]
    assert run.stderr == (
        f"gatewayd demo: {kit}: mqtt.password_credential: $CREDENTIALS_DIRECTORY is not set, so "
        "there is no credential mqtt-password: systemd sets it for a unit with "
        "LoadCredential=mqtt-password:PATH (systemd/gatewayd.service); outside systemd, use "
        "password_file\n"
    )
    assert run.stdout == ""


def test_check_config_names_weak_mqtt_settings(tmp_path: Path) -> None:
    port = tmp_path / "hub"
    port.touch()
    password = tmp_path / "mqtt-password"
    password.write_text("not-a-real-password\n")
    base = f"[hub]\nport = '{port}'\n[mqtt]\nkit_id = 'kit-1'\nhost = 'mqtt.example.invalid'\n"
    insecure = tmp_path / "insecure.toml"
    insecure.write_text(base + "[mqtt.tls]\ninsecure = true\n")
    cleartext = tmp_path / "cleartext.toml"
    cleartext.write_text(base + f"port = 1883\npassword_file = '{password}'\n")
    local = tmp_path / "local.toml"
    local.write_text(
        base.replace("mqtt.example.invalid", "127.0.0.1") + f"password_file = '{password}'\n"
    )
    insecure_line = (
        f"{insecure}: mqtt.tls.insecure: the kit does not check that the broker's certificate "
        "is for mqtt.example.invalid: any certificate from any CA the system trusts passes, so "
        "whoever can redirect the kit's traffic can pose as the broker: read the kit's results "
        "(and its password, if it has one) and send it jobs; remove it, and give the broker a "
        "certificate for mqtt.example.invalid"
    )
    cleartext_line = (
        f"{cleartext}: mqtt.password_file: the password goes to mqtt.example.invalid:1883 "
        "without TLS: anyone on the network between the kit and the broker can read it and "
        "connect as the kit; add an [mqtt.tls] table, and set port to the broker's TLS port "
        "(usually 8883), not 1883"
    )
    files = (str(insecure), str(cleartext), str(local))
    run = gatewayd("check-config", *files)
    assert run.returncode == 0, run.stderr
    assert run.stderr.splitlines() == [f"{insecure_line} (warning)", f"{cleartext_line} (warning)"]
    assert "not-a-real-password" not in run.stdout + run.stderr
    assert run.stdout.count(": valid kit config") == 3
    # On the kit (--strict) they are errors.
    run = gatewayd("check-config", "--strict", *files)
    assert run.returncode == 2
    assert run.stderr.splitlines() == [insecure_line, cleartext_line]
    assert f"{insecure}: invalid kit config: 1 problem\n" in run.stdout
    assert f"{cleartext}: invalid kit config: 1 problem\n" in run.stdout
    assert f"{local}: valid kit config\n" in run.stdout


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("a = " + "[" * 100_000, "arrays or inline tables nest too deeply"),
        ("job_id = 'J'\nfuels = " + "[" * 100_000, "arrays or inline tables nest too deeply"),
        ("a = " + "{b = " * 100_000, "arrays or inline tables nest too deeply"),
        (
            ".".join(["a"] * 100_000) + " = 1\n",
            "line 1 has 99999 dots, more than the 100 a line may have: its keys nest too deeply",
        ),
    ],
    ids=["arrays", "job-arrays", "inline-tables", "dotted-key"],
)
def test_check_config_refuses_a_file_nested_too_deeply(
    tmp_path: Path, text: str, reason: str
) -> None:
    path = tmp_path / "deep.toml"
    path.write_text(text)
    run = gatewayd("check-config", str(path))
    assert run.returncode == 2
    assert run.stderr == f"{path}: (top level): invalid TOML: {reason}\n"
    assert run.stdout == f"{path}: invalid file: 1 problem\n"


def test_demo_runs_every_verdict_over_its_embedded_broker() -> None:
    run = gatewayd("demo", timeout=180)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    out = run.stdout
    assert "Traceback" not in run.stderr
    assert "embedded broker at 127.0.0.1:" in out and "(MQTT 3.1.1)" in out
    assert "mosquitto_sub -h 127.0.0.1 -p " in out and "-t 'gatewayd/demo-kit/#'" in out
    assert "curl -s http://127.0.0.1:" in out and "/metrics" in out
    verdicts = out[out.index("== Verdicts") :]
    for code in VERDICT_CODES:
        assert code in verdicts, verdicts
    assert out.count("  VERDICT  ") == 6
    # The metrics came from a live scrape of the daemon's endpoint.
    assert 'gatewayd_jobs_total{outcome="aborted"} 4.0' in out
    assert 'gatewayd_aborts_total{reason="UNABLE_TO_ESTABLISH_HAN"} 1.0' in out


async def test_demo_publishes_to_a_configured_broker(tmp_path: Path) -> None:
    broker = Broker(tmp_path / "broker")
    broker.start()
    kit = tmp_path / "kit.toml"
    kit.write_text(
        f"[hub]\nport = '/dev/unused'\n"
        f"[mqtt]\nkit_id = 'van-7'\nhost = '{broker.host}'\nport = {broker.port}\n"
    )
    results: dict[str, str] = {}
    try:
        async with aiomqtt.Client(broker.host, broker.port, identifier="watcher") as c:
            await c.subscribe("gatewayd/van-7/jobs/+/result", qos=1)
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "gatewayd", "demo", "--config", str(kit),
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            async with asyncio.timeout(120):
                async for m in c.messages:
                    doc = json.loads(bytes(m.payload))  # type: ignore[arg-type]
                    results[doc["job_id"]] = doc["outcome"]
                    if len(results) == 6:
                        break
            out, err = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        broker.stop()
    assert proc.returncode == 0, err.decode()[-2000:]
    assert f"the broker at {broker.host}:{broker.port}" in out.decode()
    assert sorted(results.values()) == sorted(
        ["commissioned", "installed_no_wan", "aborted", "aborted", "aborted", "aborted"]
    )
