"""The billing system's answers to `retry_payment` requests."""
