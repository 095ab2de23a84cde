"""The `gatewayd` command line: one module per verb, and the terminal view they share."""
