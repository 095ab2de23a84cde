"""Hardware drivers: serial link, Comms Hub LSP, and (later) ZNP radio and optical reader.

Nothing in here imports from ``gatewayd``: drivers know bytes, frames and
device state, never jobs or MQTT.
"""
