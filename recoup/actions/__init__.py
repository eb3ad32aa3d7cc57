"""Executing action instances (SPEC §3).

- `runner`: execute_pending, the loop that claims, guards, executes and records;
- `claims`: the lease SQL (claiming, takeover of a dead or hung process's leases);
- `outcomes`: Done, Skipped, PermanentFailure and recording them (retry decisions from
  recoup.domain.retry);
- `registry`: the executor of each action type (`executors`, `letter`, `sms`, `webhook`);
- `context`: what an executor gets about its instance; `notice`, `fee_rules`: fees follow a
  notice, and what a fee comes to;
- `manual`: actions a person asks for on a plan; `requeue`: `recoup actions retry`;
- `repository`, `schemas`: queries on action instances and how the faces show them.

Rendering and delivering messages is recoup.messages; storing letters recoup.documents."""
