"""Sync (``tribes activate``): segment memberships into CRM/CDP tools and files (DESIGN §7)."""
