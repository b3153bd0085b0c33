"""Ingest: sources -> validated, pseudonymized, deduplicated workspace tables."""

from tribes.ingest.loader import IngestOptions, IngestSummary, ingest

__all__ = ["IngestOptions", "IngestSummary", "ingest"]
