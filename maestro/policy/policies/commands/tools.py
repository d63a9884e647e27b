"""Rules for tools with their own vocabulary: git, kubectl, helm, terraform; dispatch to SQL and deploy rules.

Each reads the tool's own options (global options before the subcommand, `--opt=value`, clusters) and
judges scope: which branch, which namespace, which statement, which host path.
"""

from __future__ import annotations

from fnmatch import fnmatchcase

from maestro.policy.policies.commands import cloud, host
from maestro.policy.policies.commands import deploy as deploy
from maestro.policy.policies.commands.args import parse_args
from maestro.policy.policies.commands.config import CommandsPolicy
from maestro.policy.policies.commands.hits import Hit, Nested, approve, deny
from maestro.policy.policies.commands.sql import SQL_CLIENTS, sql_client
from maestro.policy.policies.commands.words import Invocation

_GIT_GLOBAL_WITH_VALUE = frozenset({"-C", "-c", "--git-dir", "--work-tree", "--namespace", "--exec-path"})
_KUBE_WITH_VALUE = frozenset(
    {
        "-n",
        "--namespace",
        "--context",
        "--kubeconfig",
        "--cluster",
        "--user",
        "-l",
        "--selector",
        "-f",
        "--filename",
        "--field-selector",
        "-o",
        "--output",
        "-c",
        "--container",
        "--grace-period",
        "--timeout",
        "-s",
        "--server",
        "--token",
        "--as",
        "--cascade",
        "-k",
        "--kustomize",
        "-p",
    }
)
_KUBE_READ_ONLY = frozenset(
    {
        "get",
        "describe",
        "logs",
        "top",
        "explain",
        "api-resources",
        "api-versions",
        "version",
        "cluster-info",
        "diff",
        "auth",
        "events",
        "wait",
        "completion",
        "plugin",
        "kustomize",
        "config",
        "port-forward",
    }
)
_KUBE_MUTATING = frozenset(
    {
        "apply",
        "create",
        "replace",
        "patch",
        "scale",
        "edit",
        "set",
        "label",
        "annotate",
        "rollout",
        "drain",
        "cordon",
        "uncordon",
        "taint",
        "exec",
        "run",
        "expose",
        "autoscale",
        "cp",
        "attach",
        "debug",
    }
)
_NAMESPACE_TYPES = frozenset({"namespace", "namespaces", "ns"})


def matches(name: str, patterns: tuple[str, ...]) -> bool:
    """Whether a name matches any glob pattern (`release/*`)."""
    return any(fnmatchcase(name, p) for p in patterns)


def _git(inv: Invocation, policy: CommandsPolicy) -> list[Hit]:
    argv = inv.argv[1:]
    i = 0
    while i < len(argv) and argv[i].startswith("-"):
        i += 2 if argv[i] in _GIT_GLOBAL_WITH_VALUE else 1
    if i >= len(argv) or argv[i] != "push":
        return []
    args = parse_args(argv[i + 1 :], frozenset({"--repo", "--receive-pack", "--exec", "-o", "--push-option"}))
    force = args.has("-f", "--force")
    lease = any(f.startswith("--force-with-lease") for f in args.flags)
    every = args.has("--mirror", "--all")
    delete = args.has("-d", "--delete")
    refspecs = args.positional[1:]
    targets: list[tuple[str, bool]] = []
    for spec in refspecs:
        plus = spec.startswith("+")
        src, colon, dst = spec.lstrip("+").partition(":")
        branch = (dst if colon else src).removeprefix("refs/heads/")
        if colon and not src:
            targets.append((branch, True))
            delete = True
        else:
            targets.append((branch, plus))
    protected = policy.protected_branches
    fix = "open a pull request, or force-push only your own feature branch with --force-with-lease"
    if delete:
        names = [b for b, _ in targets] or args.positional[1:]
        if any(matches(b, protected) for b in names):
            return [deny("delete-protected-branch", f"git push deletes the protected branch {names[0]}", fix)]
        return []
    if not (force or lease or every or any(p for _, p in targets)):
        return []
    if every and (force or args.has("--mirror")):
        return [
            deny(
                "force-push-protected",
                "git push --mirror/--all --force rewrites every branch, the protected ones included",
                fix,
            )
        ]
    if not targets:
        if force:
            return [
                approve(
                    "force-push",
                    "git push --force of the current branch (not named, so it may be protected)",
                    fix,
                    "high",
                )
            ]
        return []
    for branch, plus in targets:
        if matches(branch, protected) and (force or lease or plus):
            return [
                deny(
                    "force-push-protected",
                    f"force-push to the protected branch {branch} rewrites shared history",
                    fix,
                )
            ]
    if force or any(p for _, p in targets):
        return [
            approve(
                "force-push",
                f"git push --force to {targets[0][0]} discards remote commits without "
                "checking (prefer --force-with-lease)",
                fix,
            )
        ]
    return []


def _kube(inv: Invocation, policy: CommandsPolicy) -> tuple[list[Hit], list[Nested]]:
    argv = inv.argv[1:]
    if inv.program == "microk8s" and argv[:1] == ("kubectl",):
        argv = argv[1:]
    dash = argv.index("--") if "--" in argv else len(argv)
    args = parse_args(argv[:dash], _KUBE_WITH_VALUE)
    nested = [Nested("argv", argv=tuple(argv[dash + 1 :]))] if dash < len(argv) - 1 else []
    verb = args.positional[0] if args.positional else ""
    ns = args.value("-n", "--namespace") or ""
    context = args.value("--context") or ""
    prod = (bool(ns) and matches(ns, policy.production_namespaces)) or (
        bool(context) and matches(context, policy.production_namespaces)
    )
    ns = ns or (context and f"(context {context})")
    if verb in _KUBE_READ_ONLY or not verb or args.has("--help", "-h"):
        return [], nested
    if any(f.startswith("--dry-run") for f in args.flags) and args.value("--dry-run") != "none":
        return [], nested  # client or server dry run: nothing is changed
    fix = "delete one named resource in a non-production namespace, or ask an operator"
    if verb == "delete":
        objs = args.positional[1:]
        if any(o.lower() in _NAMESPACE_TYPES or o.lower().split("/")[0] in _NAMESPACE_TYPES for o in objs):
            return [
                deny("kubectl-delete-namespace", "kubectl deletes a namespace and everything in it", fix)
            ], nested
        if args.has("--all", "-A", "--all-namespaces"):
            return [
                deny("kubectl-delete-all", "kubectl delete --all removes every resource of that kind", fix)
            ], nested
        if prod:
            return [
                deny("production-delete", f"kubectl deletes resources in the production namespace {ns}", fix)
            ], nested
        what = " ".join(objs) or args.value("-f", "--filename", "-l", "--selector") or "resources"
        return [
            approve("kubectl-delete", f"kubectl deletes {what} in namespace {ns or '(default)'}", fix)
        ], nested
    if verb in _KUBE_MUTATING and prod:
        return [
            approve(
                "production-change",
                f"kubectl {verb} changes the production namespace {ns}",
                "change production through the deployment pipeline",
            )
        ], nested
    return [], nested


def _helm(inv: Invocation, policy: CommandsPolicy) -> list[Hit]:
    args = parse_args(inv.argv[1:], frozenset({"-n", "--namespace", "--kube-context", "--kubeconfig"}))
    verb = args.positional[0] if args.positional else ""
    ns = args.value("-n", "--namespace") or ""
    if verb in ("uninstall", "delete", "del", "un"):
        if ns and matches(ns, policy.production_namespaces):
            return [
                deny(
                    "production-delete",
                    f"helm uninstalls a release in the production namespace {ns}",
                    "ask an operator",
                )
            ]
        return [
            approve("helm-uninstall", "helm uninstall deletes a release and its resources", "ask an operator")
        ]
    return []


def _terraform(inv: Invocation) -> list[Hit]:
    argv = [a for a in inv.argv[1:] if not a.startswith("-chdir")]
    positional = [a for a in argv if not a.startswith("-")]
    verb = positional[0] if positional else ""
    if verb == "run-all" and len(positional) > 1:
        verb = positional[1]
    prog = inv.program
    fix = "run `plan` and let an operator apply it"
    if verb == "destroy" or (verb == "apply" and ("-destroy" in argv or "--destroy" in argv)):
        return [deny("terraform-destroy", f"{prog} destroy deletes every resource of the configuration", fix)]
    if prog in ("pulumi", "cdk") and verb == "destroy":
        return [deny("terraform-destroy", f"{prog} destroy deletes every resource of the stack", fix)]
    if verb in ("apply", "up", "deploy", "import") or positional[:2] in (
        ["state", "rm"],
        ["workspace", "delete"],
    ):
        return [approve("infrastructure-change", f"{prog} {verb} changes real infrastructure", fix)]
    return []


def judge(inv: Invocation, policy: CommandsPolicy) -> tuple[list[Hit], list[Nested]]:
    """The Hits of a tool invocation, and the code it runs (SQL strings, `kubectl exec` argv)."""
    prog = inv.program
    if prog == "git":
        return _git(inv, policy), []
    if prog in ("kubectl", "oc", "k", "microk8s"):
        return _kube(inv, policy)
    if prog == "helm":
        found = _helm(inv, policy)
        return (found or deploy.publish(inv)), []
    if prog in ("terraform", "tofu", "terragrunt", "pulumi", "cdk"):
        return _terraform(inv), []
    if prog in SQL_CLIENTS:
        return [], sql_client(inv)
    if prog in ("docker", "podman", "nerdctl"):
        hits, nested = deploy.docker(inv)
        return hits + deploy.publish(inv), nested
    if prog in ("redis-cli", "valkey-cli", "keydb-cli", "etcdctl", "consul", "cqlsh"):
        return host.key_value(inv)
    found = deploy.publish(inv) or cloud.object_store(inv)
    if found:
        return found, []
    if prog in cloud.CLOUD_CLIS:
        found = cloud.control_plane(inv)
    return found or deploy.sync(inv, policy), []
