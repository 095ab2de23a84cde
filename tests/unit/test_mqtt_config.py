"""The kit config's [mqtt] table, its password sources, its weak settings, and the on-disk
session counter."""

from __future__ import annotations

import errno
import logging
import os
from pathlib import Path

import pytest

from gatewayd.config.errors import ConfigError
from gatewayd.config.kit import parse_kit_config
from gatewayd.config.mqtt import MqttConfig, SecretError
from gatewayd.daemon.mqtt_link import SessionCounter
from gatewayd.daemon.service import log_weak_settings, main_run
from gatewayd.logfmt import KeyValueFormatter


def kit(**mqtt: object) -> dict[str, object]:
    return {"hub": {"port": "/dev/ttyUSB0"}, "mqtt": {"kit_id": "kit-7", **mqtt}}


def test_defaults() -> None:
    cfg = parse_kit_config(kit()).mqtt
    assert cfg is not None
    assert (cfg.host, cfg.effective_port, cfg.protocol.value) == ("localhost", 1883, "5")
    assert cfg.effective_client_id == "gatewayd-kit-7"
    tls = parse_kit_config(kit(tls={"ca_file": "/etc/ssl/ca.pem"})).mqtt
    assert tls is not None and tls.effective_port == 8883


@pytest.mark.parametrize(
    ("mqtt", "where"),
    [
        ({"kit_id": "kit/7"}, "mqtt.kit_id"),
        ({"kit_id": "kit+7"}, "mqtt.kit_id"),
        ({"kit_id": "region"}, "mqtt.kit_id"),
        ({"password_file": "/x", "password_env": "X"}, "mqtt.password_env"),
        ({"password_file": "/x", "password_credential": "pw"}, "mqtt.password_credential"),
        ({"password_env": "X", "password_credential": "pw"}, "mqtt.password_credential"),
        ({"password_credential": "../pw"}, "mqtt.password_credential"),
        ({"password_credential": "a/b"}, "mqtt.password_credential"),
        ({"password_credential": ""}, "mqtt.password_credential"),
        ({"tls": {"cert_file": "/c.pem"}}, "mqtt.tls.key_file"),
        ({"protocol": "4"}, "mqtt.protocol"),
        ({"prefix": "a//b"}, "mqtt.prefix"),
        ({"reconnect_first_s": 10, "reconnect_max_s": 1}, "mqtt.reconnect_max_s"),
        ({"colour": "blue"}, "mqtt.colour"),
    ],
)
def test_bad_values_name_their_key(mqtt: dict[str, object], where: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_kit_config(kit(**mqtt), source="kit.toml")
    assert f"kit.toml: {where}" in str(err.value)


def test_password_from_file_and_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "pw"
    secret.write_text("from-file\n")
    assert MqttConfig(kit_id="k", password_file=secret).read_password() == "from-file"
    monkeypatch.setenv("GW_PW", "from-env")
    assert MqttConfig(kit_id="k", password_env="GW_PW").read_password() == "from-env"
    with pytest.raises(SecretError, match="password_file"):
        MqttConfig(kit_id="k", password_file=tmp_path / "missing").read_password()


def test_one_password_source_at_most(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        parse_kit_config(
            kit(password_file="/x", password_env="X", password_credential="pw"), source="kit.toml"
        )
    assert str(err.value) == (
        "kit.toml: mqtt.password_credential: give one of password_file, password_env, "
        "password_credential, not password_file and password_env and password_credential"
    )


def test_a_password_file_that_is_not_utf8_is_named_without_its_bytes(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_bytes(b"s\xe9cret\n")  # Latin-1, as an editor may save it
    with pytest.raises(SecretError) as err:
        MqttConfig(kit_id="k", password_file=secret).read_password()
    assert str(err.value) == f"cannot read mqtt.password_file {secret}: not UTF-8 text"


def test_password_from_a_systemd_credential(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "mqtt-password").write_text("from-credential\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    cfg = parse_kit_config(kit(password_credential="mqtt-password")).mqtt
    assert cfg is not None
    assert cfg.credential_path() == tmp_path / "mqtt-password"
    assert cfg.read_password() == "from-credential"
    assert MqttConfig(kit_id="k").credential_path() is None


def test_a_credential_outside_systemd_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    cfg = MqttConfig(kit_id="k", password_credential="mqtt-password")
    with pytest.raises(SecretError) as err:
        cfg.read_password()
    assert str(err.value) == (
        "mqtt.password_credential: $CREDENTIALS_DIRECTORY is not set, so there is no credential "
        "mqtt-password: systemd sets it for a unit with LoadCredential=mqtt-password:PATH "
        "(systemd/gatewayd.service); outside systemd, use password_file"
    )
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", "")
    with pytest.raises(SecretError, match=r"\$CREDENTIALS_DIRECTORY is not set"):
        cfg.read_password()


def test_a_missing_credential_names_itself_and_the_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    cfg = MqttConfig(kit_id="k", password_credential="mqtt-password")
    with pytest.raises(SecretError) as err:
        cfg.read_password()
    assert str(err.value) == (
        "mqtt.password_credential: cannot read credential mqtt-password in "
        f"$CREDENTIALS_DIRECTORY ({tmp_path}): No such file or directory; the unit must load "
        "it: LoadCredential=mqtt-password:PATH"
    )


@pytest.mark.parametrize("credentials", ["unset", "empty-directory"])
def test_run_refuses_to_start_without_the_credential_its_config_names(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    credentials: str,
) -> None:
    config = tmp_path / "kit.toml"
    config.write_text(
        f"[hub]\nport = '{tmp_path / 'hub'}'\n"
        f"[mqtt]\nkit_id = 'kit-7'\npassword_credential = 'mqtt-password'\n"
        f"state_dir = '{tmp_path / 'state'}'\n"
    )
    if credentials == "unset":
        monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
        reason = "$CREDENTIALS_DIRECTORY is not set, so there is no credential mqtt-password"
    else:
        (tmp_path / "creds").mkdir()
        monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path / "creds"))
        reason = (
            "cannot read credential mqtt-password in $CREDENTIALS_DIRECTORY "
            f"({tmp_path / 'creds'}): No such file or directory"
        )
    # Exit 2: the unit's RestartPreventExitStatus, so systemd does not retry every 5 s.
    assert main_run(config, log_level_forced=True) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"gatewayd run: {config}: mqtt.password_credential: {reason}"), err
    assert err.count("\n") == 1
    assert not (tmp_path / "state").exists()  # refused before anything started


def test_session_counter_reserves_durably_and_reuses_an_unused_number(tmp_path: Path) -> None:
    path = tmp_path / "state" / "mqtt-session"
    c = SessionCounter(path)
    assert c.reserve() == 1
    assert c.reserve() == 1  # the connection failed: the number was not used
    c.used()
    assert c.reserve() == 2
    # A crash after reserving never hands the same number out again.
    assert SessionCounter(path).reserve() == 3


def test_damaged_counter_moves_forward(tmp_path: Path) -> None:
    path = tmp_path / "mqtt-session"
    path.write_text("garbage")
    assert SessionCounter(path).reserve() == 1


def test_a_disk_that_refuses_the_counter_never_stops_a_connection(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "mqtt-session"
    path.write_text("41\n")
    c = SessionCounter(path)

    def full(_fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with caplog.at_level(logging.WARNING, logger="gatewayd.daemon.mqtt_link"):
        assert c.reserve() == 42  # above the number on disk
        assert c.reserve() == 42
        c.used()
        assert c.reserve() == 43  # above every number this run used, though the disk says 41
        c.used()
    assert path.read_text() == "41\n"
    assert not list(tmp_path.glob("*.tmp"))  # nothing half-written left on a full disk
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings and all("session=" in w and str(path) in w for w in warnings)
    assert "No space left on device" in warnings[0]
    monkeypatch.undo()
    assert c.reserve() == 44  # the disk works again: on disk once more
    assert path.read_text() == "44\n"
    assert SessionCounter(path).reserve() == 45


def weak(**mqtt: object) -> dict[str, str]:
    cfg = parse_kit_config(kit(**mqtt)).mqtt
    assert cfg is not None
    return {w.key: w.reason for w in cfg.weak_settings()}


def test_tls_without_host_name_checks_is_weak() -> None:
    found = weak(host="mqtt.example.invalid", tls={"insecure": True})
    assert list(found) == ["mqtt.tls.insecure"]
    reason = found["mqtt.tls.insecure"]
    assert "does not check that the broker's certificate is for mqtt.example.invalid" in reason
    assert "any CA the system trusts" in reason and "pose as the broker" in reason
    assert "remove it, and give the broker a certificate for mqtt.example.invalid" in reason
    with_ca = weak(host="mqtt.example.invalid", tls={"ca_file": "/ca.pem", "insecure": True})
    assert "the CA in mqtt.tls.ca_file" in with_ca["mqtt.tls.insecure"]


@pytest.mark.parametrize(
    ("mqtt", "key", "advice"),
    [
        ({"password_file": "/pw"}, "mqtt.password_file", "(the port then defaults to 8883)"),
        ({"password_env": "PW"}, "mqtt.password_env", "(the port then defaults to 8883)"),
        (
            {"password_file": "/pw", "port": 1883},
            "mqtt.password_file",
            "and set port to the broker's TLS port (usually 8883), not 1883",
        ),
        ({"password_file": "/pw", "port": 8883}, "mqtt.password_file", "add an [mqtt.tls] table"),
        (
            {"password_credential": "mqtt-password"},
            "mqtt.password_credential",
            "(the port then defaults to 8883)",
        ),
    ],
)
def test_a_password_without_tls_is_weak(mqtt: dict[str, object], key: str, advice: str) -> None:
    found = weak(host="mqtt.example.invalid", **mqtt)
    assert list(found) == [key]
    port = mqtt.get("port", 1883)
    assert f"the password goes to mqtt.example.invalid:{port} without TLS" in found[key]
    assert "anyone on the network between the kit and the broker can read it" in found[key]
    assert found[key].endswith(advice)


@pytest.mark.parametrize(
    "mqtt",
    [
        {},
        {"host": "mqtt.example.invalid"},
        {"host": "mqtt.example.invalid", "username": "kit-7"},
        {"host": "mqtt.example.invalid", "password_file": "/pw", "tls": {}},
        {"host": "mqtt.example.invalid", "password_env": "PW", "tls": {"ca_file": "/ca.pem"}},
        # A broker on the kit itself: the password never crosses a network.
        {"host": "localhost", "password_file": "/pw"},
        {"host": "127.0.0.1", "password_file": "/pw"},
        {"host": "::1", "password_env": "PW"},
        {"host": "mqtt.example.invalid", "password_credential": "mqtt-password", "tls": {}},
    ],
)
def test_sound_settings_are_not_weak(mqtt: dict[str, object]) -> None:
    assert weak(**mqtt) == {}


def test_the_daemon_logs_each_weak_setting_at_start_without_the_password(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    secret = tmp_path / "pw"
    secret.write_text("never-log-this-password\n")
    cfg = parse_kit_config(
        kit(host="mqtt.example.invalid", password_file=str(secret), port=1883)
    ).mqtt
    assert cfg is not None
    with caplog.at_level(logging.WARNING, logger="gatewayd.daemon.service"):
        log_weak_settings(cfg, "/etc/gatewayd/kit.toml")
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    line = KeyValueFormatter().format(record)
    assert 'msg="weak setting" file=/etc/gatewayd/kit.toml key=mqtt.password_file ' in line
    assert 'problem="the password goes to mqtt.example.invalid:1883 without TLS"' in line
    assert 'why="anyone on the network between the kit and the broker' in line
    assert 'instead="add an [mqtt.tls] table, and set port' in line
    assert "never-log-this-password" not in line
