"""Agent workers: pull a role's tasks, do the role's work with a backend, store artifacts, pay, report."""
