"""Read models: PostgreSQL views built from the event log by exactly-once projections."""
