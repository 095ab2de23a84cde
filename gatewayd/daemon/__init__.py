"""`gatewayd run`, the service: its hubs, jobs, birth, request handling and status, its MQTT
link, publisher and outbox, job journal, metrics and sd_notify."""
