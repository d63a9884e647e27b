"""Rules for cloud control planes and object stores: deleting what a cloud account runs or stores.

Every cloud CLI names an operation by a command path (`aws rds delete-db-instance`, `gcloud sql instances
delete`, `az group delete`, `doctl compute droplet delete`, `aliyun ecs DeleteInstance`, `heroku
apps:destroy`). The path is read up to the first option; an operation whose verb deletes, terminates or
destroys is denied when it names an account-level resource (stack, instance, database, project, resource
group, cluster, bucket, ...) and needs approval otherwise. Read-only paths (describe, list, get), `help`,
`--help` and dry runs (`--dry-run`, `--what-if`) are allowed. Recursive object-store deletes (`aws s3 rm
--recursive`, `gsutil rm -r`, `rclone purge`, `mc rm -r --force`) are denied: unlike a sync, nothing
in the workspace stands for what they remove.

Sources: the command references of the AWS CLI v2, gcloud, az, doctl, oci, ibmcloud, aliyun, heroku,
flyctl, hcloud, linode-cli, scw, openstack, eksctl and MinIO `mc`.
"""

from __future__ import annotations

import re2

from maestro.policy.policies.commands.args import parse_args
from maestro.policy.policies.commands.hits import Hit, approve, deny
from maestro.policy.policies.commands.words import Invocation

CLOUD_CLIS = frozenset(
    {
        "aws",
        "gcloud",
        "az",
        "doctl",
        "oci",
        "ibmcloud",
        "ic",
        "aliyun",
        "heroku",
        "flyctl",
        "fly",
        "hcloud",
        "linode-cli",
        "scw",
        "openstack",
        "eksctl",
        "vercel",
        "netlify",
        "firebase",
        "supabase",
        "railway",
        "exo",
        "upcloud",
        "vultr-cli",
        "civo",
        "tccli",
        "gh",
    }
)
# Options that take no value, so the word after them is the command path, not their value.
_BOOLEAN = frozenset(
    {
        "--quiet",
        "-q",
        "--debug",
        "--verbose",
        "--yes",
        "-y",
        "--force",
        "-f",
        "--no-cli-pager",
        "--no-paginate",
        "--async",
        "--confirm",
        "--all",
        "--recursive",
        "-r",
    }
)
_DELETE_VERB = re2.compile(
    r"^(?:delete|destroy|terminate|remove|rm|purge|rb|drop|uninstall|wipe|release|reset|"
    r"schedule-key-deletion|disable-key)(?:[-_].*)?$"
    r"|^(?:Delete|Terminate|Release|Remove|Destroy|Purge|Drop)[A-Z]\w*$"  # aliyun, tccli: DeleteInstance
    r"|^[\w-]+-(?:delete|rm|destroy|remove)$"
)
_HEAVY = re2.compile(
    r"(?i)stack|instance|server|droplet|machine|vm\b|vms\b|linode|db|database|sql|rds|dynamodb|table|"
    r"keyspace|cluster|project|organization|account|group|bucket|rb|storage|volume|disk|snapshot|"
    r"file-system|filesystem|vpc|network|zone|namespace|app|apps|site|vault|keyvault|secret|key|"
    r"repository|registry|domain|kubernetes|\bks\b|eks|gke|aks|container|function|service|postgres|"
    r"redis|mongo|space|environment|env\b|workspace|tenant|subscription|rg\b|repo|firestore|collection"
)
_READ_ONLY = re2.compile(r"(?i)^(?:describe|list|get|show|ls|info|status|view|export|wait|help)(?:[-_:].*)?$")
_DRY_RUN = frozenset({"--dry-run", "--dryrun", "--what-if", "--preview", "--validate-only", "--noop"})
_FIX = "delete cloud resources through the reviewed infrastructure pipeline, or ask an operator"
_STORE_FIX = "delete the specific objects you created, or ask an operator"


def command_path(argv: tuple[str, ...], limit: int = 5) -> list[str]:
    """The words naming a CLI operation (`compute instances delete NAME`), global options skipped."""
    path: list[str] = []
    i = 1
    while i < len(argv) and len(path) < limit:
        a = argv[i]
        if a.startswith("-"):
            if not path and "=" not in a and a not in _BOOLEAN and i + 1 < len(argv):
                i += 1  # a global option's value (`aws --region eu-west-1 ...`)
            elif path:
                break
            i += 1
            continue
        path.append(a)
        i += 1
    return path


def _deletes(word: str, program: str) -> bool:
    """Whether a command-path word names a delete (`delete-stack`, `DeleteInstance`, `batch-delete-image`)."""
    if word == "reset":
        return program == "heroku"  # `heroku pg:reset` empties a database; `gcloud ... reset` reboots
    parts = word.split("-")
    batch = parts[0] in ("batch", "bulk", "force") and parts[1:2] in (["delete"], ["remove"], ["terminate"])
    return batch or bool(_DELETE_VERB.match(word))


def control_plane(inv: Invocation) -> list[Hit]:
    """A cloud CLI deleting a resource of the account: denied for whole resources, approved otherwise."""
    argv = inv.argv
    if set(argv) & (_DRY_RUN | {"--help", "-h"}):
        return []
    path = command_path(argv)
    words = [p for w in path for p in w.split(":")]  # heroku `apps:destroy`, firebase `projects:delete`
    verb_at = next((k for k, w in enumerate(words) if _deletes(w, inv.program)), -1)
    if verb_at < 0 or any(_READ_ONLY.match(w) for w in words[:verb_at]) or "help" in words:
        return []
    what = " ".join(path)
    if inv.program == "aws" and words[:1] == ["s3"]:
        return []  # object storage: judged by object_store
    if any(_HEAVY.search(w) for w in words[: verb_at + 2]) or inv.program in ("heroku", "fly", "flyctl"):
        return [deny("cloud-delete", f"{inv.program} {what} deletes a cloud resource and its data", _FIX)]
    return [approve("cloud-delete", f"{inv.program} {what} deletes part of a cloud account", _FIX, "high")]


def object_store(inv: Invocation) -> list[Hit]:
    """Recursive deletes in object storage (S3, GCS, Azure Blob, rclone remotes, MinIO)."""
    prog, argv = inv.program, inv.argv
    if set(argv) & (_DRY_RUN | {"--help", "-h", "-n"}) and prog in ("aws", "gcloud", "rclone", "az"):
        return []
    path = command_path(argv, 3)
    found = ""
    if prog == "aws" and path[:2] == ["s3", "rm"] and "--recursive" in argv:
        found = "aws s3 rm --recursive"
    elif prog == "aws" and path[:2] == ["s3", "rb"] and "--force" in argv:
        found = "aws s3 rb --force"
    elif prog == "gsutil":
        sub_at = next((i for i, a in enumerate(argv[1:], start=1) if not a.startswith("-")), 0)
        rest = parse_args(argv[sub_at + 1 :], frozenset({"-x", "-c", "-e"})) if sub_at else None
        if rest and argv[sub_at] == "rm" and rest.has("-r", "-R", "-a"):
            found = "gsutil rm -r"
        elif rest and argv[sub_at] == "rb" and rest.has("-f"):
            found = "gsutil rb -f"
    elif prog == "gcloud" and path[:2] == ["storage", "rm"] and {"-r", "-R", "--recursive"} & set(argv):
        found = "gcloud storage rm -r"
    elif prog == "az" and path[:3] in (["storage", "blob", "delete-batch"], ["storage", "fs", "delete"]):
        found = f"az {' '.join(path[:3])}"
    elif prog == "rclone" and path[:1] and path[0] in ("purge", "delete") and _remote(path[1:]):
        found = f"rclone {path[0]}"
    elif prog in ("mc", "mcli") and path[:1] == ["rm"] and {"-r", "--recursive"} & set(argv):
        found = "mc rm -r"
    elif prog in ("mc", "mcli") and path[:1] == ["rb"]:
        found = "mc rb"
    elif prog == "s3cmd" and path[:1] in (["del"], ["rm"], ["rb"]) and {"-r", "--recursive"} & set(argv):
        found = f"s3cmd {path[0]} -r"
    if not found:
        return []
    return [deny("object-store-delete", f"{found} deletes every object under the prefix", _STORE_FIX)]


def _remote(args: list[str]) -> bool:
    """Whether an rclone target is a remote (`name:path`), not a local directory."""
    return any(re2.match(r"^[A-Za-z0-9_.-]+:", a) for a in args)
