"""What a candidate value is: a published example, a stand-in, a reference to a secret manager, a name,
or random enough to be a secret. Pure functions on one short value (a candidate's secret, never the text).
"""

from __future__ import annotations

import base64
import binascii
import math
from collections import Counter

# Keys published in vendors' documentation and tutorials: they are examples, never leaks.
KNOWN_EXAMPLES: frozenset[str] = frozenset(
    {
        "AKIAIOSFODNN7EXAMPLE",
        "AKIAI44QH8DHBEXAMPLE",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY",
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2"
        "MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
        "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==",
        "xoxb-not-a-real-token-this-will-not-work",
        "sk_test_4eC39HqLyjWDarjtT1zdp7dc",  # Stripe's API reference
    }
)

# Words that mark a value as a stand-in: checked against the lower-cased value.
PLACEHOLDER_MARKERS: tuple[str, ...] = tuple(
    "example placeholder changeme change_me change-me dummy redacted your_ your- yourkey yourtoken "
    "replace_me replaceme insert notreal not_real not-a-real not_a_real fake sample xxxxx ***** • ... "
    "${ {{ $( %( #{".split()
)

# Whole values that are never secrets, lower-cased: words, types and defaults.
PLACEHOLDER_VALUES: frozenset[str] = frozenset(
    "password passw0rd passwd pass secret secrets token apikey api_key api-key admin root guest user "
    "username postgres mysql test testing none null nil undefined true false string str required "
    "optional default empty hidden unset todo tbd x-oauth-basic".split()
)

# How a reference to a secret manager starts: the value names where the secret is kept, not the secret.
# HashiCorp Vault (vault:, Vault Agent and the Vault provider's URIs), AWS Secrets Manager and SSM
# Parameter Store ARNs, Google Secret Manager resource names, 1Password secret references (op://),
# Azure Key Vault references (App Service's @Microsoft.KeyVault, SDK URIs), Doppler, Bitwarden, the
# sm:// / secretsmanager:// forms of external-secrets and Spring Cloud, and SOPS' encrypted values.
SECRET_REFERENCE_PREFIXES: tuple[str, ...] = (
    "vault:",
    "arn:aws:secretsmanager:",
    "arn:aws:ssm:",
    "arn:aws:kms:",
    "arn:aws-us-gov:secretsmanager:",
    "arn:aws-cn:secretsmanager:",
    "op://",
    "@microsoft.keyvault(",
    "azurekeyvault://",
    "keyvault://",
    "akv://",
    "sm://",
    "secretsmanager://",
    "secretmanager://",
    "gcpsm://",
    "gsm://",
    "awssm://",
    "ssm://",
    "doppler://",
    "bws://",
    "infisical://",
    "conjur://",
    "enc[aes256_gcm,",
    "sha256:",
    "sha512:",
    "sha1:",
    "sha256-",
    "sha384-",
    "sha512-",
    "{ssha}",
    "{sha}",
    "{bcrypt}",
    "{noop}",
    "{cipher}",
    # Publishable keys, public by design: Stripe's pk_, Mapbox's pk. tokens.
    "pk_live_",
    "pk_test_",
    "pk.eyj",
)


def entropy(value: str) -> float:
    """Shannon entropy of `value` in bits per character."""
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in Counter(value).values()) if n else 0.0


def is_placeholder(value: str) -> bool:
    """A documented example, a stand-in word, a template or a run of one character: not a secret."""
    if value in KNOWN_EXAMPLES:
        return True
    if len(value) > 256:
        # Stand-in words are short; a long stand-in is a run (`ops_eyJxxxx...`), counted in C.
        return value.count(value[-1]) * 2 > len(value)
    lower = value.lower()
    if lower in PLACEHOLDER_VALUES or any(marker in lower for marker in PLACEHOLDER_MARKERS):
        return True
    if lower.startswith("<") and lower.endswith(">"):
        return True
    return len(value) >= 8 and max(Counter(value).values()) * 2 > len(value)


def is_secret_reference(value: str) -> bool:
    """A value that says where a secret is kept (a secret manager's URI, ARN, resource name), or a digest."""
    lower = value.lower()
    if lower.startswith(SECRET_REFERENCE_PREFIXES):
        return True
    # Google Secret Manager: projects/<project>/secrets/<name>[/versions/<v>]
    parts = lower.split("/")
    return len(parts) >= 4 and parts[0] == "projects" and parts[2] == "secrets"


def is_variable(value: str) -> bool:
    """A value that stands for another: a shell or template variable, or a plain number."""
    if value.startswith("$") or (len(value) > 2 and value.startswith("%") and value.endswith("%")):
        return True
    opens = value.find("{")
    closes = value.find("}", opens)
    if opens >= 0 and closes > opens + 1 and value[opens + 1 : closes].replace(".", "_").isidentifier():
        return True  # a format field: `f"{self.token}"`, `"postgres://app:{password}@db"`
    return value.replace(".", "").replace("-", "").replace("_", "").isdigit()


# Letter pairs that almost never occur inside a word: under 3 in 100,000 of the pairs in the words of
# this repository's code and documentation (512,000 pairs). One in a name is a loanword or an
# abbreviation (`kv_store`, `postgres`); random letters hold several.
RARE_PAIRS: frozenset[str] = frozenset(
    (
        "aa ah aj aq bb bf bg bk bn bq bt bv bw bx bz cb cf cg cj cn cq cv cx cz df dh dj dq dv dw dz ek ez "
        "fb fc fd fg fh fj fk fm fn fp fq fv fw fx fz gb gd gf gj gq gw gx gz hb hc hf hg hh hj hk hn hq hv "
        "hw hx hz ih ij iq iu iw iy ja jb jc jd jf jg jh ji jj jk jl jm jn jp jq jr jt jv jw jx jy jz kb kc "
        "kf kg kh kj kk km kq kr kt kv kw kx ky kz lb lc lh lj lw lx lz mc mf mg mh mj mq mr mv mw mx my mz "
        "nb nh nj nq nx nz oq pb pc pg pj pk pn pq pv px pz qa qb qc qd qe qf qg qh qi qj qk qm qn qo qp qq "
        "qr qs qt qv qw qx qy qz rh rj rq rx rz sb sf sj sn sv sx sz tg tj tk tn tq tv tx tz uh uj uk uq uu "
        "uv uw ux uy uz vb vc vd vf vg vh vj vk vl vm vn vp vq vr vu vv vw vx vy vz wb wc wf wg wj wk wm wp "
        "wq wu wv ww wx wy wz xb xd xg xh xj xk xl xm xn xo xq xr xs xu xv xw xx xy xz yb yd yf yg yh yj yk "
        "yq yr yu yv yx yy za zb zc zd zf zg zh zj zk zl zm zn zp zq zr zs zt zv zw zx zy zz "
    ).split()
)


def _rare_pairs(segment: str) -> int:
    lower = segment.lower()
    return sum(lower[i : i + 2] in RARE_PAIRS for i in range(len(lower) - 1))


def _segments(word: str) -> list[str]:
    """`word` cut where a name's words meet: at `_` and `-`, around digit runs, at a lower-to-upper step."""
    out: list[str] = []
    current = ""
    for c in word:
        if c in "_-":
            out.append(current)
            current = ""
            continue
        if current and (c.isdigit() != current[-1].isdigit() or (c.isupper() and current[-1].islower())):
            out.append(current)
            current = ""
        current += c
    out.append(current)
    return [s for s in out if s]


def _is_word(segment: str) -> bool:
    """A segment a name is made of: `word`, `Word`, `WORD`, `HTTPServer`'s `HTTPServer`; not `GPOQGg`."""
    lower = segment.lower()
    tail = len(segment) - len(segment.lstrip("ABCDEFGHIJKLMNOPQRSTUVWXYZ"))
    if len(segment) - tail == 1 and tail >= 2:
        return False  # capitals then one small letter: how random case looks
    if len(lower) <= 4:
        return True  # an abbreviation: `cfg`, `dlq`, `http`
    vowels = sum(c in "aeiouy" for c in lower)
    run = longest = 0
    for c in lower:
        run = 0 if c in "aeiouy" else run + 1
        longest = max(longest, run)
    if len(lower) >= 10:
        # A long word without a break is rare in a name, and English holds a third of vowels.
        return vowels * 10 >= len(lower) * 3 and longest <= 3
    return vowels * 6 >= len(lower) and longest <= 4


def is_name(word: str) -> bool:
    """An identifier made of words (`userPasswordFromConfig`, `DEFAULT_TOKEN`), not random characters.

    Measured on the 3,004 identifiers of 8 to 30 characters in this repository's services and maestro
    code against 3,000 random values of 8 to 24 characters: 3% of the names are taken for random (they
    must still pass the entropy bar to be reported), and 2.5% of random letters (1% of random letters
    and digits) for names. Random case switches every two characters or so (an average word under 3),
    and random letters hold rare letter pairs, too few vowels or too many consonants in a row.
    """
    segments = _segments(word)
    if not segments:
        return False
    # snake_case in one case may be made of abbreviations (`cl_api_key`); switching case may not.
    one_case = "_" in word and (word.islower() or word.isupper())
    if not one_case and sum(len(s) for s in segments) / len(segments) < 3:
        return False
    if sum(_rare_pairs(s) for s in segments if len(s) > 2) > 1:  # `fw_`, `kv_`: prefixes may have theirs
        return False
    return all(s.isdigit() or _is_word(s) for s in segments)


def _is_path(value: str) -> bool:
    """A file path (`/run/secrets/db`, `~/.aws/credentials`); not base64 that starts with `/`."""
    if not value.startswith(("/", "./", "~/", "../")) or value.endswith("="):
        return False
    # A path's long parts are names (`credentials.json`); a base64 value's are random.
    parts = [p.split(".", 1)[0].replace("-", "_") for p in value.split("/") if len(p) >= 12]
    return all(p.isidentifier() and is_name(p) for p in parts)


def is_reference(value: str) -> bool:
    """A value that names something rather than holds it: a variable, an attribute, a path, a name."""
    if is_variable(value) or _is_path(value) or is_secret_reference(value):
        return True
    if value[:1] in ("@", "&", "*"):
        # A decorator, a YAML anchor or alias, an address, a dereference: a name after the sigil is a
        # reference, random characters after it are a value that happens to start with one.
        value = value[1:]
        if not value or value[:1] in ("@", "&", "*"):
            return True
    if "." in value and all(part.isidentifier() for part in value.split(".")):
        return True  # module.attribute
    head = value.split("(", 1)[0].split("[", 1)[0]
    if head != value and head and all(part.isidentifier() for part in head.split(".")):
        return True  # a call or a subscript: `get_secret("db")`, `os.environ['API_KEY']`
    word = value.replace("-", "_")
    if word[:1].isdigit() or "." in word:
        # A kebab-case identifier with a version or a number in it: `389-exception`, `3d-slicer-1.0`.
        word = "v" + word.replace(".", "_")
    # A name has few digits; a random token has many (a hex key is lower-case but a quarter digits).
    if word.isidentifier() and sum(c.isdigit() for c in value) * 5 <= len(value):
        # Quoted or not, words are a name or a stand-in, random characters are a value.
        return is_name(word)
    return False


def looks_secret(value: str, quoted: bool, after: str, min_entropy: float) -> bool:
    """A generic value worth reporting: long enough, no spaces, not a name or a call, and random enough."""
    if len(value) < (6 if quoted else 8) or any(c.isspace() for c in value):
        return False
    if is_reference(value) or (not quoted and after == "("):
        return False
    return entropy(value) >= min_entropy + (0 if quoted else 0.5)


def basic_credentials(value: str) -> tuple[str, str] | None:
    """`user:password` from a base64 `auth` value (Docker's config.json, HTTP Basic), or None."""
    try:
        decoded = base64.b64decode(value + "=" * (-len(value) % 4), validate=True).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    user, colon, password = decoded.partition(":")
    if not colon or not password or not decoded.isprintable():
        return None
    return user, password


_TEXT_BYTES = bytes(range(32, 127)) + b"\r\n\t"


def decoded_text(value: str) -> str | None:
    """`value` decoded from base64 (standard or URL-safe) as printable text, or None."""
    padded = value + "=" * (-len(value) % 4)
    try:
        raw = base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        return None
    # Deleting every printable byte leaves nothing of text: one pass in C, not one per character.
    return None if raw.translate(None, _TEXT_BYTES) else raw.decode("ascii")
