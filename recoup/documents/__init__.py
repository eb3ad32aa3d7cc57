"""Documents (SPEC §1): generated letters stored as PDF files, attached to a plan and its
invoices (`service`: storing them; `repository`: finding them; `schemas`: DocumentRead), and
template previews with real data (`preview`). The letter layout and printing are in
recoup.messages.letter."""
