"""Benchmarks: gatewayd measured against a peer in the same run, never against a clock."""
