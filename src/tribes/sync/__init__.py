"""Sync (``tribes activate``): segment memberships into CRM/CDP tools and files (DESIGN §7)."""

from tribes.sync.memberships import SyncResult, history, owed_removals, plan, sync

__all__ = ["SyncResult", "history", "owed_removals", "plan", "sync"]
