"""The book: customers, invoices and payments as the billing system reports them (SPEC §5).

- `rows`: reading and checking CSV rows (pure; also what the write schemas are checked with)
- `schemas`: what the faces show (`CustomerRead`, `InvoiceRead`…) and take (`CustomerCreate`…)
- `repository`: every read query of the book
- `imports`: what the three imports share (the report, refusing a batch, chunks)
- `customers`, `invoices` (with disputes), `payments`: the rules; the oldest-due-first spread
  of a payment is `recoup.domain.allocation`
"""
