"""The Comms Hub simulator: an LSP device over a pseudo-terminal, driven by scenario files."""
