"""Rules for shipping and removing artifacts: containers, docker prunes, releases, deleting syncs."""

from __future__ import annotations

import posixpath
import re

from maestro.policy.policies.commands.args import command_start, parse_args
from maestro.policy.policies.commands.config import CommandsPolicy
from maestro.policy.policies.commands.hits import Hit, Nested, approve, deny
from maestro.policy.policies.commands.paths import scope_of
from maestro.policy.policies.commands.words import Invocation

_PUBLISHERS: dict[str, tuple[str, ...]] = {
    "npm": ("publish", "unpublish"),
    "pnpm": ("publish",),
    "yarn": ("publish", "npm publish"),
    "twine": ("upload",),
    "poetry": ("publish",),
    "flit": ("publish",),
    "hatch": ("publish",),
    "uv": ("publish",),
    "pdm": ("publish",),
    "cargo": ("publish",),
    "gem": ("push",),
    "nuget": ("push",),
    "dotnet": ("nuget push",),
    "mvn": ("deploy",),
    "gh": ("release create", "release upload"),
    "helm": ("push",),
    "docker": ("push",),
    "podman": ("push",),
    "vsce": ("publish",),
}
_PUBLISH_FIX = "let a maintainer publish the release"


def docker(inv: Invocation) -> tuple[list[Hit], list[Nested]]:
    argv = list(inv.argv[1:])
    if argv[:1] == ["container"] and argv[1:2] in (["run"], ["create"]):
        argv = argv[1:]
    verb = argv[0] if argv else ""
    fix = "run the container unprivileged with only the workspace mounted"
    if verb in ("system", "image", "volume", "container", "builder", "network", "buildx") and (
        "prune" in argv[1:3] or (verb == "volume" and argv[1:2] in (["rm"], ["remove"]))
    ):
        return [
            approve(
                "docker-prune",
                f"docker {' '.join(argv[:2])} deletes images, containers or volumes",
                "remove the specific images you created",
            )
        ], []
    if verb == "exec":
        start = command_start(
            argv[1:], frozenset({"-e", "--env", "-u", "--user", "-w", "--workdir", "--env-file"})
        )
        inner = tuple(argv[start + 2 :])
        return [], ([Nested("argv", argv=inner)] if inner else [])
    if verb in ("rm", "rmi", "kill") and any(
        s
        and s[0] in ("docker", "podman")
        and s[1:2] in (("ps",), ("images",))
        and any(a.startswith("-") and "q" in a for a in s[2:])
        for w in inv.words
        for s in w.substs
    ):
        return [
            approve(
                "docker-prune", f"docker {verb} of every container or image", "remove the ones you created"
            )
        ], []
    if verb not in ("run", "create"):
        return [], []
    args = parse_args(
        argv[1:],
        frozenset(
            {
                "-v",
                "--volume",
                "--mount",
                "--pid",
                "--net",
                "--network",
                "-e",
                "--env",
                "--name",
                "-p",
                "--publish",
                "-w",
                "-u",
                "--user",
                "--entrypoint",
                "--cap-add",
                "--security-opt",
                "--userns",
            }
        ),
    )
    sources = [v.split(":", 1)[0] for v in args.all_values("-v", "--volume")]
    for m in args.all_values("--mount"):
        found = re.search(r"(?:^|,)(?:source|src)=([^,]*)", m)
        if found:
            sources.append(found.group(1))
    if any(posixpath.normpath(s) == "/" for s in sources if s.startswith("/")):
        return [
            deny(
                "privileged-container-host-root",
                "the container mounts the host's root filesystem: it can rewrite the host",
                fix,
            )
        ], []
    privileged = args.has("--privileged") or "ALL" in args.all_values("--cap-add")
    if privileged and (args.value("--pid") == "host" or args.value("--userns") == "host"):
        return [
            deny(
                "privileged-container-host-root",
                "a privileged container in the host's namespaces owns the host",
                fix,
            )
        ], []
    if privileged:
        return [
            approve(
                "privileged-container",
                "the container runs privileged (full access to host devices)",
                fix,
                "high",
            )
        ], []
    if any(s.endswith("docker.sock") for s in sources):
        return [
            approve(
                "privileged-container",
                "the container gets the host's docker socket (root on the host)",
                fix,
                "high",
            )
        ], []
    return [], []


def publish(inv: Invocation) -> list[Hit]:
    prog = inv.program
    if prog.startswith("gradle") and any(a.startswith("publish") for a in inv.argv[1:]):
        return [approve("publish", f"{prog} publishes artifacts", _PUBLISH_FIX)]
    subs = _PUBLISHERS.get(prog)
    if not subs or "--dry-run" in inv.argv:
        return []
    positional = " ".join(a for a in inv.argv[1:] if not a.startswith("-"))
    for sub in subs:
        if positional == sub or positional.startswith(sub + " ") or (prog == "mvn" and sub in inv.argv):
            return [approve("publish", f"{prog} {sub} publishes a release others will install", _PUBLISH_FIX)]
    return []


def sync(inv: Invocation, policy: CommandsPolicy) -> list[Hit]:
    prog, argv = inv.program, inv.argv
    fix = "sync without deleting, or let an operator run the deleting sync"
    positional = [a for a in argv[1:] if not a.startswith("-")]
    if prog == "aws" and positional[:1] == ["s3"]:
        sub = positional[1] if len(positional) > 1 else ""
        if sub == "sync" and "--delete" in argv:
            return [approve("remote-sync-delete", "aws s3 sync --delete removes remote objects", fix)]
    if prog == "gsutil":
        sub_at = next((i for i, a in enumerate(argv[1:], start=1) if not a.startswith("-")), 0)
        sub = argv[sub_at] if sub_at else ""
        rest = parse_args(argv[sub_at + 1 :], frozenset({"-x", "-c", "-e"})) if sub_at else None
        if rest and sub == "rsync" and rest.has("-d"):
            return [approve("remote-sync-delete", "gsutil rsync -d removes remote objects", fix)]
    if prog == "gcloud" and "storage" in positional and "--delete-unmatched-destination-objects" in argv:
        return [approve("remote-sync-delete", "gcloud storage deletes remote objects", fix)]
    if prog == "rclone" and positional[:1] and positional[0] in ("sync", "deletefile"):
        return [
            approve("remote-sync-delete", f"rclone {positional[0]} deletes objects at the destination", fix)
        ]
    if prog == "azcopy" and any(
        a.startswith("--delete-destination") and not a.endswith("false") for a in argv
    ):
        return [approve("remote-sync-delete", "azcopy sync --delete-destination removes remote blobs", fix)]
    if prog == "rsync" and any(a.startswith(("--delete", "--del")) for a in argv) and positional:
        dest = positional[-1]
        remote = bool(re.match(r"^[^/]*:", dest)) or dest.startswith("rsync://")
        if remote or scope_of(dest, policy.workspace_roots, policy.system_paths) not in ("workspace", "null"):
            return [
                approve(
                    "remote-sync-delete", f"rsync --delete removes files at {dest} that the source lacks", fix
                )
            ]
    return []
