"""The pure policy engine: bundles, the families of policies and the judgement that combines them (no I/O)."""
