"""The text files of a repository at one commit, from the tarball GitHub serves (or `git archive` writes)."""

from __future__ import annotations

import io
import tarfile

MAX_FILE_BYTES = 1 << 20
"""A file larger than this is left out: a tester gets source, not build outputs or data."""


def text_files(data: bytes, *, strip_top: bool = True) -> dict[str, str]:
    """Each regular UTF-8 file of a (gzipped) tar by its path, without the `<owner>-<repo>-<sha>/` folder
    GitHub puts everything under when `strip_top`; binary, oversized and link entries are left out."""
    found: dict[str, str] = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as archive:
        for member in archive:
            if not member.isreg() or member.size > MAX_FILE_BYTES:
                continue
            path = member.name.split("/", 1)[1] if strip_top and "/" in member.name else member.name
            if not path or path.startswith("/") or ".." in path.split("/"):
                continue
            extracted = archive.extractfile(member)
            if extracted is None:
                continue
            try:
                found[path] = extracted.read().decode("utf-8")
            except UnicodeDecodeError:
                continue
    return found
