"""SQL (and MongoDB shell) a command sends to a database: drops and unbounded deletes or updates.

Statements are read after string literals and comments are removed (with re2, so the cost stays linear
in the text), from `psql -c`, `mysql -e`, `sqlite3 DB SQL`, heredocs and echoed text.
"""

from __future__ import annotations

import re

import re2

from maestro.policy.policies.commands.hits import Hit, Nested, NestedKind, approve, deny
from maestro.policy.policies.commands.words import Invocation, program_name

SQL_CLIENTS = frozenset(
    {
        "psql",
        "mysql",
        "mariadb",
        "sqlite3",
        "clickhouse-client",
        "clickhouse",
        "cockroach",
        "sqlcmd",
        "duckdb",
        "mongo",
        "mongosh",
        "snowsql",
        "bq",
        "pgcli",
        "mycli",
    }
)


_SQL_NOISE = re2.compile(r"(?s)'(?:[^']|'')*'|--[^\n]*|/\*.*?\*/")


def _strip_sql(sql: str) -> str:
    """SQL without string literals and comments (linear: re2), so keywords inside them do not count."""
    return str(_SQL_NOISE.sub(" ", sql))


def judge_sql(sql: str) -> list[Hit]:
    """Statements that drop databases, schemas or tables, or delete or update every row."""
    hits: list[Hit] = []
    fix = "name the rows with a WHERE clause, or let an operator run it"
    for stmt in _strip_sql(sql[:65536]).split(";"):
        s = " ".join(stmt.upper().split())
        if not s:
            continue
        hit: Hit | None = None
        if re.match(r"DROP (DATABASE|SCHEMA|KEYSPACE)\b", s):
            hit = deny("sql-drop-database", f"{s[:60]}: drops a whole database or schema", fix)
        elif re.match(r"TRUNCATE\b", s) or (re.match(r"DELETE\b", s) and " WHERE " not in f" {s} "):
            hit = deny("sql-delete-all", f"{s[:60]}: deletes every row (no WHERE)", fix)
        elif re.match(r"DROP TABLE\b", s):
            hit = approve("sql-drop-table", f"{s[:60]}: drops a table and its data", fix, "high")
        elif re.match(r"UPDATE\b", s) and " WHERE " not in f" {s} ":
            hit = approve("sql-update-all", f"{s[:60]}: updates every row (no WHERE)", fix)
        elif re.match(r"ALTER TABLE\b.*\bDROP\b", s):
            hit = approve("sql-drop-table", f"{s[:60]}: drops a column or constraint", fix)
        if hit and hit not in hits:
            hits.append(hit)
    return hits


def judge_mongo(js: str) -> list[Hit]:
    """MongoDB shell code that drops a database or empties a collection."""
    fix = "name the documents with a filter, or let an operator run it"
    if re.search(r"\.dropDatabase\s*\(", js):
        return [deny("sql-drop-database", "dropDatabase() drops a whole database", fix)]
    if re.search(r"\.(deleteMany|remove)\s*\(\s*\{\s*\}", js):
        return [deny("sql-delete-all", "deleteMany({}) deletes every document", fix)]
    if re.search(r"\.drop\s*\(\s*\)", js):
        return [approve("sql-drop-table", "drop() drops a collection", fix, "high")]
    return []


def sql_client(inv: Invocation) -> list[Nested]:
    prog, argv = inv.program, inv.argv
    mongo = prog in ("mongo", "mongosh")
    kind: NestedKind = "mongo" if mongo else "sql"
    flags = {
        "psql": ("-c", "--command"),
        "pgcli": ("-c",),
        "mysql": ("-e", "--execute"),
        "mycli": ("-e", "--execute"),
        "mariadb": ("-e", "--execute"),
        "cockroach": ("-e", "--execute"),
        "sqlcmd": ("-Q", "-q"),
        "clickhouse-client": ("-q", "--query"),
        "clickhouse": ("-q", "--query"),
        "snowsql": ("-q", "--query"),
        "mongo": ("--eval",),
        "mongosh": ("--eval",),
        "duckdb": ("-c",),
        "bq": ("query",),
    }.get(prog, ())
    texts: list[str] = []
    for i, a in enumerate(argv[1:], start=1):
        name, eq, val = a.partition("=")
        if eq and name in flags:
            texts.append(val)
        elif a in flags and i + 1 < len(argv):
            texts.append(argv[i + 1])
        elif a[:2] in flags and len(a) > 2 and not a.startswith("--"):
            texts.append(a[2:])
    if prog in ("sqlite3", "duckdb"):
        positional = [a for a in argv[1:] if not a.startswith("-")]
        texts += positional[1:]
    if prog == "bq" and "query" in argv:
        texts += [a for a in argv[argv.index("query") + 1 :] if not a.startswith("-")]
    if inv.stdin_text is not None:
        texts.append(inv.stdin_text)
    if inv.upstream and inv.upstream[-1] and program_name(inv.upstream[-1][0]) in ("echo", "printf"):
        texts.append(" ".join(inv.upstream[-1][1:]))
    return [Nested(kind, t) for t in texts if t]
