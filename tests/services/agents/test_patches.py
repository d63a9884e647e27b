"""Unified diffs: what patches.diff writes, git applies; what it reads is applied strictly; JUnit reports."""

from __future__ import annotations

import random
import subprocess
from pathlib import Path

import pytest

from services.agents import patches
from services.agents.roles import junit


def _text(rng: random.Random) -> str:
    lines = [rng.choice(["a", "b", "", "x y", "\r z", "\tq"]) for _ in range(rng.randint(0, 9))]
    return "\n".join(lines) + ("\n" if rng.random() < 0.6 else "")


def _changed(rng: random.Random, text: str) -> str:
    lines = text.split("\n")
    lines.insert(rng.randint(0, len(lines)), "new")
    if len(lines) > 2 and rng.random() < 0.5:
        del lines[rng.randint(0, len(lines) - 1)]
    return "\n".join(lines)


def _pairs(seed: int, n: int) -> list[tuple[dict[str, str], dict[str, str]]]:
    rng = random.Random(seed)
    found = []
    for _ in range(n):
        before = {f"f{i}.txt": _text(rng) for i in range(3) if rng.random() < 0.8}
        after = {}
        for i in range(4):
            path = f"f{i}.txt"
            if rng.random() < 0.8:
                after[path] = (
                    _changed(rng, before[path]) if path in before and rng.random() < 0.6 else _text(rng)
                )
        found.append((before, after))
    return found


def test_a_diff_applied_to_the_files_before_gives_the_files_after() -> None:
    for before, after in _pairs(1, 300):
        diff = patches.diff(before, after)
        assert (patches.apply(before, diff) if diff else before) == after, diff


@pytest.mark.parametrize("seed", [2, 3])
def test_git_applies_the_diffs_it_writes(seed: int, tmp_path: Path) -> None:
    for n, (before, after) in enumerate(_pairs(seed, 6)):
        root = tmp_path / str(n)
        root.mkdir()
        for path, text in before.items():
            (root / path).write_bytes(text.encode())
        (tmp_path / f"{n}.patch").write_text(patches.diff(before, after))
        subprocess.run(
            ["git", "apply", str(tmp_path / f"{n}.patch")], cwd=root, check=True, capture_output=True
        )
        assert {p.name: p.read_bytes().decode() for p in root.iterdir()} == after


def test_a_hunk_is_found_where_the_file_moved_but_never_on_other_content() -> None:
    diff = patches.file_diff("a.py", "one\ntwo\nthree\n", "one\n2\nthree\n")
    assert patches.apply({"a.py": "zero\none\ntwo\nthree\n"}, diff) == {"a.py": "zero\none\n2\nthree\n"}
    with pytest.raises(patches.PatchError, match=r"a\.py: hunk 1 .* not there"):
        patches.apply({"a.py": "one\nTWO\nthree\n"}, diff)


def test_a_model_s_diff_without_git_headers_and_with_trimmed_blank_lines_applies() -> None:
    diff = "--- a/m.py\n+++ b/m.py\n@@ -1,3 +1,3 @@\n x = 1\n\n-y = 2\n+y = 3\n"
    assert patches.apply({"m.py": "x = 1\n\ny = 2\n"}, diff) == {"m.py": "x = 1\n\ny = 3\n"}


@pytest.mark.parametrize(
    ("files", "diff", "problem"),
    [
        ({"a": "x\n"}, patches.file_diff("a", None, "y\n"), "creates it, but it exists"),
        ({}, patches.file_diff("a", "x\n", "y\n"), "no such file"),
        ({}, "just prose", "no file sections"),
        ({"a": "x\n"}, "--- a/a\n+++ b/a\n@@ -1,2 +1,2 @@\n x\n", "ends before"),
    ],
)
def test_a_diff_that_does_not_fit_says_why(files: dict[str, str], diff: str, problem: str) -> None:
    with pytest.raises(patches.PatchError, match=problem):
        patches.apply(files, diff)


def test_the_added_lines_are_numbered_in_the_new_file() -> None:
    diff = patches.diff(
        {"a": "1\n2\n3\n4\n5\n6\n7\n8\n9\n"}, {"a": "1\nnew\n2\n3\n4\n5\n6\n7\n8\nlast\n9\n", "b": "x\n"}
    )
    assert patches.added_lines(diff) == {"a": {2, 10}, "b": {1}}


JUNIT = b"""<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" tests="4">
<testcase classname="tests.test_a" name="test_ok" time="0.001"/>
<testcase classname="tests.test_a" name="test_bad"><failure message="assert 1 == 2">trace</failure></testcase>
<testcase classname="tests.test_a" name="test_setup"><error message="fixture broke"/></testcase>
<testcase classname="tests.test_a" name="test_later"><skipped message="not yet"/></testcase>
</testsuite></testsuites>"""


def test_a_junit_report_gives_each_test_s_outcome_and_the_counts() -> None:
    cases = junit.cases(JUNIT)
    assert cases is not None
    assert [(c.name, c.outcome, c.message) for c in cases] == [
        ("tests.test_a::test_ok", "passed", ""),
        ("tests.test_a::test_bad", "failed", "assert 1 == 2"),
        ("tests.test_a::test_setup", "errored", "fixture broke"),
        ("tests.test_a::test_later", "skipped", "not yet"),
    ]
    assert junit.counts(cases) == {"passed": 1, "failed": 1, "errored": 1, "skipped": 1}


@pytest.mark.parametrize(
    "report",
    [
        b"<project><modelVersion/></project>",  # XML, but no test report
        b"not xml",
        b'<!DOCTYPE t [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
        b'<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">'
        b'<!ENTITY e "&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;"><!ENTITY f "&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;">'
        b'<!ENTITY g "&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;"><!ENTITY h "&g;&g;&g;&g;&g;&g;&g;&g;&g;&g;">]>'
        b"<testsuite><testcase name='&h;'/></testsuite>",  # billion laughs: expat refuses it
    ],
)
def test_what_is_no_junit_report_is_left_alone(report: bytes) -> None:
    assert junit.cases(report) is None
