"""Settings: read once from MAESTRO_* variables in main() into a frozen dataclass, then passed down."""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import os
import pwd
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from maestro import pricing
from proto.v1 import ROLES
from proto.v1.budget import MAX_TTL_S
from proto.v1.ids import MAX_MICRO_USD, MODEL_PATTERN

SANDBOX_CHOICES = ("auto", "namespaces", "user", "none")
"""Values of MAESTRO_SANDBOX: an isolation level by name, or `auto`, the best that works here."""


class SettingsError(ValueError):
    """A MAESTRO_* variable held a value of the wrong kind; the text names the variable."""


def _default_worker() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


@dataclass(frozen=True)
class Settings:
    """Every knob of every service. Each field is read from MAESTRO_<FIELD NAME IN CAPITALS>."""

    nats_url: str | None = None
    """NATS server URL(s), comma-separated; when empty, `maestro up` starts an embedded JetStream server."""
    data_dir: str = ".maestro"
    """Where `maestro up` keeps the embedded server's JetStream store and its URL file."""
    state_dir: str = ""
    """Where `maestro up` records the instances running, so the CLI finds one from any directory (default:
    $XDG_RUNTIME_DIR/maestro, else ~/.local/state/maestro; a Settings built with it empty records none)."""
    nats_creds: str = ""
    """A file with this process's NATS credentials (`maestro nats-config` writes one per service and tenant);
    empty: connect without any (a server that asks for none, as `maestro up`'s embedded one by default)."""
    http_host: str = "127.0.0.1"
    """Interface for /healthz, /readyz, /metrics (and the orchestrator's API)."""
    token_file: str = ""
    """The file holding the API token the CLI does human work with (`maestro claim`, `complete`...): the
    person acts as the token's subject. Empty: the local admin token `maestro up` made (in the data dir)."""
    auth: bool = True
    """Whether the orchestrator's API asks every caller for a bearer token (`maestro token create`); `off`
    (for tests) is refused unless MAESTRO_HTTP_HOST is a loopback address."""
    http_port: int = -1
    """Port for the HTTP endpoints; -1 picks the service's default, 0 picks a free port."""
    log_level: str = "INFO"
    """Python logging level for the JSON log lines."""
    stream_replicas: int = 1
    """Replicas of every stream and bucket (3 on a NATS cluster)."""
    event_max_age_s: float = 7 * 24 * 3600.0
    """How long task events (the audit log) are kept."""
    dlq_max_age_s: float = 30 * 24 * 3600.0
    """How long dead letters are kept."""
    duplicate_window_s: float = 120.0
    """JetStream de-duplication window for requests, tasks and outcome events."""
    ack_wait_s: float = 30.0
    """How long a consumer waits for an ack before redelivering a message."""
    max_deliver: int = 5
    """Deliveries of one message before it goes to the DLQ."""
    max_retries: int = 1000
    """Deliveries of one message whose handler keeps asking to be retried later (the budget is down, say)
    before it goes to the DLQ: nothing is redelivered without bound."""
    max_ack_pending: int = 1000
    """Messages a durable consumer hands out without an ack (back-pressure across replicas)."""
    concurrency: int = 256
    """Handlers one consumer runs at once in one process."""
    fetch_batch: int = 128
    """Messages asked for in one pull."""
    record_linger_s: float = 0.5
    """How long the orchestrator may wait for more events of a task before it writes the task's record (an
    event that parks the task for approval, queues it for a person or ends it is written at once): the events
    that come within it are written once instead of once each. Events are acknowledged only once written,
    so none is lost."""
    record_waiting_linger_s: float = 2.0
    """How long the record of a task that has not started (accepted, or waiting for its turn at the
    dispatcher) may lag its events: a task that starts within it is written at its start or end, not also as
    queued. Readers are answered from the events meanwhile; listings show the task once it is written."""
    fair_dispatch: bool = True
    """Allowed tasks wait in the orchestrator's dispatcher, which hands them to their role's agents by
    priority, tenant weight and tenant limits (the policy bundle's scheduling); `off`: the guard hands them
    over at once, first come first served, and no tenant limit applies. Guard and orchestrator must agree."""
    dispatch_ahead: int = 256
    """Most tasks per role the dispatcher hands to the agents that have not started yet. It hands over no
    more than the role's agents have free slots anyway (MAESTRO_CONCURRENCY each); this caps it when they
    have many."""
    leader_lease_s: float = 10.0
    """How long the orchestrator replica that leads (it runs the dispatcher and counts the open tasks) may go
    without renewing its lease: a replica that has seen no renewal for that long takes the lead over. When the
    leader is killed, tasks wait that long for their next hand-over; a leader that stops gives the lead up."""
    request_timeout_s: float = 5.0
    """Timeout of one request/reply call (the budget)."""
    max_request_bytes: int = 786_432
    """Largest task request the guard and the API accept (below NATS's 1 MiB max payload)."""
    default_limit_micro_usd: int = 100_000_000
    """Budget limit of a tenant that has none set (100 USD)."""
    price_input_micro_usd_per_token: int = 3
    """Default price of one input token (3 USD per million)."""
    price_output_micro_usd_per_token: int = 15
    """Default price of one output token (15 USD per million)."""
    estimate_output_tokens: int = 1024
    """Output tokens assumed when estimating a task's cost before it runs."""
    reservation_ttl_s: float = 3600.0
    """How long a budget hold lives without a commit or release."""
    max_plan_subtasks: int = 20
    """Most subtasks a planner step that expands may add to its workflow (more fail the planner step)."""
    workflow_hold_ttl_s: float = 86_400.0
    """How long a workflow's escrow (its whole estimate, held before its first step) lives unless the
    workflow ends first and gives back what is left."""
    pricing: str = ""
    """Model prices in USD per million tokens, `model=input:output,...` (`offline=0:0,gpt-4o=2.5:10`);
    `model=none` marks a model unpriced (refused); `*=...` prices every model not listed (default: the
    price_*_micro_usd_per_token settings; `*=none` refuses unlisted models)."""
    budget_sweep_s: float = 30.0
    """How often a budget replica releases expired holds of tenants nobody touches."""
    budget_sample_s: float = 60.0
    """How often a budget replica publishes a spend sample (budget.sampled) of each tenant whose ledger it
    changed since its last one: the console's chart of spend over time."""
    models: tuple[str, ...] = ("offline",)
    """Models the agents' backend serves, comma-separated; the first runs a task that names none. A task
    asking for another model is refused before anything is held. The offline backend answers for each
    of these models itself (deterministic text, counted tokens), billed at that model's price."""
    backend: str = "offline"
    """The agents' model backend: `offline` (deterministic answers, no network) or `openai` (a server that
    speaks OpenAI's Chat Completions protocol at MAESTRO_MODEL_URL: OpenAI, Azure OpenAI, vLLM, Ollama,
    LiteLLM's proxy, OpenRouter)."""
    model_url: str = "https://api.openai.com/v1"
    """Base URL of the model server; calls go to <url>/chat/completions."""
    model_key_env: str = "OPENAI_API_KEY"
    """The environment variable that holds the model server's API key (sent as a bearer token, never logged);
    when it is unset and MAESTRO_MODEL_KEY_FILE is empty, no key is sent (a local server)."""
    model_key_file: str = ""
    """A file whose first line is the API key; when set, it is used instead of MAESTRO_MODEL_KEY_ENV."""
    model_ids: tuple[str, ...] = ()
    """The model server's id of each of MAESTRO_MODELS, `model=server-id,...`
    (`local=meta-llama/Llama-3.1-8B-Instruct`); a model not listed is sent by its own name."""
    role_models: tuple[str, ...] = ()
    """The model a role's tasks run on when they name none, `role=model,...` (`planner=gpt-4o`), each one of
    MAESTRO_MODELS; other roles run on the first of MAESTRO_MODELS. The guard estimates at the same model."""
    model_connect_timeout_s: float = 10.0
    """Longest wait to connect to the model server."""
    model_read_timeout_s: float = 120.0
    """Longest wait for the model server's next bytes once the call is sent (answers are not streamed, so
    this bounds the time to write the whole answer)."""
    model_retries: int = 4
    """Retries of a model call after a 429, a 408, a 5xx, an answer that does not parse, a lost connection or
    a time-out (0: none); then the attempt fails and the task's retry policy decides."""
    model_retry_total_s: float = 300.0
    """Longest one model call may take with its retries and their waits (a Retry-After past it fails now)."""
    model_json: str = "schema"
    """How a role asks for a JSON answer: `schema` (response_format json_schema), `object` (json_object, for
    servers without JSON Schema support) or `none` (the schema is only in the role's instructions)."""
    roles: tuple[str, ...] = ROLES
    """Roles this agent worker serves (comma-separated)."""
    heartbeat_s: float = 10.0
    """How often a worker reports that a long task is still running."""
    command_timeout_s: float = 300.0
    """Longest a task's shell command may run in the sandbox."""
    sandbox: str = "auto"
    """How the agents isolate a task's commands: `namespaces` (new PID, network, mount, IPC and UTS
    namespaces, the system read-only, as a uid of its own), `user` (a uid of its own, no namespaces), `none`
    (the agent's own user), or `auto`, the best of these that works on the host. A worker serving the tester
    refuses to start with no isolation unless this says `none`."""
    sandbox_uid: int = 1_000_000
    """First uid (and gid) a sandboxed command runs as when the agent runs as root."""
    sandbox_uid_count: int = 1_000_000
    """How many uids from sandbox_uid the commands use: one each while it runs (1: all share one)."""
    sandbox_cpu_s: float = 600.0
    """CPU seconds each process of a sandboxed command may use (RLIMIT_CPU)."""
    sandbox_memory_bytes: int = 4 << 30
    """Address space each process of a sandboxed command may map (RLIMIT_AS)."""
    sandbox_processes: int = 256
    """Processes a sandboxed command may have at once (RLIMIT_NPROC of its uid)."""
    sandbox_file_bytes: int = 1 << 30
    """Largest file a sandboxed command may write (RLIMIT_FSIZE)."""
    sandbox_open_files: int = 1024
    """Files each process of a sandboxed command may hold open (RLIMIT_NOFILE)."""
    sandbox_tmp_bytes: int = 512 << 20
    """Size of a sandboxed command's private /tmp (namespaces level)."""
    approval_sweep_s: float = 30.0
    """How often the guard looks for approvals that timed out (the timeout itself is in the policy bundle)."""
    tally_s: float = 10.0
    """How often each guard publishes what it decided per tenant (verdicts, rules that fired) for the
    console's charts; a guard killed outright loses at most the last interval's counts (the events stream
    keeps every decision)."""
    metrics_tenants: int = 50
    """Tenants a service names in its metrics' `tenant` label, the first ones it sees; later ones are counted
    under `other`, so that many tenants do not make Prometheus keep a series per tenant and metric."""
    backlog_interval_s: float = 15.0
    """How often the orchestrator reads each durable consumer's backlog and the DLQ's depth for its gauges."""
    github_config: str = ""
    """A YAML file connecting GitHub repositories (maestro/github/config.py): each one's tenant, webhook
    secret file and test commands, and the REST API's token file; empty: POST /v1/hooks/github takes none."""
    notify_webhook_url: str = ""
    """Where the notifier POSTs notifications (a human task's breached SLA), signed with the secret in
    MAESTRO_NOTIFY_SECRET_FILE and retried until delivered; empty: they are logged only."""
    notify_secret_file: str = ""
    """The file holding the secret each webhook is signed with (HMAC-SHA256, `X-Maestro-Signature-256`)."""
    worker: str = field(default_factory=_default_worker)
    """This process's name: an agent worker's in events, an orchestrator replica's in the leader lease."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        """Settings from MAESTRO_* entries of `environ`; raises SettingsError naming a bad variable."""
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            name = f"MAESTRO_{f.name.upper()}"
            raw = environ.get(name)
            if raw is None or (raw == "" and f.name != "nats_url"):
                continue
            values[f.name] = _checked(name, f.name, _parse(name, f.type, raw))
        values.setdefault("state_dir", _default_state_dir(environ))
        settings = cls(**values)
        unknown = sorted(set(settings.roles) - set(ROLES))
        if unknown:
            raise SettingsError(f"MAESTRO_ROLES: unknown roles {unknown}; known: {', '.join(ROLES)}")
        if settings.sandbox not in SANDBOX_CHOICES:
            choices = ", ".join(SANDBOX_CHOICES)
            raise SettingsError(f"MAESTRO_SANDBOX: expected one of {choices}, got {settings.sandbox!r}")
        bad_models = [m for m in settings.models if not re.search(MODEL_PATTERN, m)]
        if bad_models or not settings.models:
            raise SettingsError(f"MAESTRO_MODELS: {bad_models or 'none'}: expected model ids such as gpt-4o")
        try:
            pricing.from_settings(settings)
        except pricing.PricingError as exc:
            raise SettingsError(str(exc)) from None
        _check_model_server(settings)
        if not settings.auth and not is_loopback(settings.http_host):
            raise SettingsError(
                f"MAESTRO_AUTH=off: refused, the API would listen on {settings.http_host}, not a loopback "
                "address; give callers tokens (maestro token create) instead"
            )
        return settings

    def with_(self, **changes: Any) -> Settings:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)


# Bounds follow the unit in a name: a duration (`_s`) is more than 0, money and prices are 0 or more, and any
# other number counts something, so it is at least 1; the exceptions are listed.
_BOUNDS: dict[str, tuple[int, int | None]] = {
    "http_port": (-1, 65535),
    "stream_replicas": (1, 5),
    "model_retries": (0, 100),
}
_MONEY = ("micro_usd", "per_token")
# A hold the budget would refuse to keep that long (proto.v1.budget.MAX_TTL_S) refuses every task.
_LONGEST_S: dict[str, float] = {"reservation_ttl_s": MAX_TTL_S, "workflow_hold_ttl_s": MAX_TTL_S}
_BOOLEANS = {
    **dict.fromkeys(("on", "true", "yes", "1"), True),
    **dict.fromkeys(("off", "false", "no", "0"), False),
}
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


BACKENDS = ("offline", "openai")
"""The agents' model backends (MAESTRO_BACKEND)."""
JSON_MODES = ("schema", "object", "none")
"""How a JSON answer is asked for (MAESTRO_MODEL_JSON)."""
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def assignments(name: str, entries: tuple[str, ...]) -> dict[str, str]:
    """`key=value` entries of the setting `name` as a mapping; raises SettingsError naming a malformed one."""
    found: dict[str, str] = {}
    for entry in entries:
        key, sep, value = (part.strip() for part in entry.partition("="))
        if not sep or not key or not value or any(c.isspace() for c in value):
            raise SettingsError(f"{name}: {entry!r}: expected name=value")
        found[key] = value
    return found


def _check_model_server(settings: Settings) -> None:
    """Raises SettingsError naming a model server setting that cannot be right."""
    if settings.backend not in BACKENDS:
        raise SettingsError(
            f"MAESTRO_BACKEND: expected one of {', '.join(BACKENDS)}, got {settings.backend!r}"
        )
    if settings.model_json not in JSON_MODES:
        raise SettingsError(
            f"MAESTRO_MODEL_JSON: expected one of {', '.join(JSON_MODES)}, got {settings.model_json!r}"
        )
    if not re.match(r"^https?://[^\s/]+", settings.model_url):
        raise SettingsError(f"MAESTRO_MODEL_URL: expected an http(s) URL, got {settings.model_url!r}")
    if not _ENV_NAME.match(settings.model_key_env):
        raise SettingsError(f"MAESTRO_MODEL_KEY_ENV: {settings.model_key_env!r} is not a variable name")
    served = ", ".join(settings.models)
    for model in assignments("MAESTRO_MODEL_IDS", settings.model_ids):
        if model not in settings.models:
            raise SettingsError(f"MAESTRO_MODEL_IDS: {model!r} is not one of MAESTRO_MODELS ({served})")
    for role, model in assignments("MAESTRO_ROLE_MODELS", settings.role_models).items():
        if role not in ROLES:
            raise SettingsError(f"MAESTRO_ROLE_MODELS: unknown role {role!r}; known: {', '.join(ROLES)}")
        if model not in settings.models:
            raise SettingsError(f"MAESTRO_ROLE_MODELS: {model!r} is not one of MAESTRO_MODELS ({served})")
    if (
        settings.backend == "openai"
        and settings.model_key_file
        and not os.path.isfile(settings.model_key_file)
    ):
        raise SettingsError(f"MAESTRO_MODEL_KEY_FILE: {settings.model_key_file!r} is not a file")


def is_loopback(host: str) -> bool:
    """Whether an interface to listen on is reachable from this machine only (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _checked(name: str, field_name: str, value: Any) -> Any:
    """The value if it is within its bounds; raises SettingsError naming the variable."""
    if field_name == "log_level":
        if value.upper() not in _LOG_LEVELS:
            raise SettingsError(f"{name}: expected one of {', '.join(_LOG_LEVELS)}, got {value!r}")
        return value.upper()
    if isinstance(value, bool):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise SettingsError(f"{name}: must be a finite number, got {value!r}")
        if field_name.endswith("_s") and value <= 0:
            raise SettingsError(f"{name}: must be more than 0, got {value!r}")
        if value > _LONGEST_S.get(field_name, math.inf):
            raise SettingsError(f"{name}: must be at most {_LONGEST_S[field_name]:g}, got {value!r}")
    if isinstance(value, int):
        money = any(m in field_name for m in _MONEY)
        low, high = _BOUNDS.get(field_name, (0, MAX_MICRO_USD) if money else (1, None))
        if value < low:
            raise SettingsError(f"{name}: must be at least {low}, got {value}")
        if high is not None and value > high:
            raise SettingsError(f"{name}: must be at most {high}, got {value}")
    return value


def _default_state_dir(environ: Mapping[str, str]) -> str:
    if runtime_dir := environ.get("XDG_RUNTIME_DIR"):
        return os.path.join(runtime_dir, "maestro")
    home = environ.get("HOME") or pwd.getpwuid(os.getuid()).pw_dir
    return os.path.join(home, ".local", "state", "maestro")


def _parse(name: str, type_: Any, raw: str) -> Any:
    kind = str(type_)
    try:
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind == "bool":
            return _BOOLEANS[raw.strip().lower()]
        if kind.startswith("tuple"):
            return tuple(part.strip() for part in raw.split(",") if part.strip())
        if kind == "str | None":
            return raw or None
        return raw
    except (ValueError, KeyError):
        raise SettingsError(f"{name}: expected {kind}, got {raw!r}") from None
