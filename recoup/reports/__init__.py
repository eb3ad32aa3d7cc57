"""Reports over the book: receivables, aging, recovery."""
