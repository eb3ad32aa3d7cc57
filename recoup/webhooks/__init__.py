"""Outgoing webhooks (SPEC §3 `webhook`, `retry_payment`; §5 "webhooks out"): signed JSON
POSTs, and the events configured endpoints receive, derived from the append-only log."""
