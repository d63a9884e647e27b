"""Maestro services: guard, budget, orchestrator, agents. They never import each other."""
