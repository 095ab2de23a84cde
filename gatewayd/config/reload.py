"""SIGHUP: re-read the kit config, keep the old one if the new one is bad.

What changes live (for jobs that start after the reload; a running job keeps what it
started with): ``van``, ``wan``, ``han``, ``poll``, ``optical`` and ``log.level``.
What needs a restart, because it is wired into open connections or services made at
start: the hubs, ``radio``, ``survey``, ``mqtt``, ``metrics`` and ``time_scale``; a change
there is logged and not applied.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from gatewayd.config.errors import ConfigError
from gatewayd.config.kit import KitConfig, load_kit_config, parse_kit_config

__all__ = ["LIVE_KEYS", "RESTART_KEYS", "ReloadOutcome", "reload_kit_config"]

_log = logging.getLogger(__name__)

LIVE_KEYS = ("van", "wan", "han", "poll", "optical", "log")
RESTART_KEYS = ("hub", "hubs", "radio", "survey", "mqtt", "metrics", "time_scale")


@dataclass(frozen=True, slots=True)
class ReloadOutcome:
    """``kit``: the config to use from now on, or None when the reload was refused."""

    kit: KitConfig | None
    config_bytes: bytes = b""
    changed: tuple[str, ...] = ()
    needs_restart: tuple[str, ...] = ()


def reload_kit_config(current: KitConfig, path: Path) -> ReloadOutcome:
    """Read ``path`` again; return the config to run with, logging what happened."""
    try:
        raw = path.read_bytes()
        fresh = load_kit_config(path)
        needs_restart = tuple(k for k in RESTART_KEYS if getattr(fresh, k) != getattr(current, k))
        if needs_restart:
            # Keep what is wired into open connections; apply the rest, checked together.
            kept = {k: getattr(current, k) for k in RESTART_KEYS}
            fresh = parse_kit_config(
                fresh.model_copy(update=kept).model_dump(),
                source=f"{path} (with {', '.join(needs_restart)} as running)",
            )
    except ConfigError as exc:
        for problem in str(exc).splitlines():
            _log.error("config reload refused, keeping the running config problem=%r", problem)
        return ReloadOutcome(kit=None)
    except OSError as exc:
        _log.error(
            "config reload refused, keeping the running config file=%s error=%r",
            path,
            exc.strerror or str(exc),
        )
        return ReloadOutcome(kit=None)
    if needs_restart:
        _log.warning(
            "config reload: these keys change only on a restart keys=%s", ",".join(needs_restart)
        )
    changed = tuple(k for k in LIVE_KEYS if getattr(fresh, k) != getattr(current, k))
    logging.getLogger().setLevel(fresh.log.level.number)
    _log.info(
        "config reloaded file=%s changed=%s", path, ",".join(changed) if changed else "nothing"
    )
    return ReloadOutcome(kit=fresh, config_bytes=raw, changed=changed, needs_restart=needs_restart)
