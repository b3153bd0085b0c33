"""Monitoring: drift of features and segment shares against the active version, and the
alerts it raises (DESIGN §7)."""
