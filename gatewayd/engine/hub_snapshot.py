"""One reading of a hub's own state (info, WAN, HAN, device log), as data and as plain text.

Hub state side of the flow: ``read_snapshot`` asks the hub through its client, and the
renderers turn the reading, or a hub event, into words. ``gatewayd hub status`` and the demo
both show it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TextIO

from gatewayd_drivers.commshub.client import ClientEvent, HubClient, LinkLost, LinkUp
from gatewayd_drivers.commshub.messages import (
    DeviceJoinFailed,
    DeviceJoinSucceeded,
    DeviceLog,
    HanStateChanged,
    HanStatus,
    HubInfo,
    HubStarted,
    UnknownEvent,
    WanStateChanged,
    WanStatus,
    enum_name,
)


@dataclass(frozen=True)
class HubSnapshot:
    info: HubInfo
    wan: WanStatus
    han: HanStatus
    devices: DeviceLog


async def read_snapshot(hub: HubClient) -> HubSnapshot:
    return HubSnapshot(
        info=await hub.get_info(),
        wan=await hub.get_wan_status(),
        han=await hub.get_han_status(),
        devices=await hub.device_log_read(),
    )


def _rssi(value: int | None) -> str:
    return "unknown" if value is None else f"{value} dBm"


def snapshot_to_json(snap: HubSnapshot) -> dict[str, Any]:
    i, w, h = snap.info, snap.wan, snap.han
    return {
        "hub": {
            "eui64": str(i.eui64),
            "hw_variant": enum_name(i.hw_variant).lower(),
            "wan_variant": enum_name(i.wan_variant).lower(),
            "csp_region": enum_name(i.csp_region).lower(),
            "firmware": i.firmware,
            "uptime_s": i.uptime_s,
        },
        "wan": {
            "state": enum_name(w.state).lower(),
            "reg_state": enum_name(w.reg_state).lower(),
            "rssi_dbm": w.rssi_dbm,
            "seconds_in_state": w.seconds_in_state,
            "last_dcc_contact_s": w.last_dcc_contact_s,
            "attach_attempts": w.attach_attempts,
        },
        "han": {
            "state": enum_name(h.state).lower(),
            "channel": h.channel,
            "subghz_channel": h.subghz_channel,
            "pan_id": f"0x{h.pan_id:04X}",
            "extended_pan_id": str(h.extended_pan_id),
            "open_join_windows": h.open_join_windows,
        },
        "device_log": [
            {
                "eui64": str(e.eui64),
                "type": enum_name(e.device_type),
                "join_state": enum_name(e.join_state).lower(),
                "band": enum_name(e.band).lower(),
                "rssi_dbm": e.rssi_dbm,
                "lqi": e.lqi,
                "last_comms_s": e.last_comms_s,
            }
            for e in snap.devices.entries
        ],
    }


def render_snapshot(snap: HubSnapshot, out: TextIO) -> None:
    doc = snapshot_to_json(snap)
    hub, wan, han = doc["hub"], doc["wan"], doc["han"]
    lines = [
        f"Hub      {hub['eui64']}  {hub['hw_variant'].replace('_', ' ')}, "
        f"WAN {hub['wan_variant'].replace('_', ' ')}, region {hub['csp_region']}, "
        f"firmware {hub['firmware']}, up {hub['uptime_s']} s",
        f"WAN      {wan['state'].upper()} (registration: {wan['reg_state'].replace('_', ' ')}), "
        f"signal {_rssi(wan['rssi_dbm'])}, {wan['seconds_in_state']} s in state, "
        f"attach attempts {wan['attach_attempts']}, last DCC contact "
        + ("never" if wan["last_dcc_contact_s"] is None else f"{wan['last_dcc_contact_s']} s ago"),
        f"HAN      {han['state'].upper()} on channel {han['channel']}"
        + (f" and 868 MHz channel {sub}" if (sub := han["subghz_channel"]) is not None else "")
        + f", PAN {han['pan_id']}, open join windows {han['open_join_windows']}",
    ]
    if not doc["device_log"]:
        lines.append("Devices  (device log empty)")
    for n, d in enumerate(doc["device_log"]):
        head = "Devices  " if n == 0 else "         "
        lines.append(
            f"{head}{d['eui64']}  {d['type']:<6} {d['join_state'].upper():<12} "
            f"band {d['band']}, signal {_rssi(d['rssi_dbm'])}, LQI {d['lqi']}"
        )
    out.write("\n".join(lines) + "\n")


def describe_event(event: ClientEvent) -> str:
    """One plain line for a hub event or link change."""
    match event:
        case LinkLost(reason=reason):
            return f"link lost: {reason} (waiting for the port to come back)"
        case LinkUp(reopened=True):
            return "link back: port reopened; re-reading the hub's state"
        case LinkUp():
            return "link up"
        case WanStateChanged(status=s):
            return (
                f"WAN {enum_name(s.state)} (registration {enum_name(s.reg_state).lower()}), "
                f"signal {_rssi(s.rssi_dbm)}"
            )
        case HanStateChanged(status=h):
            return f"HAN {enum_name(h.state)} on channel {h.channel}"
        case DeviceJoinSucceeded(eui64=eui):
            return f"device {eui} joined the HAN"
        case DeviceJoinFailed(eui64=eui, reason=reason):
            return f"device {eui} failed to join: {enum_name(reason).lower().replace('_', ' ')}"
        case HubStarted(reason=reason):
            return f"hub restarted ({enum_name(reason).lower().replace('_', ' ')})"
        case UnknownEvent(cmd=cmd, payload=payload):
            return f"unknown hub event {cmd:#06x} ({len(payload)} bytes)"
        case _:
            name = type(event).__name__
            device = getattr(event, "eui64", None)
            return f"{name} {device}" if device is not None else name
