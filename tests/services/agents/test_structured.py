"""Structured answers: the schema and instruction sent, strict decoding, exactly one repair round, then a
non-retryable `invalid_output` failure of the role. A scripted backend stands in for the model server."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import msgspec
import pytest

from maestro import codec
from proto.v1 import ContextFile, Role, TaskRequest, Usage
from proto.v1.work import FileChanges
from proto.v1.workflows import Plan
from services.agents import patches
from services.agents.backends.base import Completion, Schema, Turn
from services.agents.backends.metered import Metered
from services.agents.backends.structured import InvalidAnswer, ask, files_prompt, prompt_files
from services.agents.roles import RUNNERS
from services.agents.sandbox import Sandbox


@dataclass(frozen=True)
class Call:
    prompt: str
    system: str
    schema: Schema | None
    history: tuple[Turn, ...]


@dataclass
class Scripted:
    """A backend that answers each call with the next scripted text and records what it was asked."""

    answers: list[str]
    calls: list[Call] = field(default_factory=list)

    def serves(self, model: str | None) -> bool:
        return True

    async def complete(
        self,
        role: Role,
        prompt: str,
        model: str | None,
        *,
        system: str = "",
        schema: Schema | None = None,
        history: Sequence[Turn] = (),
    ) -> Completion:
        self.calls.append(Call(prompt, system, schema, tuple(history)))
        text = self.answers[len(self.calls) - 1]
        return Completion(text, Usage(model="scripted", input_tokens=10, output_tokens=len(text)))


PLAN = '{"subtasks": [{"name": "build", "role": "implementer", "prompt": "Build it"}]}'


async def test_a_valid_answer_is_decoded_with_one_call_that_sent_the_schema() -> None:
    backend = Scripted([PLAN])
    answer = await ask(backend, "planner", "Plan it", None, Plan, system="You plan.")
    assert answer.value.subtasks[0].name == "build" and not answer.repaired
    (call,) = backend.calls
    assert call.schema == msgspec.json.schema(Plan) and call.history == ()
    assert call.system.startswith("You plan.") and '"subtasks"' in call.system
    assert answer.usage == Usage(model="scripted", input_tokens=10, output_tokens=len(PLAN))


async def test_a_fenced_json_block_is_unwrapped() -> None:
    answer = await ask(Scripted([f"```json\n{PLAN}\n```"]), "planner", "Plan it", None, Plan, system="")
    assert answer.value.subtasks[0].prompt == "Build it"


async def test_an_invalid_answer_gets_one_repair_round_with_the_error_and_the_turns() -> None:
    backend = Scripted(['{"subtasks": []}', PLAN])
    answer = await ask(backend, "planner", "Plan it", None, Plan, system="You plan.")
    assert answer.repaired and answer.value.subtasks[0].name == "build"
    _, second = backend.calls
    assert second.history == (Turn("user", "Plan it"), Turn("assistant", '{"subtasks": []}'))
    assert "subtasks" in second.prompt and "length >= 1" in second.prompt  # what was wrong, from msgspec
    assert "Answer again with only the JSON" in second.prompt
    assert answer.usage.input_tokens == 20  # both calls


async def test_unknown_fields_are_invalid_too() -> None:
    backend = Scripted(['{"subtasks": [{"name": "a", "role": "tester", "prompt": "p", "need": []}]}', PLAN])
    await ask(backend, "planner", "Plan it", None, Plan, system="")
    assert "need" in backend.calls[1].prompt


async def test_still_invalid_after_the_repair_round_raises_with_both_calls_usage() -> None:
    backend = Scripted(["not json", '{"subtasks": "no"}', PLAN])
    with pytest.raises(InvalidAnswer) as raised:
        await ask(backend, "planner", "Plan it", None, Plan, system="")
    assert len(backend.calls) == 2  # exactly one repair round
    assert "after one repair round" in str(raised.value) and raised.value.usage.input_tokens == 20


async def test_a_check_beyond_the_schema_counts_as_invalid() -> None:
    backend = Scripted([PLAN, PLAN.replace("build", "make")])
    answer = await ask(
        backend,
        "planner",
        "Plan it",
        None,
        Plan,
        system="",
        check=lambda p: "no build" if p.subtasks[0].name == "build" else None,
    )
    assert answer.value.subtasks[0].name == "make" and "no build" in backend.calls[1].prompt


async def test_a_role_whose_model_stays_invalid_fails_for_good_and_pays_for_both_calls() -> None:
    meter = Metered(Scripted(["{}", "still {}"]))
    request = TaskRequest(tenant="acme", role="planner", prompt="Plan it")
    result = await RUNNERS["planner"](request, meter, Sandbox(timeout_s=5))
    assert not result.ok and result.failure == "invalid_output"
    assert "planner answer was not valid after one repair round" in result.error
    assert meter.spent.input_tokens == 20 and result.usage.input_tokens == 20


async def test_a_plan_that_is_no_dag_is_sent_back_and_a_repaired_one_fans_out() -> None:
    cycle = (
        '{"subtasks": [{"name": "a", "role": "implementer", "prompt": "A", "needs": ["b"]},'
        ' {"name": "b", "role": "tester", "prompt": "B", "needs": ["a"], "commands": ["make test"]}]}'
    )
    backend = Scripted([cycle, PLAN])
    request = TaskRequest(tenant="acme", role="planner", prompt="Plan it", expand=True)
    result = await RUNNERS["planner"](request, backend, Sandbox(timeout_s=5))
    assert result.ok and codec.decode_strict(Plan, result.output).subtasks[0].name == "build"
    assert "subtasks: a cycle a -> b -> a" in backend.calls[1].prompt


async def test_a_diff_that_does_not_apply_is_repaired_and_then_applied() -> None:
    given = ContextFile(path="app.py", content="x = 1\ny = 2\n")
    wrong = FileChanges(diff=patches.file_diff("app.py", "x = 9\ny = 2\n", "x = 9\ny = 3\n"))
    right = FileChanges(diff=patches.file_diff("app.py", given.content, "x = 1\ny = 3\n"), summary="y is 3")
    backend = Scripted([msgspec.json.encode(wrong).decode(), msgspec.json.encode(right).decode()])
    request = TaskRequest(tenant="acme", role="implementer", prompt="Make y 3", context=[given])
    result = await RUNNERS["implementer"](request, backend, Sandbox(timeout_s=5))
    assert result.ok, result.error
    assert "does not apply" in backend.calls[1].prompt and "app.py: hunk 1" in backend.calls[1].prompt
    assert {f.path: f.content for f in result.files}["app.py"] == "x = 1\ny = 3\n"


async def test_rewriting_a_given_file_with_unrelated_content_is_never_applied() -> None:
    given = ContextFile(
        path="wc.py", content="import sys\n\n\ndef count(text):\n    return len(text.split())\n"
    )
    unrelated = FileChanges(files=[ContextFile(path="wc.py", content="print('hello')\n")])
    answer = msgspec.json.encode(unrelated).decode()
    backend = Scripted([answer, answer])
    request = TaskRequest(tenant="acme", role="implementer", prompt="Count words", context=[given])
    result = await RUNNERS["implementer"](request, backend, Sandbox(timeout_s=5))
    assert not result.ok and result.failure == "invalid_output"
    assert "wc.py: the answer replaces this file with content that keeps none of its lines" in result.error


async def test_the_doc_writer_may_change_documentation_only() -> None:
    code = FileChanges(files=[ContextFile(path="docs/use.md", content="# Use\n"), ContextFile(path="app.py")])
    docs = FileChanges(files=[ContextFile(path="docs/use.md", content="# Use\n")])
    backend = Scripted([msgspec.json.encode(code).decode(), msgspec.json.encode(docs).decode()])
    request = TaskRequest(tenant="acme", role="doc-writer", prompt="Document it")
    result = await RUNNERS["doc-writer"](request, backend, Sandbox(timeout_s=5))
    assert result.ok and [f.path for f in result.files] == ["docs/use.md", "changes.patch"]
    assert "app.py: the doc-writer changes documentation only" in backend.calls[1].prompt


async def test_a_diff_may_not_write_the_workflow_s_notes() -> None:
    note = FileChanges(diff=patches.file_diff(".maestro/steps/x.md", None, "forged\n"))
    answer = msgspec.json.encode(note).decode()
    request = TaskRequest(tenant="acme", role="implementer", prompt="Do it")
    result = await RUNNERS["implementer"](request, Scripted([answer, answer]), Sandbox(timeout_s=5))
    assert (
        not result.ok
        and ".maestro/steps/x.md: files under .maestro/ are the workflow's notes" in result.error
    )


async def test_code_that_does_not_compile_is_invalid() -> None:
    broken = msgspec.json.encode(FileChanges(files=[ContextFile(path="a.py", content="def f(:\n")])).decode()
    request = TaskRequest(tenant="acme", role="implementer", prompt="Write a")
    result = await RUNNERS["implementer"](request, Scripted([broken, broken]), Sandbox(timeout_s=5))
    assert not result.ok and result.failure == "invalid_output" and "a.py:1:" in result.error


async def test_a_proposed_command_the_commands_policy_denies_is_dropped_with_a_finding() -> None:
    proposed = FileChanges(
        files=[ContextFile(path="a.py", content="x = 1\n")], commands=["python -m pytest -q", "rm -rf /"]
    )
    request = TaskRequest(tenant="acme", role="implementer", prompt="Write a")
    backend = Scripted([msgspec.json.encode(proposed).decode()])
    result = await RUNNERS["implementer"](request, backend, Sandbox(timeout_s=5))
    assert result.ok
    suggested, dropped = result.output.split("Dropped commands:")
    assert "$ python -m pytest -q" in suggested and "rm -rf" not in suggested
    assert "dropped the proposed command 'rm -rf /'" in dropped and "[commands." in dropped


def test_files_go_into_a_prompt_and_come_back_out() -> None:
    files = [
        ContextFile(path="a/b.py", content="x = 1\n"),
        ContextFile(path="README.md", content="# T\n\nno newline"),
    ]
    head, found = prompt_files(files_prompt("Do it\nnow", files))
    assert head == "Do it\nnow" and found == files
