"""Infrastructure: settings, persistence wiring, embedded services, relay and CLI."""
