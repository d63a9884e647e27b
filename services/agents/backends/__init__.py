"""Model backends: what a role calls to get text; offline (deterministic, no network) for now."""

from services.agents.backends.base import Backend, Completion, ModelFailed, Schema, Turn, UnservedModel
from services.agents.backends.offline import OfflineBackend

__all__ = ["Backend", "Completion", "ModelFailed", "OfflineBackend", "Schema", "Turn", "UnservedModel"]
