"""Command-line options read the way getopt reads them: clusters (`-rf`), long forms, `--opt=value`, `--`."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Args:
    """A command's options and positional arguments."""

    flags: set[str] = field(default_factory=set)
    """Every option seen, short ones one letter each (`-rf` -> `-r`, `-f`), long ones whole (`--force`)."""
    values: dict[str, list[str]] = field(default_factory=dict)
    """Values of options that take one, by option (`-n prod`, `--namespace=prod`)."""
    positional: list[str] = field(default_factory=list)

    def has(self, *names: str) -> bool:
        """Whether any of these options was given (a long option also matches its `--name=value` form)."""
        return any(n in self.flags for n in names)

    def value(self, *names: str) -> str | None:
        """The last value given to any of these options."""
        found = [v for n in names for v in self.values.get(n, ())]
        return found[-1] if found else None

    def all_values(self, *names: str) -> list[str]:
        """Every value given to any of these options."""
        return [v for n in names for v in self.values.get(n, ())]


def parse_args(args: tuple[str, ...] | list[str], with_value: frozenset[str] = frozenset()) -> Args:
    """Split args into options and positionals; `with_value` names options that take a value (`-n`)."""
    out = Args()
    i, n = 0, len(args)
    while i < n:
        a = args[i]
        i += 1
        if a == "--":
            out.positional.extend(args[i:])
            break
        if a.startswith("--") and len(a) > 2:
            name, eq, val = a.partition("=")
            out.flags.add(name)
            if eq:
                out.values.setdefault(name, []).append(val)
            elif name in with_value and i < n:
                out.values.setdefault(name, []).append(args[i])
                i += 1
            continue
        if a.startswith("-") and len(a) > 1 and not a[1].isdigit():
            for k, c in enumerate(a[1:], start=1):
                name = "-" + c
                out.flags.add(name)
                if name in with_value:
                    val = a[k + 1 :]
                    if not val and i < n:
                        val = args[i]
                        i += 1
                    out.values.setdefault(name, []).append(val.removeprefix("="))
                    break
            continue
        out.positional.append(a)
    return out


def command_start(args: tuple[str, ...] | list[str], with_value: frozenset[str] = frozenset()) -> int:
    """Index of the first positional argument: where a wrapped command (`ssh host CMD`) starts."""
    i, n = 0, len(args)
    while i < n:
        a = args[i]
        if a == "--":
            return i + 1
        if not a.startswith("-") or a == "-":
            return i
        if a in with_value or (len(a) > 2 and not a.startswith("--") and "-" + a[-1] in with_value):
            i += 1
        i += 1
    return n
