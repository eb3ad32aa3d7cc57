"""Idempotency keys of the REST API (SPEC §6): a POST's first answer, kept and replayed."""
