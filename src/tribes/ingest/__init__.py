"""Ingest: sources -> validated, pseudonymized, deduplicated workspace tables."""

from tribes.ingest.loader import IngestOptions, IngestSummary, Progress, ingest
from tribes.ingest.mapping import parse_map_option, parse_pairs, resolve_mapping
from tribes.ingest.quarantine import quarantined
from tribes.ingest.replay import drop_quarantined, flat_records, replay_quarantined
from tribes.ingest.spec import EVENTS, KINDS, REASONS
from tribes.ingest.standardize import NULL_MARKERS, canonical_event_type

__all__ = [
    "EVENTS",
    "KINDS",
    "NULL_MARKERS",
    "REASONS",
    "IngestOptions",
    "IngestSummary",
    "Progress",
    "canonical_event_type",
    "drop_quarantined",
    "flat_records",
    "ingest",
    "parse_map_option",
    "parse_pairs",
    "quarantined",
    "replay_quarantined",
    "resolve_mapping",
]
