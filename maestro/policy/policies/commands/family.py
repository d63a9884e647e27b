"""Commands (resource limits): judge each proposed shell command by what it would really run.

Each command is parsed with bashlex (commands_shell), wrappers are seen through (sudo, env, nice,
timeout, xargs), and everything it runs is judged by one rule table (commands_rules, commands_tools):
its pipelines, substitutions, `bash -c` strings, heredocs fed to shells, and the shell-outs of
`python -c`/`perl -e` one-liners (commands_scripts), to a bounded depth. Three outcomes: deny what is
catastrophic or irreversible, approve what is privileged or destructive but scoped, allow the rest.
Text that cannot be parsed, or is too long or too nested to judge in bounded time, needs approval.

The workspace is the task's working directory; commands_paths says what lies inside it.
"""

from __future__ import annotations

from collections import deque
from dataclasses import replace

import re2

from maestro.policy.policies import Finding
from maestro.policy.policies.commands import exec as run
from maestro.policy.policies.commands import rules as rules
from maestro.policy.policies.commands import windows, winshell
from maestro.policy.policies.commands.config import CommandsPolicy
from maestro.policy.policies.commands.hits import Hit, Nested, approve, deny
from maestro.policy.policies.commands.scripts import inspect_other, inspect_python
from maestro.policy.policies.commands.shell import Script, ShellError, parse
from maestro.policy.policies.commands.sql import judge_mongo, judge_sql
from maestro.policy.policies.commands.syntax import from_fish
from maestro.policy.policies.commands.words import Invocation, Word
from maestro.policy.policies.commands.wrappers import unwrap
from proto.v1 import TaskRequest, Violation

POLICY = "commands"
EVIDENCE_CHARS = 120
MAX_FINDINGS_PER_COMMAND = 8
_MAX_ITEMS = 64
_MAX_SUBSTITUTIONS = 64
_MAX_OPERATORS = 256
_MAX_TOKENS = 1000
_MAX_NESTING = 12


def check(request: TaskRequest, policy: CommandsPolicy) -> list[Finding]:
    """A finding for every rule any of the request's commands breaks."""
    findings: list[Finding] = []
    budget = 4 * policy.max_command_chars  # bounds the time one request can cost, whatever its command count
    for index, command in enumerate(request.commands):
        budget -= len(command)
        if budget < 0:
            hit = approve("too-long", "the request's commands together are too long to judge", _PARSE_FIX)
            found = _finding(index, command, hit, 0, policy)
            findings += [found] if found else []
            continue
        for hit, offset in judge(command, policy):
            finding = _finding(index, command, hit, offset, policy)
            if finding is not None:
                findings.append(finding)
    return findings


def judge(command: str, policy: CommandsPolicy) -> list[tuple[Hit, int]]:
    """Every Hit of one command with the offset of the part that caused it.

    Text the parser cannot read is a Hit (approval), never an exception. A bug in a rule does raise:
    the engine's family guard turns it into `commands.error` (approval), and tests see it fail.
    """
    return _judge(command, policy)


_PARSE_FIX = "split it into simple commands without unusual syntax"


_HEREDOC = re2.compile(r"<<-?\s*['\"]?([A-Za-z_][A-Za-z0-9_]*)['\"]?")


def _without_heredocs(text: str) -> str:
    """The text minus heredoc bodies, which bashlex reads cheaply as plain text."""
    for m in list(_HEREDOC.finditer(text))[:16]:
        start = text.find("\n", m.end())
        end = text.find("\n" + m.group(1) + "\n", start) if start >= 0 else -1
        if start >= 0:
            text = text[:start] + (text[end + len(m.group(1)) + 1 :] if end >= 0 else "")
    return text


def _too_complex(text: str) -> str | None:
    """Why bashlex would take too long on the text (its cost grows with tokens, stages and substitutions)."""
    code = _without_heredocs(text) if "<<" in text else text
    substitutions = code.count("$(") + code.count("<(") + code.count(">(") + code.count("`") // 2
    if substitutions > _MAX_SUBSTITUTIONS:
        return f"it has {substitutions} substitutions (at most {_MAX_SUBSTITUTIONS} are judged)"
    operators = code.count("|") + code.count(";") + code.count("&")
    if operators > _MAX_OPERATORS:
        return f"it chains {operators} commands (at most {_MAX_OPERATORS} are judged)"
    tokens = len(code.split())
    if tokens > _MAX_TOKENS:
        return f"it has {tokens} words (at most {_MAX_TOKENS} are judged)"
    depth = worst = 0
    for c in code:
        if c == "(":
            depth += 1
            worst = max(worst, depth)
        elif c == ")":
            depth = max(depth - 1, 0)
    if worst > _MAX_NESTING:
        return f"it nests parentheses {worst} deep (at most {_MAX_NESTING} are judged)"
    return None


def _only_comments(text: str) -> bool:
    """Blank or only comments: nothing runs."""
    return all(not line.strip() or line.lstrip().startswith("#") for line in text.splitlines()[:10000])


def _judge(command: str, policy: CommandsPolicy) -> list[tuple[Hit, int]]:
    if _only_comments(command):
        return []
    if len(command) > policy.max_command_chars:
        hit = approve(
            "too-long",
            f"the command is {len(command)} characters, over the {policy.max_command_chars} judged",
            _PARSE_FIX,
        )
        return [(hit, 0)]
    out: list[tuple[Hit, int]] = []
    work: deque[tuple[Nested, int, int | None]] = deque([(Nested("shell", command), 0, None)])
    budget = 2 * policy.max_command_chars
    items = 0
    while work:
        item, depth, at = work.popleft()
        items += 1
        budget -= len(item.text)
        if items > _MAX_ITEMS or budget < 0 or depth > policy.max_depth:
            why = (
                f"nests code more than {policy.max_depth} levels deep"
                if depth > policy.max_depth
                else "runs more nested code than can be judged"
            )
            out.append((approve("too-complex", f"the command {why}", _PARSE_FIX), at or 0))
            break
        for found, offset, child in _judge_item(item, policy, at):
            if found is not None:
                out.append((found, offset))
            if child is not None:
                work.append((child, depth + 1, offset))
    return _dedupe(out)


def _judge_item(
    item: Nested, policy: CommandsPolicy, at: int | None
) -> list[tuple[Hit | None, int, Nested | None]]:
    pos = at or 0
    if item.kind == "shell" and at is None and (how := winshell.dialect(item.text)):
        # Written for PowerShell or cmd.exe: judged as that, and as POSIX shell too (a Windows mark must
        # not hide a bash command), where bash's failure to parse it is no reason for approval.
        windows_side = _judge_item(Nested(how, item.text), policy, 0)
        posix_side = [
            f for f in _judge_shell(item, policy, at) if f[0] is None or f[0].rule_id != "commands.unparsable"
        ]
        return windows_side + posix_side
    if item.kind == "shell":
        return _judge_shell(item, policy, at)
    if item.kind in ("pwsh", "cmd"):
        hits, nested = windows.judge(item.text, "pwsh" if item.kind == "pwsh" else "cmd", policy)
        return [(h, pos, None) for h in hits] + [(None, pos, n) for n in nested]
    if item.kind == "argv":
        words, sudo, xargs = unwrap(tuple(Word(a) for a in item.argv[:256]))
        inv = Invocation(words, sudo=sudo or item.sudo, xargs=xargs, pipeline=(tuple(w.text for w in words),))
        return _from_invocation(inv, policy, pos)
    if item.kind == "sql":
        return [(h, pos, None) for h in judge_sql(item.text)]
    if item.kind == "mongo":
        return [(h, pos, None) for h in judge_mongo(item.text)]
    hits, nested = inspect_python(item.text) if item.kind == "python" else inspect_other(item.kind, item.text)
    return [(h, pos, None) for h in hits] + [
        (None, pos, replace(n, sudo=n.sudo or item.sudo)) for n in nested
    ]


def _judge_shell(
    item: Nested, policy: CommandsPolicy, at: int | None
) -> list[tuple[Hit | None, int, Nested | None]]:
    pos = at or 0
    if _only_comments(item.text):
        return []
    why = _too_complex(item.text)
    if why:
        return [
            (approve("too-complex", f"the command is too complex to judge: {why}", _PARSE_FIX), pos, None)
        ]
    try:
        script = _parse_posix_or_fish(item.text)
    except ShellError as exc:
        found: list[tuple[Hit | None, int, Nested | None]] = [
            (
                approve("unparsable", f"the shell parser could not read the command ({exc})", _PARSE_FIX),
                pos,
                None,
            )
        ]
        if at is None:
            found += _judge_pieces(item.text, policy)
        return found
    out: list[tuple[Hit | None, int, Nested | None]] = []
    for fn in script.functions:
        if fn.name and fn.name in fn.calls and fn.forks:
            out.append(
                (
                    deny(
                        "fork-bomb",
                        f"the function {fn.name} spawns copies of itself: a fork bomb",
                        "do not define self-spawning functions",
                    ),
                    pos if at is not None else fn.span[0],
                    None,
                )
            )
    downloaded: set[str] = set()
    for inv in script.invocations:
        if item.sudo and not inv.sudo:
            inv = replace(inv, sudo=True)
        where = pos if at is not None else inv.span[0]
        if downloaded and run.file_run(inv) in downloaded:
            out.append(
                (
                    deny(
                        "pipe-to-shell",
                        f"{inv.program} runs a file downloaded earlier in the command",
                        "download, review the file, then run it in a separate, approved step",
                    ),
                    where,
                    None,
                )
            )
        downloaded.update(run.downloaded_files(inv))
        out += _from_invocation(inv, policy, where)
    return out


def _parse_posix_or_fish(text: str) -> Script:
    """The text parsed as POSIX shell (bash, sh, dash, zsh one-liners), else as fish rewritten to it.

    Raises ShellError (of the POSIX parse) when neither reads it.
    """
    try:
        return parse(text)
    except ShellError:
        fish = from_fish(text)
        if fish == text or _too_complex(fish):
            raise  # the rewrite adds substitutions: bound its cost as the original's was bounded
        try:
            return parse(fish)
        except ShellError:
            pass
        raise


def _judge_pieces(text: str, policy: CommandsPolicy) -> list[tuple[Hit | None, int, Nested | None]]:
    """Best effort on unparsable text: judge each line and `;`-separated piece that does parse."""
    out: list[tuple[Hit | None, int, Nested | None]] = []
    offset = 0
    for n, piece in enumerate(re2.split(r"[;\n]", text)):
        if n >= 32:
            break
        try:
            script = parse(piece)
        except ShellError:
            script = None
        for inv in script.invocations if script else ():
            for hit, at, child in _from_invocation(inv, policy, offset + inv.span[0]):
                if hit is not None and hit.action == "deny":
                    out.append((hit, at, child))
        offset += len(piece) + 1
    return out


def _from_invocation(
    inv: Invocation, policy: CommandsPolicy, pos: int
) -> list[tuple[Hit | None, int, Nested | None]]:
    hits, nested = rules.judge(inv, policy)
    return [(h, pos, None) for h in hits] + [(None, pos, n) for n in nested]


def _dedupe(found: list[tuple[Hit, int]]) -> list[tuple[Hit, int]]:
    """One report per rule and place, denials first, at most MAX_FINDINGS_PER_COMMAND."""
    seen: set[tuple[str, int]] = set()
    out: list[tuple[Hit, int]] = []
    for hit, offset in sorted(found, key=lambda f: (f[0].action != "deny", f[1])):
        if (hit.rule_id, offset) not in seen:
            seen.add((hit.rule_id, offset))
            out.append((hit, offset))
    return out[:MAX_FINDINGS_PER_COMMAND]


_SECRETS = re2.compile(
    r"(?i)((?:password|passwd|pwd|token|secret|api[_-]?key|apikey|auth|authorization)\s*[=:]\s*|bearer\s+|"
    r"://[^:/@\s]+:|--password=)([^\s'\"@]{3,})"
)
_LONG_TOKEN = re2.compile(r"[A-Za-z0-9_\-+/]{32,}")


def evidence(command: str, offset: int) -> str:
    """A short, single-line excerpt of the command from offset, with likely secrets masked."""
    start = min(max(offset, 0), len(command))
    text = " ".join(command[start : start + EVIDENCE_CHARS * 2].split())
    text = str(_SECRETS.sub(lambda m: m.group(1) + "****", text))
    text = str(
        _LONG_TOKEN.sub(
            lambda m: m.group(0)[:4] + "****" if any(c.isdigit() for c in m.group(0)) else m.group(0), text
        )
    )
    return text if len(text) <= EVIDENCE_CHARS else text[: EVIDENCE_CHARS - 1] + "…"


def _finding(index: int, command: str, hit: Hit, offset: int, policy: CommandsPolicy) -> Finding | None:
    action: str = policy.overrides.get(hit.rule_id, hit.action)
    if action == "off":
        return None
    audit = policy.mode == "audit" or action == "audit"
    offset = min(max(offset, 0), len(command))
    line = command.count("\n", 0, offset) + 1
    column = offset - (command.rfind("\n", 0, offset) + 1) + 1
    violation = Violation(
        policy=POLICY,
        rule_id=hit.rule_id,
        severity=hit.severity,
        location=f"commands[{index}]:{line}:{column}",
        evidence=evidence(command, offset),
        message=hit.message,
        fix=hit.fix,
        enforced=not audit,
    )
    return Finding(violation, "audit" if audit else "deny" if action == "deny" else "approve")
