"""`gatewayd demo`: simulated hubs, an embedded broker and a small back office around the real
daemon."""
