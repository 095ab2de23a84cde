"""contrib/prometheus/agent.yml: a valid agent-mode config that scrapes the daemon on
loopback and remote-writes to an https fleet endpoint with its secret in a file."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from tests.ops.tools import REPO, promtool_path, run_tool

AGENT = REPO / "contrib" / "prometheus" / "agent.yml"


def _config() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(AGENT.read_text())
    return loaded


def test_promtool_check_config_in_agent_mode(tmp_path: Path) -> None:
    # promtool 2.42 does not open the files the config names, but a later one may: the
    # check runs on a copy whose password and CA files exist, so it tests the config alone.
    config = _config()
    for remote in config["remote_write"]:
        password = tmp_path / "fleet-password"
        password.write_text("not-a-real-password\n")
        ca = tmp_path / "fleet-ca.pem"
        ca.write_text("")
        remote["basic_auth"]["password_file"] = str(password)
        remote["tls_config"]["ca_file"] = str(ca)
    copy = tmp_path / "agent.yml"
    copy.write_text(yaml.safe_dump(config))
    output = run_tool([promtool_path(), "check", "config", "--agent", str(copy)])
    assert "SUCCESS" in output


def test_promtool_checks_the_shipped_file_as_it_is() -> None:
    output = run_tool([promtool_path(), "check", "config", "--agent", str(AGENT)])
    assert "SUCCESS" in output


def test_scrapes_the_daemon_on_loopback_only() -> None:
    targets = [
        target
        for job in _config()["scrape_configs"]
        for static in job.get("static_configs", [])
        for target in static["targets"]
    ]
    assert targets == ["127.0.0.1:9477"]


def test_every_series_is_labelled_with_the_kit() -> None:
    assert _config()["global"]["external_labels"]["kit"]


def test_remote_write_is_https_to_an_example_host_with_secrets_in_files() -> None:
    remotes = _config()["remote_write"]
    assert remotes
    for remote in remotes:
        url = urlsplit(remote["url"])
        assert url.scheme == "https"
        assert url.hostname is not None
        assert url.hostname.endswith(".example.net")
        assert "password_file" in remote["basic_auth"]
        assert "password" not in remote["basic_auth"]
        assert remote["tls_config"].get("insecure_skip_verify") is not True
        queue = remote["queue_config"]
        # Retrying slowly and in big batches suits an interrupted link.
        assert queue["max_shards"] <= 4
        assert queue["max_backoff"].endswith("m")
