"""Probes: what the hub says about its WAN and HAN, turned into outcomes."""
