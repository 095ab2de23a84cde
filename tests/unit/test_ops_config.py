"""The [metrics] and [log] tables of the kit config, and their errors at their keys."""

from __future__ import annotations

from typing import Any

import pytest

from gatewayd.config.errors import ConfigError
from gatewayd.config.kit import parse_kit_config
from gatewayd.config.ops import LogLevel, split_listen

HUB = {"hub": {"port": "/dev/ttyUSB0"}}


def kit(**tables: Any) -> Any:
    return parse_kit_config({**HUB, **tables}, source="kit.toml")


def test_defaults_are_loopback_and_info() -> None:
    k = kit()
    assert k.metrics.enabled and k.metrics.listen == "127.0.0.1:9477"
    assert (k.metrics.host, k.metrics.port, k.metrics.loopback) == ("127.0.0.1", 9477, True)
    assert k.log.level is LogLevel.INFO


@pytest.mark.parametrize(
    ("listen", "host", "port"),
    [
        ("127.0.0.1:9477", "127.0.0.1", 9477),
        ("[::1]:9100", "::1", 9100),
        ("localhost:0", "localhost", 0),
    ],
)
def test_listen_forms(listen: str, host: str, port: int) -> None:
    assert split_listen(listen) == (host, port)


@pytest.mark.parametrize(
    ("metrics", "where", "why"),
    [
        ({"listen": "9477"}, "metrics.listen", "HOST:PORT"),
        ({"listen": "127.0.0.1:http"}, "metrics.listen", "not a number"),
        ({"listen": "127.0.0.1:70000"}, "metrics.listen", "outside 0-65535"),
        ({"listen": "::1:9477"}, "metrics.listen", "brackets"),
        ({"tls_cert": "/etc/gatewayd/m.pem"}, "metrics.tls_key", "go together"),
        ({"port": 9477}, "metrics.port", "unknown key"),
    ],
)
def test_bad_metrics_tables_name_the_key(metrics: dict[str, Any], where: str, why: str) -> None:
    with pytest.raises(ConfigError) as err:
        kit(metrics=metrics)
    text = str(err.value)
    assert text.startswith(f"kit.toml: {where}: ") and why in text


def test_bad_log_level_names_the_key() -> None:
    with pytest.raises(ConfigError, match=r"kit.toml: log.level: "):
        kit(log={"level": "loud"})


def test_non_loopback_is_allowed_but_known() -> None:
    assert not kit(metrics={"listen": "0.0.0.0:9477"}).metrics.loopback
