"""Schema migrations of the app's own tables (alembic). Read models are not migrated: each carries a
version and is rebuilt from the event log when it changes (projections/versions.py); the event
store's tables are the eventsourcing library's."""
