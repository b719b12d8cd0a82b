"""Sagas: the timed, exactly-once handoffs between marketing, sales and service."""
