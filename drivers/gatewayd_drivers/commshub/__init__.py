"""The Comms Hub Local Service Port: CRC, framing, typed payloads and the async client."""
