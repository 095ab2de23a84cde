"""Simulated hardware for tests and the demo: the device side of each protocol over ptys."""
