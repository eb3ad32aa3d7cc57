"""Charges: late fees and interest owed, and what people and the billing system do with them."""
