"""Read models: SQL tables kept current from the event log, and the queries that read them."""
