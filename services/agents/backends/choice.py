"""The backend the agents run on, as the settings choose it (MAESTRO_BACKEND), and its lifetime."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

from maestro.settings import Settings, SettingsError, assignments
from services.agents.backends.base import Backend
from services.agents.backends.chat import ApiKey, ChatBackend, ChatConfig, JsonMode
from services.agents.backends.offline import OfflineBackend

log = logging.getLogger(__name__)


def api_key(settings: Settings, environ: Mapping[str, str]) -> ApiKey | None:
    """The model server's key: the first line of MAESTRO_MODEL_KEY_FILE when set, else the variable that
    MAESTRO_MODEL_KEY_ENV names; None when neither holds one. Raises SettingsError when the file cannot be
    read or is empty (the text names the setting, never the key)."""
    if settings.model_key_file:
        try:
            lines = Path(settings.model_key_file).read_text().splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise SettingsError(f"MAESTRO_MODEL_KEY_FILE: cannot read it: {type(exc).__name__}") from None
        key = lines[0].strip() if lines else ""
        if not key:
            raise SettingsError("MAESTRO_MODEL_KEY_FILE: the file holds no key on its first line")
        return ApiKey(key)
    key = environ.get(settings.model_key_env, "").strip()
    return ApiKey(key) if key else None


def chat_config(settings: Settings, environ: Mapping[str, str]) -> ChatConfig:
    """How to call the model server the settings name; raises SettingsError."""
    mode: JsonMode = "schema"
    if settings.model_json in ("object", "none"):
        mode = "object" if settings.model_json == "object" else "none"
    return ChatConfig(
        base_url=settings.model_url,
        models=settings.models,
        key=api_key(settings, environ),
        model_ids=assignments("MAESTRO_MODEL_IDS", settings.model_ids),
        role_models=assignments("MAESTRO_ROLE_MODELS", settings.role_models),
        max_tokens=settings.estimate_output_tokens,
        connect_timeout_s=settings.model_connect_timeout_s,
        read_timeout_s=settings.model_read_timeout_s,
        retries=settings.model_retries,
        retry_total_s=settings.model_retry_total_s,
        json_mode=mode,
    )


def open_backend(settings: Settings, environ: Mapping[str, str]) -> Backend:
    """The backend MAESTRO_BACKEND names, configured from `settings` (the API key from `environ` or its
    file); raises SettingsError."""
    if settings.backend != "openai":
        return OfflineBackend(settings.models)
    config = chat_config(settings, environ)
    if config.key is None:
        log.info(
            "no API key for %s (%s is unset): calls carry none", settings.model_url, settings.model_key_env
        )
    return ChatBackend(config)


@asynccontextmanager
async def closing(backend: Backend) -> AsyncIterator[Backend]:
    """`backend` for the length of a block; its connections are closed after."""
    try:
        yield backend
    finally:
        if isinstance(backend, ChatBackend):
            await backend.aclose()
