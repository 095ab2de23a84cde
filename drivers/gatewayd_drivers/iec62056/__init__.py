"""IEC 62056-21 (mode C) optical-port reader: the kit's probe reading an existing meter."""
