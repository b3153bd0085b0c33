"""Orchestration: work that spans stages (``tribes run``, the scheduler, erasure across
tables, segment comparison, ingest with its data-quality checks). The CLI, the service and
the report call into it; nothing below imports it."""
