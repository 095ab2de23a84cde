"""TI Z-Stack ZNP radio: the MT serial protocol codec and client."""
