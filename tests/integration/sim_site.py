"""Addresses, codes and scenario snippets shared by the tests that drive the hub simulator."""

from __future__ import annotations

from gatewayd_drivers.commshub.eui64 import Eui64

HUB = Eui64.parse("00-DB-12-34-56-78-90-A0")
ESME = Eui64.parse("00-DB-12-34-56-78-90-A1")
GSME = Eui64.parse("00-DB-12-34-56-78-90-A2")
IHD = Eui64.parse("00-DB-12-34-56-78-90-A3")
STRANGER = Eui64.parse("00-DB-12-34-56-78-90-FF")
CODE = bytes(range(1, 17))

# A WAN that never changes, so no event appears unless a test asks for one.
QUIET = """
[wan]
timeline = [{ at = 0, state = "searching" }]
"""
