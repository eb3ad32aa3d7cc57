"""API keys of the REST API: created from the CLI, shown once, stored as a SHA-256 hash."""
