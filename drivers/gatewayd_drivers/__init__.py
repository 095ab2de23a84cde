"""Hardware drivers: the serial link, the Comms Hub LSP, the ZNP radio, the optical reader.

``serial_link`` keeps a port open across unplugs; ``framed_client`` puts a
protocol's frame decoder on it for the two clients that share it, the Comms
Hub's (``commshub``) and the survey radio's (``znp``); ``iec62056`` reads a
meter through the optical probe; ``backoff`` is the one jittered backoff
for reopens, reconnects and polls.

Nothing in here imports from ``gatewayd``: drivers know bytes, frames and
device state, never jobs or MQTT.
"""
