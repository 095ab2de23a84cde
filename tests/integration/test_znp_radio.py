"""The ZNP client and the survey against the radio simulator, over a pty and serialx.

Every judgement has its scenario; the stick's quirks (a reset needed, slow confirms, a
noisy line) and an unplug are each run through the real client. Scans use short 802.15.4
exponents so a survey takes a second or so of real airtime.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gatewayd.clock import SystemClock
from gatewayd.config.survey import SurveyConfig
from gatewayd.engine.outcomes import SurveyJudgement
from gatewayd.survey.judgement import SurveyDocument
from gatewayd.survey.scan import run_survey
from gatewayd_drivers.backoff import BackoffSettings
from gatewayd_drivers.commshub.eui64 import Eui64
from gatewayd_drivers.znp import commands as c
from gatewayd_drivers.znp.client import ZnpClient, ZnpTimers
from gatewayd_drivers.znp.errors import ZnpCommandError, ZnpDisconnected, ZnpTimeout
from gatewayd_sim.znp.radio import ZnpSimulator
from gatewayd_sim.znp.scenario import load_radio_scenario, shipped_radio_scenario
from tests.waiting import wait_until

HUB = Eui64.parse("00-DB-12-34-56-78-90-A0")
NEIGHBOUR = Eui64.parse("00-DB-12-34-56-00-11-22")
FAST = BackoffSettings(first_s=0.02, max_s=0.1)
QUICK = SurveyConfig(scan_duration=0, beacon_scans=2)


class Rig:
    def __init__(self, sim: ZnpSimulator, radio: ZnpClient) -> None:
        self.sim = sim
        self.radio = radio

    async def survey(self, cfg: SurveyConfig = QUICK, hub: Eui64 | None = HUB) -> SurveyDocument:
        return await run_survey(
            self.radio, cfg, hub_eui=hub, position=self.sim.position, clock=SystemClock()
        )


async def make_rig(tmp_path: Path, scenario: str) -> tuple[ZnpSimulator, ZnpClient]:
    sim = ZnpSimulator(load_radio_scenario(shipped_radio_scenario(scenario)), tmp_path / "radio")
    await sim.start()
    radio = ZnpClient(str(sim.link), name="radio", backoff=FAST)
    await radio.start()
    assert await radio.wait_connected(5)
    return sim, radio


@pytest.fixture
async def rig(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Rig]:
    sim, radio = await make_rig(tmp_path, request.param)
    try:
        yield Rig(sim, radio)
    finally:
        await radio.stop()
        await sim.stop()


def scenario(name: str) -> pytest.MarkDecorator:
    return pytest.mark.parametrize("rig", [name], indirect=True)


@scenario("site_good")
async def test_identify_reads_ping_and_version(rig: Rig) -> None:
    info = await rig.radio.identify()
    assert not info.needed_reset
    assert info.capabilities == 0x0659
    assert (info.version.major, info.version.minor, info.version.maint) == (2, 7, 1)
    assert info.version.code_revision == 20230507


@scenario("site_good")
async def test_survey_at_the_hub_and_at_the_gas_meter_both_good(rig: Rig) -> None:
    at_hub = await rig.survey()
    assert at_hub.judgement is SurveyJudgement.GOOD
    assert at_hub.hub is not None and (at_hub.hub.channel, at_hub.hub.lqi) == (15, 230)
    assert at_hub.hub.pan_id == 0x1A2B
    assert [ch.channel for ch in at_hub.channels] == list(range(11, 27))
    assert {ch.channel: ch.energy for ch in at_hub.channels}[20] == 70
    seen = {n.extended_pan_id: n for n in at_hub.networks}
    assert seen[str(HUB)].is_hub and not seen[str(NEIGHBOUR)].is_hub
    assert seen["00-17-88-01-02-03-04-05"].permit_joining
    rig.sim.move_to("at_gas_meter")
    at_meter = await rig.survey()
    assert at_meter.position == "at_gas_meter"
    assert at_meter.judgement is SurveyJudgement.GOOD
    assert at_meter.hub is not None and at_meter.hub.lqi == 150
    # The neighbours' lights are out of reach from the meter.
    assert "00-17-88-01-02-03-04-05" not in {n.extended_pan_id for n in at_meter.networks}


@scenario("site_good")
async def test_the_survey_does_what_z_stack_needs_around_each_scan(rig: Rig) -> None:
    await rig.survey()
    sent = [f for f in rig.sim.received]
    names = [next(cmd.name for cmd in c.Cmd if cmd.matches(f)) for f in sent]
    first_nv = names.index("SYS_OSAL_NV_WRITE")
    assert names[first_nv + 1] == "SYS_RESET_REQ"
    assert names[first_nv + 2] == "ZDO_NETWORK_DISCOVERY_REQ"
    assert names.count("ZDO_NETWORK_DISCOVERY_REQ") == 2
    af = names.index("AF_DATA_REQUEST_EXT")
    assert "ZDO_MSG_CALLBACK_REGISTER" in names[:af]
    assert "ZDO_STARTUP_FROM_APP" in names[:af]


@scenario("site_good")
async def test_discovery_without_a_reset_scans_the_old_channel_list(rig: Rig) -> None:
    """Z-Stack reads NV CHANLIST at reset: the simulator is as strict, so the client must be."""
    await rig.radio.nv_write(c.NV_CHANLIST, c.channel_mask([20]).to_bytes(4, "little"))
    await rig.radio.reset()
    await rig.radio.nv_write(c.NV_CHANLIST, c.channel_mask([15]).to_bytes(4, "little"))
    with rig.radio.listen_for(c.Cmd.ZDO_BEACON_NOTIFY_IND, c.Cmd.ZDO_NWK_DISCOVERY_CNF) as cbs:
        await rig.radio.request(c.network_discovery_req([15, 20], 0))
        frames = []
        while True:
            f = await cbs.get(5, "confirm")
            if c.Cmd.ZDO_NWK_DISCOVERY_CNF.matches(f):
                break
            frames.extend(c.decode_beacons(f.data))
    assert {b.channel for b in frames} == {20}
    # With the reset the client does, the new list holds.
    beacons = await rig.radio.network_discovery([15], 0)
    assert {b.extended_pan_id for b in beacons} == {HUB}


@scenario("site_good")
async def test_energy_scan_needs_a_started_network(rig: Rig) -> None:
    frame = c.af_data_request_ext(
        dst_nwk=0,
        dst_endpoint=0,
        src_endpoint=0,
        cluster_id=c.MGMT_NWK_UPDATE_REQ,
        tsn=1,
        data=c.mgmt_nwk_update_req(1, [15], 0, 1),
    )
    rsp = await rig.radio.request(frame)
    assert rsp.data == bytes((c.MtStatus.NWK_INVALID_REQUEST,))
    energy = await rig.radio.energy_scan([11, 15, 20], 0)
    assert energy == {11: 8, 15: 40, 20: 70}
    # A running network refuses a beacon scan until the client resets the stick.
    rsp = await rig.radio.request(c.network_discovery_req([15], 0))
    assert rsp.data == bytes((c.MtStatus.NWK_INVALID_REQUEST,))
    assert await rig.radio.network_discovery([15], 0)


@scenario("gas_meter_marginal")
async def test_marginal_at_the_gas_meter(rig: Rig) -> None:
    doc = await rig.survey()
    assert doc.judgement is SurveyJudgement.MARGINAL
    assert doc.hub is not None and doc.hub.lqi == 48
    assert any("below the 80" in r for r in doc.reasons)


@scenario("gas_meter_not_heard")
async def test_not_heard_at_the_gas_meter_though_a_neighbour_is(rig: Rig) -> None:
    doc = await rig.survey()
    assert doc.judgement is SurveyJudgement.NOT_HEARD
    assert doc.hub is None
    assert [n.extended_pan_id for n in doc.networks] == [str(NEIGHBOUR)]
    assert "00-DB-12-34-56-78-90-A0" in doc.reasons[0]
    rig.sim.move_to("at_hub")
    assert (await rig.survey()).judgement is SurveyJudgement.GOOD


@scenario("busy_channel")
async def test_a_strong_hub_on_a_busy_channel_is_marginal(rig: Rig) -> None:
    doc = await rig.survey()
    assert doc.judgement is SurveyJudgement.MARGINAL
    assert doc.hub is not None and doc.hub.lqi == 160 and doc.hub.channel_energy == 200
    assert any("busy" in r for r in doc.reasons)


@scenario("site_good")
async def test_without_a_hub_eui_the_air_is_listed_but_not_judged(rig: Rig) -> None:
    doc = await rig.survey(hub=None)
    assert doc.judgement is None and doc.hub is None
    assert len(doc.networks) == 3


@scenario("stick_needs_reset")
async def test_a_silent_stick_is_reset_and_slow_confirms_are_waited_for(rig: Rig) -> None:
    doc = await rig.survey(SurveyConfig(scan_duration=0, beacon_scans=1, channels=(15,)))
    assert doc.stick_needed_reset
    assert doc.judgement is SurveyJudgement.GOOD


async def test_a_confirm_slower_than_the_margin_times_out(tmp_path: Path) -> None:
    sim, first = await make_rig(tmp_path, "stick_needs_reset")
    await first.stop()
    radio = ZnpClient(
        str(sim.link), backoff=FAST, timers=ZnpTimers(confirm_margin_s=0.5, first_ping_s=0.3)
    )
    await radio.start()
    try:
        assert await radio.wait_connected(5)
        with pytest.raises(ZnpTimeout, match="NwkDiscoveryCnf"):
            await radio.identify()
            await radio.network_discovery([15], 0)
    finally:
        await radio.stop()
        await sim.stop()


@scenario("noisy")
async def test_a_noisy_line_and_air_still_give_a_survey(rig: Rig) -> None:
    doc = await rig.survey(SurveyConfig(scan_duration=0, beacon_scans=3))
    assert doc.judgement in (SurveyJudgement.GOOD, SurveyJudgement.MARGINAL)
    assert doc.hub is not None and 138 <= doc.hub.lqi <= 162
    discards = rig.radio.snapshot_discards()
    assert discards["junk"] > 0


@scenario("site_good")
async def test_unplug_fails_the_scan_and_the_port_is_reopened(rig: Rig) -> None:
    task = asyncio.create_task(rig.radio.network_discovery(range(11, 27), 2))
    await wait_until(lambda: rig.sim.scanning)  # unplugged mid-scan
    rig.sim.unplug()
    with pytest.raises(ZnpDisconnected):
        await task
    rig.sim.replug()
    assert await rig.radio.wait_connected(5)
    assert rig.radio.connected and rig.radio.reconnects == 1
    assert (await rig.survey()).judgement is SurveyJudgement.GOOD


async def test_a_command_the_firmware_lacks_is_a_clear_error(tmp_path: Path) -> None:
    from gatewayd_sim.znp.scenario import parse_radio_scenario

    text = shipped_radio_scenario("site_good").read_text() + (
        '\n[stick]\nunsupported = ["ZDO_MSG_CALLBACK_REGISTER"]\n'
    )
    sim = ZnpSimulator(parse_radio_scenario(text), tmp_path / "radio")
    await sim.start()
    radio = ZnpClient(str(sim.link), backoff=FAST)
    await radio.start()
    try:
        assert await radio.wait_connected(5)
        with pytest.raises(ZnpCommandError, match="does not support ZDO_MSG_CALLBACK_REGISTER"):
            await radio.energy_scan([15], 0)
        assert await radio.ping() == 0x0659  # the stick still answers what it knows
    finally:
        await radio.stop()
        await sim.stop()


def test_radio_scenario_errors_name_the_key() -> None:
    from gatewayd_sim.znp.scenario import ScenarioError, parse_radio_scenario

    bad = """
[site]
positions = ["at_hub"]
position = "cellar"
[stick]
unsupported = ["SYS_NOPE"]
[[networks]]
name = "hub"
pan_id = 1
extended_pan_id = "00-DB-12"
channel = 27
lqi = { upstairs = 10 }
"""
    with pytest.raises(ScenarioError) as err:
        parse_radio_scenario(bad, "radio.toml")
    text = str(err.value)
    assert "radio.toml: stick.unsupported: 'SYS_NOPE' is not a request" in text
    assert "networks[0].extended_pan_id" in text and "networks[0].channel" in text
