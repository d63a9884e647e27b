"""The licenses family: the licenses that context files declare, judged against the bundle.

declarations finds what a file says about its own license (SPDX tags, headers, full texts, notices and
package manifests' license fields); texts and manifests hold what those look like, names the SPDX ids
their names stand for, expressions the shape of an SPDX expression; categories puts every SPDX license
and exception in a category; policy judges an expression against the tenant's policy.
"""

from __future__ import annotations

from maestro.policy.policies.licenses.policy import (
    POLICY,
    Judgement,
    LicensesPolicy,
    check,
    check_files,
    judge,
)

__all__ = ["POLICY", "Judgement", "LicensesPolicy", "check", "check_files", "judge"]
