"""Maestro's shared runtime: topics, codec, bus, topology, runtime, and the user's entry points."""
