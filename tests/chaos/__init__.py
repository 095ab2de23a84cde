"""The chaos suite: the kit under kills, cable pulls, line noise, a full disk and a silent hub.

Loopback only, bounded, and it stops by itself. ``python -m tests.chaos`` makes the runs
and prints their figures; ``test_chaos_short.py`` holds the short variant's invariants in
CI. ``docs/reliability.md`` describes each run and quotes the figures of its last run.
"""
