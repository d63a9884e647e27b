"""What a one-liner (python -c, perl -e, ruby -e, node -e, php -r) does, in shell terms.

Python is parsed with `ast`: shell-outs (`os.system`, `subprocess.run(..., shell=True)`) become shell text
to judge, argv calls (`subprocess.run([...])`) become argv, and file effects become their shell
equivalent (`shutil.rmtree(p)` is `rm -r p`, `open(p, "w")` is `tee p`), so one rule table judges all.
Other languages have no parser here: their shell-out calls, backticks and file APIs are found with
simple linear patterns and their string literals read. Reverse shells, fork loops and `exec` of decoded
or downloaded code are judged directly.
"""

from __future__ import annotations

import ast
import base64
import binascii
import re
import shlex

import re2

from maestro.policy.policies.commands.hits import Hit, Nested, NestedKind, deny

_SHELL_CALLS = frozenset(
    {
        "os.system",
        "os.popen",
        "subprocess.getoutput",
        "subprocess.getstatusoutput",
        "commands.getoutput",
        "pty.spawn",
        "asyncio.create_subprocess_shell",
    }
)
_ARGV_CALLS = frozenset(
    {
        "subprocess.run",
        "subprocess.call",
        "subprocess.check_call",
        "subprocess.check_output",
        "subprocess.Popen",
        "asyncio.create_subprocess_exec",
        "os.execv",
        "os.execvp",
        "os.execve",
        "os.execvpe",
        "os.execl",
        "os.execlp",
        "os.spawnv",
        "os.spawnvp",
    }
)
_DELETE_CALLS = {
    "shutil.rmtree": ("rm", "-r"),
    "os.remove": ("rm",),
    "os.unlink": ("rm",),
    "os.rmdir": ("rm",),
    "os.removedirs": ("rm", "-r"),
}
_DECODERS = ("b64decode", "decodebytes", "a85decode", "b32decode", "fromhex", "decompress", "codecs.decode")
_FETCHERS = ("urlopen", "requests.get", "urllib.request", "httpx.get", "urlretrieve")
_MAX_NODES = 20000

_RSHELL_FIX = "do not expose a shell over the network"
_DECODED_FIX = "run the decoded code itself, in plain text"


def _dotted(node: ast.expr, aliases: dict[str, str]) -> str:
    """The dotted name a call refers to, with import aliases and `__import__('os')` resolved."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(aliases.get(node.id, node.id))
    elif (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in ("__import__", "import_module")
        and node.args
        and isinstance(node.args[0], ast.Constant)
    ):
        parts.append(str(node.args[0].value))
    else:
        return ""
    return ".".join(reversed(parts))


def _string(node: ast.expr | None) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else "$X" for v in node.values)  # type: ignore[misc]
    return None


def _strings(node: ast.expr | None) -> tuple[str, ...] | None:
    if isinstance(node, ast.List | ast.Tuple):
        items = [_string(e) for e in node.elts]
        return tuple(i if i is not None else "$X" for i in items)
    return None


def inspect_python(code: str) -> tuple[list[Hit], list[Nested]]:
    """Hits and nested shell text or argv of a Python program."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError, OverflowError):
        return inspect_other("python", code)
    aliases: dict[str, str] = {}
    hits: list[Hit] = []
    nested: list[Nested] = []
    names: set[str] = set()
    fork_in_loop = False
    for count, node in enumerate(ast.walk(tree)):
        if count > _MAX_NODES:
            break
        if isinstance(node, ast.Import):
            for a in node.names:
                aliases[a.asname or a.name] = a.name
        elif isinstance(node, ast.ImportFrom) and node.module:
            for a in node.names:
                aliases[a.asname or a.name] = f"{node.module}.{a.name}"
        elif isinstance(node, ast.While | ast.For):
            fork_in_loop = fork_in_loop or any(
                isinstance(n, ast.Call) and _dotted(n.func, aliases).endswith("fork") for n in ast.walk(node)
            )
        elif isinstance(node, ast.Call):
            name = _dotted(node.func, aliases)
            names.add(name)
            first = node.args[0] if node.args else None
            shell_kw = any(
                k.arg == "shell" and isinstance(k.value, ast.Constant) and k.value.value
                for k in node.keywords
            )
            if name in _SHELL_CALLS or (name in _ARGV_CALLS and shell_kw):
                text = _string(first)
                if text is not None:
                    nested.append(Nested("shell", text))
                elif (argv := _strings(first)) is not None:
                    nested.append(Nested("argv", argv=argv))
            elif name in _ARGV_CALLS:
                argv = _strings(first)
                text = _string(first)
                if argv is None and text is not None:
                    argv = tuple(text.split())
                if argv:
                    nested.append(Nested("argv", argv=argv))
            elif name in _DELETE_CALLS and (path := _string(first)) is not None:
                nested.append(Nested("argv", argv=(*_DELETE_CALLS[name], path)))
            elif name in ("open", "io.open", "os.open") and (path := _string(first)) is not None:
                mode = _string(node.args[1]) if len(node.args) > 1 else None
                mode = mode or next((_string(k.value) for k in node.keywords if k.arg == "mode"), None) or ""
                if name == "os.open" or set(mode) & set("wax+"):
                    nested.append(Nested("argv", argv=("tee", path)))
            elif name in ("exec", "eval", "builtins.exec", "compile"):
                inner = ast.unparse(first) if first is not None else ""
                if any(d in inner for d in _FETCHERS):
                    hits.append(
                        deny("pipe-to-shell", "python executes code it downloads", "download, review, run")
                    )
                elif any(d in inner for d in _DECODERS):
                    hits.append(
                        deny("decoded-to-shell", "python executes code decoded at run time", _DECODED_FIX)
                    )
                    nested.extend(Nested("python", t) for t in _decode_all(inner))
                elif (text := _string(first)) is not None:
                    nested.append(Nested("python", text))
    if fork_in_loop:
        hits.append(
            deny(
                "fork-bomb", "python forks in a loop: a fork bomb exhausts the host", "do not fork in a loop"
            )
        )
    sockets = any(n.startswith("socket.") or n == "socket" for n in names)
    if sockets and any(
        n in ("os.dup2", "pty.spawn") or n.startswith("subprocess.") or n == "os.system" for n in names
    ):
        hits.append(deny("reverse-shell", "python connects a shell to a network socket", _RSHELL_FIX))
    return hits, nested


def _decode_all(text: str) -> list[str]:
    """Base64 literals in text, decoded (for judging what obfuscated code does)."""
    out = []
    for m in re.finditer(r"['\"]([A-Za-z0-9+/=]{8,})['\"]", text[:65536]):
        try:
            out.append(base64.b64decode(m.group(1), validate=True).decode("utf-8", "replace"))
        except (binascii.Error, ValueError):
            continue
    return out[:4]


_LITERAL = r"""(?:"((?:[^"\\\n]|\\.)*)"|'((?:[^'\\\n]|\\.)*)')"""
_LITERAL_RE = re2.compile(_LITERAL)
_SHELL_OUT = re2.compile(
    r"(?:\b(?:system|exec|execSync|exec_command|spawnSync|spawn|execFileSync|execFile|shell_exec|passthru|popen|"
    r"proc_open|IO\.popen|Open3\.\w+|qx|pcntl_exec)\b\s*\(?\s*\[?\s*)("
    + _LITERAL
    + r"(?:\s*,\s*"
    + _LITERAL
    + r")*)"
)
_BACKTICK = re2.compile(r"`([^`\n]+)`|\bqx\s*[{(]([^})\n]+)[})]|%x\s*[{(]([^})\n]+)[})]")
_DELETE_API = re2.compile(
    r"\b(?:rmtree|remove_tree|rm_rf|rm_r|remove_dir|rmSync|rmdirSync|rimraf(?:\.sync)?|fs\.rm|fs\.promises\.rm)"
    r"\s*\(\s*\[?\s*" + _LITERAL
)
_WRITE_API = re2.compile(
    r"\b(?:writeFileSync|appendFileSync|writeFile|appendFile|file_put_contents|File\.write|IO\.write)\s*\(\s*"
    + _LITERAL
    + r"|\bopen\s*\(\s*[\w$]*\s*,?\s*['\"](?:>>?|\+>|w|a)['\"]?\s*,?\s*"
    + _LITERAL
    + r"|\bopen\s*\(\s*[\w$]*\s*,\s*['\"]>>?\s*([^'\"]+)['\"]"
)
_FORK_LOOP = re2.compile(
    r"fork\s+while\s+fork|while\s*\(?\s*(?:1|true)\s*\)?\s*\{?\s*fork|loop\s*\{\s*fork"
    r"|for\s*\(\s*;\s*;\s*\)\s*\{?\s*(?:pcntl_)?fork"
)
_SOCKET = re2.compile(
    r"\b(?:Socket|TCPSocket|fsockopen|socket_create|net\.connect|net\.Socket|createConnection|"
    r"IO::Socket|socket\s*\()"
)
_SPAWN = re2.compile(
    r"\b(?:exec|system|spawn|popen|proc_open|shell_exec|dup2|fdopen|child_process)\b|/bin/(?:ba)?sh"
)
_DECODE_EXEC = re2.compile(
    r"(?s)\beval\b.{0,40}\b(?:decode_base64|base64_decode|atob|Buffer\.from|unpack|Base64)"
)

_FETCHES = (
    r"(?:file_get_contents\s*\(\s*['\"]https?:|Net::HTTP|URI\.open|open-uri|LWP::Simple|\bfetch\s*\(|"
    r"https?\.get\s*\(|urlopen|requests\.get)"
)
_FETCH_EXEC = re2.compile(r"(?s)\beval\b.{0,80}" + _FETCHES + r"|" + _FETCHES + r".{0,160}\beval\b")


def _literals(text: str) -> list[str]:
    out = []
    for m in _LITERAL_RE.finditer(text):
        raw = m.group(1) if m.group(1) is not None else m.group(2) or ""
        out.append(raw.replace("\\\\", "\\").replace('\\"', '"').replace("\\'", "'"))
    return out


def inspect_other(kind: NestedKind, code: str) -> tuple[list[Hit], list[Nested]]:
    """Hits and nested shell text or argv of a perl, ruby, node or php one-liner (pattern based)."""
    code = code[:65536]
    hits: list[Hit] = []
    nested: list[Nested] = []
    for m in _SHELL_OUT.finditer(code):
        lits = _literals(m.group(1))
        if len(lits) == 1:
            nested.append(Nested("shell", lits[0]))
        elif lits:
            nested.append(Nested("argv", argv=tuple(lits)))
    for m in _BACKTICK.finditer(code):
        nested.append(Nested("shell", next(g for g in m.groups() if g is not None)))
    for m in _DELETE_API.finditer(code):
        path = m.group(1) if m.group(1) is not None else m.group(2)
        nested.append(Nested("argv", argv=("rm", "-r", path or "")))
    for m in _WRITE_API.finditer(code):
        path = next((g for g in m.groups() if g), None)
        if path:
            nested.append(Nested("argv", argv=("tee", path.strip())))
    if _FORK_LOOP.search(code):
        hits.append(
            deny(
                "fork-bomb", f"{kind} forks in a loop: a fork bomb exhausts the host", "do not fork in a loop"
            )
        )
    if _SOCKET.search(code) and _SPAWN.search(code):
        hits.append(
            deny("reverse-shell", f"{kind} connects a shell or program to a network socket", _RSHELL_FIX)
        )
    if _FETCH_EXEC.search(code):
        hits.append(deny("pipe-to-shell", f"{kind} evaluates code it downloads", "download, review, run"))
    if _DECODE_EXEC.search(code):
        hits.append(deny("decoded-to-shell", f"{kind} evaluates code decoded at run time", _DECODED_FIX))
    return hits, nested[:32]


def argv_of(text: str) -> tuple[str, ...]:
    """Shell-like split that never raises."""
    try:
        return tuple(shlex.split(text))
    except ValueError:
        return tuple(text.split())
