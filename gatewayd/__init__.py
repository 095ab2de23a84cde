"""gatewayd: commissioning daemon for SMETS2 installers' kits."""

__version__ = "0.1.0"
