"""The kit config and the job file: their tables, validation, errors and live reload."""
