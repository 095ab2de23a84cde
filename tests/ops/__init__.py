"""Checks of the operations files (contrib/, systemd/) with the real tools that consume them."""
