"""The book: customers, invoices and payments as the billing system reports them (SPEC §5)."""
