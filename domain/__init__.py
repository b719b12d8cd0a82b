"""The CRM's business rules: aggregates, their events and errors, and the application service."""
