"""Workspace tables: their schemas, versioned segment storage and the audit trail."""
