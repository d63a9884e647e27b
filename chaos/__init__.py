"""The fault suite: real processes, real faults, and the invariants (docs/ARCHITECTURE.md) checked after each.

`python -m chaos` runs every scenario (`make chaos`); `python -m chaos.soak` runs the long steady load
(`make soak`). Modules: processes (what /proc says), mesh (a `maestro up` to break), cluster (three
nats-servers), effects (the side effect a tester task leaves), load (submit and collect), streams (read
the audit log, the DLQ, budget events), facts and invariants (pure checks), drill (a load with a fault
in the middle), scenarios/ (one module per family of faults), table.
"""
