"""The commands family: judge each proposed shell command by what it would really run.

`family` is the entry (check, judge); `shell` parses, `words` and `wrappers` see through to what runs,
`rules`, `tools`, `deploy`, `exec`, `sql`, `scripts` and `paths` judge it, `hits` is what they find, and
`config` is the family's part of the policy bundle.
"""

from maestro.policy.policies.commands.config import CommandsPolicy
from maestro.policy.policies.commands.family import EVIDENCE_CHARS, POLICY, check, judge

__all__ = ["EVIDENCE_CHARS", "POLICY", "CommandsPolicy", "check", "judge"]
