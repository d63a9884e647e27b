"""Model backends: what a role calls to get text; offline (deterministic, no network) for now."""

from services.agents.backends.base import Backend, Completion
from services.agents.backends.offline import OfflineBackend

__all__ = ["Backend", "Completion", "OfflineBackend"]
