"""A simulated TI Z-Stack ZNP stick over a pty, driven by a scenario file."""
