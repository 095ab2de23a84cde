"""RF surveys through the kit's ZNP radio: the scan, its judgement, the per-position store, and
the sources a job quotes surveys from."""
