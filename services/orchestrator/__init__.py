"""The orchestrator: folds each task's events into its record through the state machine; serves the API."""
