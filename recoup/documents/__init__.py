"""Documents (SPEC §1): generated letters stored as PDF files, attached to a plan and its
invoices; the letter layout; template previews with real data."""
