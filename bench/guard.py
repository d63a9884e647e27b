"""`python -m bench.guard`: the guard on realistic requests, its credential scan beside detect-secrets.

The corpus: requests of ~1 KB, ~8 KB and ~64 KB whose context files are this repository's own code
and manifests, half of them with planted credentials of 30 kinds (in code, config files and
commands). Figures: decisions/s and p50/p99 latency through the full engine, the credential scan's
throughput, crafted 1 MB inputs against a plain one, and in the same run the same corpus through
detect-secrets (every default plugin and filter, scan_file on the same texts) for throughput and recall.
"""

from __future__ import annotations

import argparse
import base64
import random
import string
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from maestro import codec
from maestro.policy.policies.credentials import CredentialsPolicy, check
from proto.v1 import ContextFile, TaskRequest

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("maestro", "proto", "services/agents", "services/budget", "services/orchestrator", "deploy")
SIZES = {"1KB": 1 << 10, "8KB": 8 << 10, "64KB": 64 << 10}
MEGABYTE = 1 << 20
ALNUM = string.ascii_letters + string.digits
B64 = ALNUM + "+/"
B64URL = ALNUM + "_-"
HEX = "0123456789abcdef"


def _r(rng: random.Random, alphabet: str, n: int) -> str:
    return "".join(rng.choices(alphabet, k=n))


def _pem(rng: random.Random) -> str:
    body = "\n".join(_r(rng, B64, 64) for _ in range(12))
    return (
        "-----BEGIN RSA "
        + f"PRIVATE KEY-----\n{body}\n{_r(rng, B64, 40)}==\n-----END RSA "
        + "PRIVATE KEY-----"
    )


def _in(line: str, secret: str) -> tuple[str, str]:
    """A line holding `secret` where its `{}` is."""
    return line.replace("{}", secret), secret


def _slack(r: random.Random) -> str:
    return "xoxb-" + _r(r, string.digits, 12) + "-" + _r(r, string.digits, 13) + "-" + _r(r, ALNUM, 24)


def _webhook(r: random.Random) -> str:
    return (
        "T"
        + _r(r, "ABCDEFGHIJ0123456789", 10)
        + "/B"
        + _r(r, "ABCDEFGHIJ0123456789", 10)
        + "/"
        + _r(r, ALNUM, 24)
    )


def _jwt(r: random.Random) -> str:
    """A signed token with a real header and claims (detect-secrets decodes them), a random signature."""

    def part(data: str) -> str:
        return base64.urlsafe_b64encode(data.encode()).decode().rstrip("=")

    claims = f'{{"sub":"{_r(r, HEX, 12)}","iat":{r.randrange(1_600_000_000, 1_800_000_000)},"role":"svc"}}'
    return part('{"alg":"HS256","typ":"JWT"}') + "." + part(claims) + "." + _r(r, B64URL, 43)


def _gcp(r: random.Random) -> str:
    return "-----BEGIN " + "PRIVATE KEY-----\\n" + _r(r, B64, 64) + "\\n-----END " + "PRIVATE KEY-----\\n"


# Each kind: (a line as it would sit in a file or command, the secret inside it). Built at run time,
# so no key-shaped literal sits in the source.
Plant = Callable[[random.Random], tuple[str, str]]
PLANTS: dict[str, Plant] = {
    "aws-access-key": lambda r: _in(
        'AWS_ACCESS_KEY_ID = "{}"', "AKIA" + _r(r, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16)
    ),
    "aws-secret-key": lambda r: _in("aws_secret_access_key = {}", _r(r, B64, 40)),
    "github-token": lambda r: _in('GITHUB_TOKEN = "{}"', "ghp_" + _r(r, ALNUM, 36)),
    "github-fine-grained": lambda r: _in(
        "token: {}", "github_pat_" + _r(r, ALNUM, 22) + "_" + _r(r, ALNUM, 59)
    ),
    "gitlab-token": lambda r: _in("  private_token: {}", "glpat-" + _r(r, B64URL, 20)),
    "slack-token": lambda r: _in("SLACK_BOT_TOKEN={}", _slack(r)),
    "slack-webhook": lambda r: _in('WEBHOOK = "https://hooks.slack.com/services/{}"', _webhook(r)),
    "stripe-live-key": lambda r: _in('stripe.api_key = "{}"', "sk_live_" + _r(r, ALNUM, 99)),
    "sendgrid-api-key": lambda r: _in(
        'SENDGRID_API_KEY = "{}"', "SG." + _r(r, B64URL, 22) + "." + _r(r, B64URL, 43)
    ),
    "twilio-api-key": lambda r: _in('TWILIO_API_KEY = "{}"', "SK" + _r(r, HEX, 32)),
    "openai-key": lambda r: _in('OPENAI_API_KEY = "{}"', "sk-proj-" + _r(r, B64URL, 156)),
    "anthropic-key": lambda r: _in("export ANTHROPIC_API_KEY={}", "sk-ant-api03-" + _r(r, B64URL, 93) + "AA"),
    "huggingface-token": lambda r: _in('HF_TOKEN = "{}"', "hf_" + _r(r, ALNUM, 34)),
    "google-api-key": lambda r: _in('  apiKey: "{}",', "AIza" + _r(r, B64URL, 35)),
    "npm-token": lambda r: _in("//registry.npmjs.org/:_authToken={}", "npm_" + _r(r, ALNUM, 36)),
    "pypi-token": lambda r: _in("password = {}", "pypi-AgEIcHlwaS5vcmc" + _r(r, B64URL, 150)),
    "dockerhub-token": lambda r: _in("DOCKERHUB_TOKEN={}", "dckr_pat_" + _r(r, B64URL, 27)),
    "private-key": lambda r: _in("{}", _pem(r)),
    "jwt": lambda r: _in('headers = {"Authorization": "Bearer {}"}', _jwt(r)),
    "postgres-url": lambda r: _in('DATABASE_URL = "postgres://app:{}@db:5432/app"', _r(r, ALNUM, 20)),
    "mongodb-url": lambda r: _in(
        "MONGO_URI=mongodb+srv://svc:{}@cluster0.mongodb.net/prod", _r(r, ALNUM, 20)
    ),
    "generic-password": lambda r: _in('db_password = "{}"', _r(r, ALNUM + "!#%&*", 18)),
    "azure-storage": lambda r: _in(
        "AZURE_STORAGE=DefaultEndpointsProtocol=https;AccountName=acme;AccountKey={};EndpointSuffix=core.windows.net",
        _r(r, B64, 86) + "==",
    ),
    "gcp-service-account": lambda r: _in('{"type": "service_account", "private_key": "{}"}', _gcp(r)),
    "discord-bot-token": lambda r: _in(
        'DISCORD_TOKEN = "{}"', "MT" + _r(r, ALNUM, 24) + "." + _r(r, B64URL, 6) + "." + _r(r, B64URL, 38)
    ),
    "telegram-bot-token": lambda r: _in(
        "bot = Bot(token='{}')", _r(r, string.digits, 10) + ":AA" + _r(r, B64URL, 33)
    ),
    "mailchimp-api-key": lambda r: _in('MAILCHIMP_KEY = "{}"', _r(r, HEX, 32) + "-us14"),
    "vault-token": lambda r: _in("VAULT_TOKEN={}", "hvs." + _r(r, B64URL, 90)),
    "databricks-token": lambda r: _in('DATABRICKS_TOKEN = "{}"', "dapi" + _r(r, HEX, 32)),
    "curl-basic-auth": lambda r: _in("curl -u deploy:{} https://ci.example.org/api", _r(r, ALNUM, 18)),
}


@dataclass(frozen=True)
class Planted:
    """One planted credential: the kind, where it is (span field and line range) and the secret."""

    kind: str
    field: str
    first_line: int
    last_line: int
    start: int
    end: int


@dataclass(frozen=True)
class Sample:
    """A request of one size class and the credentials planted in it."""

    size: str
    request: TaskRequest
    planted: list[Planted] = field(default_factory=list)


def sources() -> list[tuple[str, str]]:
    """This repository's own code and manifests: (path, text), in a stable order."""
    files = []
    for top in SOURCES:
        for path in sorted((ROOT / top).rglob("*")):
            if path.suffix in (".py", ".yaml", ".yml", ".json", ".md", ".toml") and path.is_file():
                files.append(
                    (str(path.relative_to(ROOT)), path.read_text(encoding="utf-8", errors="replace"))
                )
    return files


def _plant(rng: random.Random, content: str, kind: str) -> tuple[str, str, int]:
    """`content` with one credential of `kind` on a new line; the line, the secret and its offset."""
    line, secret = PLANTS[kind](rng)
    lines = content.split("\n")
    at = rng.randrange(len(lines) + 1)
    lines.insert(at, line)
    text = "\n".join(lines)
    offset = sum(len(x) + 1 for x in lines[:at]) + line.index(secret)
    return text, secret, offset


def corpus(per_size: int, seed: int = 7) -> list[Sample]:
    """`per_size` requests of each size class; every other one carries one to three planted credentials."""
    rng = random.Random(seed)
    files = sources()
    kinds = sorted(PLANTS)
    samples: list[Sample] = []
    n = planted_so_far = 0
    for size, budget in SIZES.items():
        for _ in range(per_size):
            n += 1
            prompt = f"Refactor the module and add tests for request {n}; keep the public API stable."
            context, used = [], len(prompt)
            while used < budget:
                path, text = files[rng.randrange(len(files))]
                start = rng.randrange(max(1, len(text) - 1))
                chunk = text[start : start + min(budget - used, 16 << 10)]
                if chunk:
                    context.append(ContextFile(path=path, content=chunk))
                    used += len(chunk) + len(path)
            commands = ["pytest -q", "ruff check ."]
            planted: list[Planted] = []
            if n % 2 == 0:
                for _ in range(rng.randint(1, 3)):
                    kind = kinds[planted_so_far % len(kinds)]  # round robin: every kind, several times
                    planted_so_far += 1
                    if kind == "curl-basic-auth":
                        line, secret = PLANTS[kind](rng)
                        commands.append(line)
                        i, start = len(commands) - 1, line.index(secret)
                        planted.append(Planted(kind, f"commands[{i}]", 1, 1, start, start + len(secret)))
                        continue
                    # One plant per file, so a plant never moves another's offsets.
                    free = [
                        i for i in range(len(context)) if all(p.field != f"context[{i}]" for p in planted)
                    ]
                    if not free:
                        continue
                    i = free[rng.randrange(len(free))]
                    text, secret, offset = _plant(rng, context[i].content, kind)
                    context[i] = ContextFile(path=context[i].path, content=text)
                    first = text.count("\n", 0, offset) + 1
                    planted.append(
                        Planted(
                            kind,
                            f"context[{i}]",
                            first,
                            first + secret.count("\n"),
                            offset,
                            offset + len(secret),
                        )
                    )
            request = TaskRequest(
                id=f"bench-{n}",
                tenant="bench",
                role="implementer",
                prompt=prompt,
                context=context,
                commands=commands,
            )
            samples.append(Sample(size, request, planted))
    return samples


@dataclass(frozen=True)
class Latency:
    """Engine decisions for one size class."""

    size: str
    decisions: int
    per_s: float
    p50_ms: float
    p99_ms: float


def _percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _judge() -> tuple[str, Callable[[TaskRequest], object]]:
    """The full engine when it is there, else the credentials family alone."""
    try:
        from maestro.policy.bundle import load_default
        from maestro.policy.engine import evaluate

        bundle = load_default()
        return "engine.evaluate (all families, default bundle)", lambda r: evaluate(
            r, len(codec.encode(r)), bundle
        )
    except (ImportError, TypeError, AttributeError):
        policy = CredentialsPolicy()
        return "credentials.check (engine not available)", lambda r: check(r, policy)


def engine_latency(samples: list[Sample], rounds: int) -> tuple[str, list[Latency]]:
    """Decisions/s and p50/p99 per size class, after one warm-up pass."""
    name, judge = _judge()
    for s in samples:
        judge(s.request)
    out = []
    for size in SIZES:
        requests = [s.request for s in samples if s.size == size]
        times = []
        started = time.perf_counter()
        for _ in range(rounds):
            for r in requests:
                t0 = time.perf_counter()
                judge(r)
                times.append(time.perf_counter() - t0)
        total = time.perf_counter() - started
        out.append(
            Latency(
                size,
                len(times),
                len(times) / total,
                _percentile(times, 0.5) * 1e3,
                _percentile(times, 0.99) * 1e3,
            )
        )
    return name, out


def scanned_texts(request: TaskRequest) -> list[tuple[str, str, str]]:
    """(span field, file name for detect-secrets, text) for everything both scanners read."""
    out = [("prompt", "prompt.txt", request.prompt)]
    out += [(f"context[{i}]", f.path, f.content) for i, f in enumerate(request.context)]
    out += [(f"commands[{i}]", "command.sh", c) for i, c in enumerate(request.commands)]
    return out


def _scanned_bytes(samples: list[Sample]) -> int:
    return sum(len(t.encode()) for s in samples for _, _, t in scanned_texts(s.request))


@dataclass(frozen=True)
class ScanResult:
    """One scanner over the whole corpus."""

    name: str
    seconds: float
    mb_per_s: float
    found: int
    planted: int
    extra: int
    missed: dict[str, int]

    @property
    def recall(self) -> float:
        """Planted credentials found, as a fraction."""
        return self.found / self.planted if self.planted else 1.0


def _score(
    name: str, samples: list[Sample], hits: list[list[tuple[str, int, int]]], seconds: float
) -> ScanResult:
    """Recall on planted credentials: a hit on the same field and line range counts."""
    found = extra = 0
    missed: dict[str, int] = {}
    for sample, sample_hits in zip(samples, hits, strict=True):
        matched = set()
        for p in sample.planted:
            ok = [h for h in sample_hits if h[0] == p.field and p.first_line <= h[1] <= p.last_line]
            if ok:
                found += 1
                matched.update(ok)
            else:
                missed[p.kind] = missed.get(p.kind, 0) + 1
        extra += len(set(sample_hits) - matched)
    planted = sum(len(s.planted) for s in samples)
    mb = _scanned_bytes(samples) / MEGABYTE
    return ScanResult(name, seconds, mb / seconds, found, planted, extra, missed)


def ours(samples: list[Sample]) -> ScanResult:
    """The credentials family over the corpus (warm), with line numbers from its locations."""
    policy = CredentialsPolicy(max_findings=1000)
    for s in samples:
        check(s.request, policy)
    started = time.perf_counter()
    results = [check(s.request, policy) for s in samples]
    seconds = time.perf_counter() - started
    hits = []
    for findings in results:
        sample_hits = []
        for f in findings:
            if f.span is not None:
                sample_hits.append((f.span.field, int(f.violation.location.rsplit(":", 2)[1]), f.span.start))
        hits.append(sample_hits)
    return _score("maestro credentials (RE2)", samples, hits, seconds)


def detect_secrets(samples: list[Sample]) -> ScanResult | None:
    """The same texts through detect-secrets' scan_file with its default plugins and filters."""
    try:
        from detect_secrets.core.scan import scan_file
        from detect_secrets.settings import default_settings
    except ImportError:
        return None
    with tempfile.TemporaryDirectory() as tmp, default_settings():
        paths: list[list[tuple[str, str]]] = []
        for n, s in enumerate(samples):
            mine = []
            for k, (where, name, text) in enumerate(scanned_texts(s.request)):
                path = Path(tmp, str(n), str(k), name)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text, encoding="utf-8")
                mine.append((where, str(path)))
            paths.append(mine)
        started = time.perf_counter()
        found = [
            [(where, p.line_number, i) for where, path in mine for i, p in enumerate(scan_file(path))]
            for mine in paths
        ]
        seconds = time.perf_counter() - started
    return _score("detect-secrets 1.5 (scan_file)", samples, found, seconds)


def plain_megabyte() -> str:
    """1 MB of this repository's code: what the crafted inputs are measured against."""
    text = "\n".join(t for _, t in sources())
    return (text * (MEGABYTE // max(1, len(text)) + 1))[:MEGABYTE]


def hostile() -> dict[str, str]:
    """Crafted 1 MB inputs: near-miss prefixes, long almost-matches, floods, a key with a huge body."""
    rng = random.Random(3)
    return {
        "near-miss prefixes": ("AKIA ghp_ sk-ant- xoxb- AIza glpat- eyJ. -----BEGIN " * MEGABYTE)[:MEGABYTE],
        "one long almost-token": "ghp_" + "a" * (MEGABYTE - 4),
        "long runs that almost match": " ".join(
            p + "a" * 5000 + "!" for p in ("AKIA", "sk-", "xoxb-1-", "AIza", "eyJ", "sk-proj-")
        )
        * 40,
        "dashes and prefixes": ("-MTa-AIza-sk-ant-" + _r(rng, B64URL, 30)) * (MEGABYTE // 47),
        "placeholder flood": 'password = "changeme"\n' * (MEGABYTE // 22),
        "a key header with a huge body": "-----BEGIN RSA "
        + "PRIVATE KEY-----\n"
        + ("A" * 64 + "\n") * (MEGABYTE // 65),
        "random base64": base64.b64encode(rng.randbytes(MEGABYTE * 3 // 4)).decode(),
    }


def _best(text: str, runs: int = 5) -> float:
    request = TaskRequest(id="adv", tenant="bench", role="implementer", prompt=text)
    policy = CredentialsPolicy()
    check(request, policy)
    best = float("inf")
    for _ in range(runs):
        t0 = time.perf_counter()
        check(request, policy)
        best = min(best, time.perf_counter() - t0)
    return best


def adversarial() -> tuple[float, list[tuple[str, float]]]:
    """Best-of-5 seconds for the plain megabyte, and for each crafted one."""
    return _best(plain_megabyte()), [(name, _best(text)) for name, text in hostile().items()]


@dataclass(frozen=True)
class GuardResult:
    """Everything `python -m bench.guard` measured."""

    judge: str
    latency: list[Latency]
    ours: ScanResult
    baseline: ScanResult | None
    plain_s: float
    crafted: list[tuple[str, float]]
    sizes: dict[str, int]


def run(per_size: int = 30, rounds: int = 20) -> GuardResult:
    """Build the corpus and measure everything."""
    samples = corpus(per_size)
    judge, latency = engine_latency(samples, rounds)
    plain_s, crafted = adversarial()
    sizes = {
        size: sum(len(codec.encode(s.request)) for s in samples if s.size == size) // per_size
        for size in SIZES
    }
    return GuardResult(judge, latency, ours(samples), detect_secrets(samples), plain_s, crafted, sizes)


def describe(result: GuardResult) -> list[str]:
    """The report, one line each."""
    lines = [f"guard: {result.judge}"]
    for lat in result.latency:
        lines.append(
            f"  {lat.size:>5} requests (~{result.sizes[lat.size]:,} B): {lat.per_s:>9,.0f} decisions/s"
            f"  p50 {lat.p50_ms:.3f} ms  p99 {lat.p99_ms:.3f} ms  (n={lat.decisions})"
        )
    for scan in (result.ours, result.baseline):
        if scan is None:
            lines.append("  detect-secrets is not installed: no baseline")
            continue
        missed = ", ".join(f"{k} x{v}" for k, v in sorted(scan.missed.items())) or "none"
        lines.append(
            f"  {scan.name:<32} {scan.mb_per_s:>8.2f} MB/s  recall {scan.found}/{scan.planted}"
            f" ({scan.recall:.0%})  unplanted findings {scan.extra}  missed: {missed}"
        )
    lines.append(f"  crafted 1 MB inputs vs plain 1 MB of code ({result.plain_s * 1e3:.2f} ms):")
    for name, seconds in result.crafted:
        lines.append(f"    {name:<32} {seconds * 1e3:8.2f} ms  x{seconds / result.plain_s:.2f}")
    return lines


def comparison(result: GuardResult) -> list[str]:
    """The figures beside their same-run baselines, as rows of the bench summary table."""
    rows = [f"{'figure (baseline: detect-secrets / plain)':<40}{'value':>12}{'baseline':>12}{'ratio':>10}"]

    def row(figure: str, value: float, base: float, fmt: str) -> None:
        rows.append(
            f"{figure:<40}{value:>12{fmt}}{base:>12{fmt}}{value / base if base else float('inf'):>10.3f}"
        )

    if result.baseline is not None:
        row("credential scan MB/s", result.ours.mb_per_s, result.baseline.mb_per_s, ",.2f")
        row("recall on planted credentials", result.ours.recall, result.baseline.recall, ".3f")
    row(
        "worst crafted 1 MB ms vs plain 1 MB",
        max(s for _, s in result.crafted) * 1e3,
        result.plain_s * 1e3,
        ".2f",
    )
    p99 = next(lat.p99_ms for lat in result.latency if lat.size == "8KB")
    row("p99 ms of an 8 KB request vs 2 ms", p99, 2.0, ".3f")
    return rows


def report(per_size: int = 30, rounds: int = 20) -> list[str]:
    """Run everything; the report lines, then the summary rows."""
    result = run(per_size, rounds)
    return [*describe(result), "", *comparison(result)]


def main(argv: Sequence[str] | None = None) -> None:
    """Run the guard benchmark alone and print its report."""
    parser = argparse.ArgumentParser(prog="python -m bench.guard", description=__doc__)
    parser.add_argument("--per-size", type=int, default=30, help="requests per size class (default 30)")
    parser.add_argument("--rounds", type=int, default=20, help="engine passes over the corpus (default 20)")
    args = parser.parse_args(argv)
    for line in report(args.per_size, args.rounds):
        print(line)


if __name__ == "__main__":
    main()
