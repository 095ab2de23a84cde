"""`gatewayd run`, the service: its MQTT link, publisher and outbox, job journal, metrics and
sd_notify."""
