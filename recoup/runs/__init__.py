"""The daily run (SPEC R15) and its history.

- `service`: `run_dunning`, the one entry the faces call (R13's date guard, the phases,
  how the run's row records its end).
- `units`: the units of work (an invoice, or a customer's debt in one currency) and their
  loaders, shared by the run and `explain`.
- `pipeline`: chunks decided in a forked process while the previous chunk is written.
- `apply`: a chunk's decisions turned into rows and written in bulk, one transaction.
- `context`: `RunStats`, `Progress` and the context one run carries through its parts.
- `explain`: the evaluator's reasons for one invoice, through the run's loaders.
- `repository`, `schemas`, `history`: the runs so far (`RunRead`), for every face.
The run lock is `recoup.core.locks.run_lock`.
"""
