"""The RF survey: what the kit's radio hears where it stands, and how well it hears the hub.

Radio facts -> probe outcome. ``judge`` is pure (``scan.py`` takes the scans it judges): from
the beacons of every
scan, the energy per channel and the hub's EUI-64 it finds the hub's network (its extended
PAN ID is the hub's EUI-64, compared in one canonical form, most significant byte first),
and judges the hub good, marginal or not heard at this position against the thresholds of
``[survey]`` (reasoning in docs/rf-survey.md):

- **not heard**: no beacon of the hub's network in any scan;
- **marginal**: heard, but below ``good_lqi`` at best, or missing from some scans, or on a
  channel whose energy is at or above ``busy_energy``;
- **good**: heard in every scan at ``good_lqi`` or better, on a channel that is not busy.

The result is a ``SurveyDocument``: what the CLI prints, the daemon publishes, and the HAN
evidence of a job quotes.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from gatewayd.config.survey import SurveyConfig
from gatewayd.engine.outcomes import SurveyEvidence, SurveyJudgement
from gatewayd_drivers.commshub.eui64 import Eui64
from gatewayd_drivers.znp.commands import Beacon

__all__ = ["NetworkSeen", "SurveyDocument", "evidence_from", "judge"]

_DOC = ConfigDict(extra="forbid", frozen=True)


class NetworkSeen(BaseModel):
    """One Zigbee network heard, with its best beacon over all scans."""

    model_config = _DOC

    extended_pan_id: str = Field(description="EUI-64 label form, most significant byte first")
    pan_id: int
    channel: int
    lqi: int = Field(description="Best LQI heard (0..255)")
    rssi_dbm_estimate: int = Field(description="The RSSI that LQI stands for (estimate)")
    permit_joining: bool
    depth: int
    scans_heard: int = Field(description="In how many of the scans a beacon was heard")
    is_hub: bool


class ChannelEnergy(BaseModel):
    model_config = _DOC

    channel: int
    energy: int = Field(description="0..255, higher is busier")
    busy: bool


class HubHeard(BaseModel):
    """The hub's network as heard here; absent from the document when not heard."""

    model_config = _DOC

    channel: int
    pan_id: int
    lqi: int
    rssi_dbm_estimate: int
    scans_heard: int
    channel_energy: int | None


class SurveyThresholds(BaseModel):
    model_config = _DOC

    good_lqi: int
    busy_energy: int
    beacon_scans: int


class SurveyDocument(BaseModel):
    """One RF survey: where, what was heard, and the judgement on the hub."""

    model_config = _DOC

    taken_at: datetime
    position: str | None = Field(
        description="Where the kit stood: a device's EUI-64 (label form) or a free label"
    )
    radio: str = Field(description="The survey stick's firmware, as it reported it")
    hub_eui64: str | None = Field(description="The hub looked for (None: none was given)")
    judgement: SurveyJudgement | None = Field(
        description="good / marginal / not_heard; None when no hub was given"
    )
    reasons: list[str] = Field(description="Why the judgement, in words")
    hub: HubHeard | None
    channels: list[ChannelEnergy]
    networks: list[NetworkSeen]
    thresholds: SurveyThresholds
    stick_needed_reset: bool = False


def judge(
    scans: Sequence[Sequence[Beacon]],
    energy: dict[int, int],
    hub_eui: Eui64 | None,
    cfg: SurveyConfig,
    *,
    taken_at: datetime,
    position: str | None,
    radio: str,
    stick_needed_reset: bool = False,
) -> SurveyDocument:
    """The survey's document from what the scans heard (pure; see the module docstring)."""
    best: dict[tuple[Eui64, int, int], Beacon] = {}
    heard_in: dict[tuple[Eui64, int, int], set[int]] = {}
    for i, scan in enumerate(scans):
        for b in scan:
            key = (b.extended_pan_id, b.pan_id, b.channel)
            if key not in best or b.lqi > best[key].lqi:
                best[key] = b
            heard_in.setdefault(key, set()).add(i)
    networks = [
        NetworkSeen(
            extended_pan_id=str(key[0]),
            pan_id=b.pan_id,
            channel=b.channel,
            lqi=b.lqi,
            rssi_dbm_estimate=cfg.rssi_estimate(b.lqi),
            permit_joining=b.permit_joining,
            depth=b.depth,
            scans_heard=len(heard_in[key]),
            is_hub=hub_eui is not None and key[0] == hub_eui,
        )
        for key, b in sorted(best.items(), key=lambda kv: (kv[1].channel, -kv[1].lqi))
    ]
    channels = [
        ChannelEnergy(channel=ch, energy=level, busy=level >= cfg.busy_energy)
        for ch, level in sorted(energy.items())
    ]
    thresholds = SurveyThresholds(
        good_lqi=cfg.good_lqi, busy_energy=cfg.busy_energy, beacon_scans=len(scans)
    )
    hub_nets = [n for n in networks if n.is_hub]
    judgement: SurveyJudgement | None
    reasons: list[str] = []
    hub: HubHeard | None = None
    if hub_eui is None:
        judgement = None
        reasons.append("no hub EUI-64 was given, so no network was judged")
    elif not hub_nets:
        judgement = SurveyJudgement.NOT_HEARD
        reasons.append(
            f"no beacon of the hub's network (extended PAN ID {hub_eui}) in "
            f"{len(scans)} scan(s) of channels {_channel_list(energy, scans)}"
        )
    else:
        # The hub's network is one PAN on one channel; a second entry would be a PAN ID
        # conflict or a channel change mid-survey: judge the best heard.
        n = max(hub_nets, key=lambda x: (x.lqi, x.scans_heard))
        ch_energy = energy.get(n.channel)
        hub = HubHeard(
            channel=n.channel,
            pan_id=n.pan_id,
            lqi=n.lqi,
            rssi_dbm_estimate=n.rssi_dbm_estimate,
            scans_heard=n.scans_heard,
            channel_energy=ch_energy,
        )
        marginal: list[str] = []
        if n.lqi < cfg.good_lqi:
            marginal.append(
                f"the hub is heard at LQI {n.lqi} (about {n.rssi_dbm_estimate} dBm), below "
                f"the {cfg.good_lqi} a reliable link needs"
            )
        if n.scans_heard < len(scans):
            marginal.append(f"the hub was heard in only {n.scans_heard} of {len(scans)} scans")
        if ch_energy is not None and ch_energy >= cfg.busy_energy:
            marginal.append(
                f"the hub's channel {n.channel} is busy (energy {ch_energy}, "
                f"at or above {cfg.busy_energy})"
            )
        if marginal:
            judgement = SurveyJudgement.MARGINAL
            reasons.extend(marginal)
        else:
            judgement = SurveyJudgement.GOOD
            reasons.append(
                f"the hub is heard in every scan at LQI {n.lqi} (about "
                f"{n.rssi_dbm_estimate} dBm) on channel {n.channel}, which is not busy"
            )
    return SurveyDocument(
        taken_at=taken_at,
        position=position,
        radio=radio,
        hub_eui64=str(hub_eui) if hub_eui is not None else None,
        judgement=judgement,
        reasons=reasons,
        hub=hub,
        channels=channels,
        networks=networks,
        thresholds=thresholds,
        stick_needed_reset=stick_needed_reset,
    )


def _channel_list(energy: dict[int, int], scans: Sequence[Sequence[Beacon]]) -> str:
    chans = sorted(energy) or sorted({b.channel for s in scans for b in s})
    if chans and chans == list(range(chans[0], chans[-1] + 1)):
        return f"{chans[0]}-{chans[-1]}"
    return ", ".join(str(c) for c in chans)


def evidence_from(doc: SurveyDocument, source: str) -> SurveyEvidence | None:
    """The survey as a device's HAN evidence; None when it judged nothing or has no position."""
    if doc.judgement is None or doc.position is None:
        return None
    hub = doc.hub
    return SurveyEvidence(
        position=doc.position,
        taken_at=doc.taken_at,
        judgement=doc.judgement,
        reasons=tuple(doc.reasons),
        source=source,
        hub_channel=hub.channel if hub is not None else None,
        hub_lqi=hub.lqi if hub is not None else None,
        hub_rssi_dbm_estimate=hub.rssi_dbm_estimate if hub is not None else None,
        hub_channel_energy=hub.channel_energy if hub is not None else None,
        scans=doc.thresholds.beacon_scans,
        scans_heard=hub.scans_heard if hub is not None else 0,
    )
