"""Taking an RF survey: open the kit's radio, run the scans, judge them.

Radio facts -> probe outcome. ``run_survey`` drives a started ZNP client through its scans
(beacon discoveries, then an energy scan) and hands them to the pure ``judge``;
``survey_on_port`` owns the radio's port for one survey, for the CLI, the daemon and a job's
prompted survey alike.
"""

from __future__ import annotations

from gatewayd.clock import Clock, SystemClock
from gatewayd.config.survey import RadioConfig, SurveyConfig
from gatewayd.engine.outcomes import HubFacts
from gatewayd.survey.judgement import SurveyDocument, judge
from gatewayd.survey.source import Surveyor
from gatewayd_drivers.commshub.eui64 import Eui64
from gatewayd_drivers.serial_link import SerialSettings
from gatewayd_drivers.znp.client import ZnpClient
from gatewayd_drivers.znp.commands import Beacon
from gatewayd_drivers.znp.errors import ZnpError

__all__ = ["SurveyFailed", "radio_surveyor", "run_survey", "survey_on_port"]

RADIO_CONNECT_TIMEOUT_S = 5.0


async def run_survey(
    radio: ZnpClient,
    cfg: SurveyConfig,
    *,
    hub_eui: Eui64 | None,
    position: str | None,
    clock: Clock,
) -> SurveyDocument:
    """Identify the stick, run the beacon scans and the energy scan, and judge.

    Raises ``ZnpError`` (or a subclass) when the stick cannot do its part.
    """
    info = await radio.identify()
    scans: list[list[Beacon]] = []
    for _ in range(cfg.beacon_scans):
        scans.append(await radio.network_discovery(cfg.channels, cfg.scan_duration))
    energy = await radio.energy_scan(cfg.channels, cfg.scan_duration)
    return judge(
        scans,
        energy,
        hub_eui,
        cfg,
        taken_at=clock.wall(),
        position=position,
        radio=info.version.label,
        stick_needed_reset=info.needed_reset,
    )


class SurveyFailed(Exception):
    """The radio could not be used; the message says why, for the installer."""


async def survey_on_port(
    port: str,
    cfg: SurveyConfig,
    *,
    hub_eui: Eui64 | None,
    position: str | None,
    baudrate: int = 115_200,
    clock: Clock | None = None,
) -> SurveyDocument:
    """Open ``port``, survey, close it. Raises ``SurveyFailed`` with a readable reason."""
    # The radio is opened for one survey: one another process holds (another survey) will
    # not be free within the connect timeout, so that fails at once.
    radio = ZnpClient(
        port, name="radio", settings=SerialSettings(baudrate=baudrate), fail_fast_when_busy=True
    )
    await radio.start()
    try:
        if not await radio.wait_connected(RADIO_CONNECT_TIMEOUT_S):
            why = radio.last_link_error or "the port did not open"
            raise SurveyFailed(f"cannot open the radio's port {port}: {why}")
        try:
            return await run_survey(
                radio, cfg, hub_eui=hub_eui, position=position, clock=clock or SystemClock()
            )
        except ZnpError as exc:
            raise SurveyFailed(f"the radio on {port} could not survey: {exc}") from None
    finally:
        await radio.stop()


def radio_surveyor(radio: RadioConfig, cfg: SurveyConfig, clock: Clock | None = None) -> Surveyor:
    async def survey(hub: HubFacts, position: str) -> SurveyDocument:
        return await survey_on_port(
            radio.port,
            cfg,
            hub_eui=hub.eui64,
            position=position,
            baudrate=radio.baudrate,
            clock=clock,
        )

    return survey
