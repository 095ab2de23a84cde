"""Simulated meters behind an IEC 62056-21 optical port, described by data (TOML)."""
