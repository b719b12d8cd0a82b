"""HTTP API (FastAPI): routes that turn requests into commands and queries."""
