"""The review workflow's builder (pure): its id, steps, labels and the request size limit."""

from __future__ import annotations

import dataclasses
import re

import pytest

from maestro import codec
from maestro.github import review
from proto.v1.workflows import WORKFLOW_ID_PATTERN, Workflow

HEAD = "a" * 40
BASE = "b" * 40
CHANGE = review.Change(
    tenant="acme", repo="acme/widgets", head_sha=HEAD, base_sha=BASE, number=7, title="Fix"
)
DIFF = "diff --git a/w.py b/w.py\n+++ b/w.py\n@@ -0,0 +1 @@\n+x = 1\n"
FILES = {"w.py": "x = 1\n", "tests/test_w.py": "def test_w(): pass\n"}


def test_the_workflow_reviews_the_diff_and_tests_the_files_at_the_head() -> None:
    workflow = review.build(CHANGE, DIFF, FILES, ["pytest -q"], max_request_bytes=786_432)
    assert workflow.tenant == "acme" and re.match(WORKFLOW_ID_PATTERN, workflow.id)
    assert workflow.labels == {"repo": "acme/widgets", "commit": HEAD, "pr": "7", "origin": "github"}
    reviewer, tester = workflow.steps
    assert (reviewer.name, reviewer.role) == ("review", "reviewer")
    assert (tester.name, tester.role) == ("test", "tester")
    assert [(f.path, f.content) for f in reviewer.context] == [(review.DIFF_PATH, DIFF)]
    assert {f.path: f.content for f in tester.context} == FILES and tester.commands == ["pytest -q"]
    assert "#7 of acme/widgets" in reviewer.prompt and HEAD in tester.prompt
    # It decodes as a workflow submitted from outside would (a strict public edge).
    assert codec.decode_strict(Workflow, codec.encode(workflow)) == workflow


def test_the_id_is_one_per_repository_pull_request_and_head() -> None:
    same = review.build(CHANGE, DIFF, FILES, ["pytest -q"], max_request_bytes=786_432)
    assert same.id == review.workflow_id("acme/widgets", 7, HEAD)
    assert same.id == review.workflow_id("Acme/Widgets", 7, HEAD)
    others = {
        review.workflow_id("acme/gadgets", 7, HEAD),
        review.workflow_id("acme/widgets", 8, HEAD),
        review.workflow_id("acme/widgets", 7, "c" * 40),
    }
    assert same.id not in others and len(others) == 3
    longest = review.workflow_id("o" * 100 + "/" + "r" * 100, 9_999_999, HEAD)
    assert re.match(WORKFLOW_ID_PATTERN, longest) and review.is_review(longest)
    assert not review.is_review("w0123")


def test_a_local_change_without_commands_has_no_test_step_and_no_pr_label() -> None:
    local = dataclasses.replace(CHANGE, number=0, origin="local")
    workflow = review.build(local, DIFF, FILES, [], max_request_bytes=786_432)
    assert [s.name for s in workflow.steps] == ["review"]
    assert workflow.labels == {"repo": "acme/widgets", "commit": HEAD, "origin": "local"}


def test_files_beyond_the_request_limit_are_refused_naming_the_sizes() -> None:
    big = {"blob.txt": "x" * 200_000}
    too_large = r"test step's files at aaaaaaaaaaaa are about \d+ bytes; .* 100000"
    with pytest.raises(review.TooLarge, match=too_large):
        review.build(CHANGE, DIFF, big, ["pytest -q"], max_request_bytes=100_000)
