"""The licenses family: declarations are judged as whole expressions; mentions are not declarations."""

from __future__ import annotations

import time

import msgspec
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from maestro.policy.policies import Finding
from maestro.policy.policies.licenses import Judgement, LicensesPolicy, check, judge
from maestro.policy.policies.licenses.declarations import file_kind, find_declarations
from proto.v1 import ContextFile, TaskRequest

DEFAULT = LicensesPolicy()

GPL_C_HEADER = """\
/*
 * Copyright (C) 2019 Jane Hacker <jane@example.org>
 *
 * This program is free software; you can redistribute it and/or modify
 * it under the terms of the GNU General Public License as published by
 * the Free Software Foundation; either version 2 of the License, or
 * (at your option) any later version.
 *
 * This program is distributed in the hope that it will be useful,
 * but WITHOUT ANY WARRANTY; without even the implied warranty of
 * MERCHANTABILITY or FITNESS FOR A PARTICULAR PURPOSE.
 */
#include <stdio.h>
"""
AGPL_PY_HEADER = """\
# Copyright (C) 2023 Example Cloud Ltd
#
# This program is free software: you can redistribute it and/or modify
# it under the terms of the GNU Affero General Public License as published
# by the Free Software Foundation, either version 3 of the License, or
# (at your option) any later version.
import os
"""
LGPL_HEADER = """\
/* Copyright (C) 1991-2022 Free Software Foundation, Inc.
   This file is part of the GNU C Library.

   The GNU C Library is free software; you can redistribute it and/or
   modify it under the terms of the GNU Lesser General Public
   License as published by the Free Software Foundation; either
   version 2.1 of the License, or (at your option) any later version.  */
"""
MPL_HEADER = """\
/* This Source Code Form is subject to the terms of the Mozilla Public
 * License, v. 2.0. If a copy of the MPL was not distributed with this
 * file, You can obtain one at http://mozilla.org/MPL/2.0/. */
"""
APACHE_HEADER = """\
# Copyright 2024 The Example Authors
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
"""
GO_BSD_HEADER = """\
// Copyright 2009 The Go Authors. All rights reserved.
// Use of this source code is governed by a BSD-style
// license that can be found in the LICENSE file.

package main
"""
MIT_TEXT = """\
MIT License

Copyright (c) 2024 Example Person

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY.
"""
GPL3_TEXT = """\
                    GNU GENERAL PUBLIC LICENSE
                       Version 3, 29 June 2007

 Copyright (C) 2007 Free Software Foundation, Inc. <https://fsf.org/>
 Everyone is permitted to copy and distribute verbatim copies
 of this license document, but changing it is not allowed.

                            Preamble

  The GNU General Public License is a free, copyleft license for
software and other kinds of works.
"""
SSPL_TEXT = """\
                     Server Side Public License
                     VERSION 1, OCTOBER 16, 2018

                    Copyright (c) 2018 MongoDB, Inc.
"""
BUSL_TEXT = """\
Business Source License 1.1

Parameters

Licensor:             Example Corp.
Licensed Work:        Example Server 2.3
Change Date:          2028-01-01
Change License:       Apache License, Version 2.0
"""
ELASTIC_TEXT = """\
Elastic License 2.0

URL: https://www.elastic.co/licensing/elastic-license

## Acceptance

By using the software, you agree to all of the terms and conditions below.
"""
COMMONS_CLAUSE_TEXT = """\
"Commons Clause" License Condition v1.0

The Software is provided to you by the Licensor under the License, as defined below, subject to the
following condition.

License: Apache 2.0
"""
CC_BY_NC_TEXT = """\
Attribution-NonCommercial 4.0 International

=======================================================================

Creative Commons Corporation ("Creative Commons") is not a law firm.
"""
PROPRIETARY_NOTICE = """\
/*
 * Copyright (C) Acme Corp - All Rights Reserved
 * Unauthorized copying of this file, via any medium is strictly prohibited
 * Proprietary and confidential
 * Written by John Doe <john@acme.example>, June 2024
 */
"""
RESERVED_AND_RESTRICTED = """\
# Copyright (c) 2024 Initech. All rights reserved.
# This source code may not be copied, reproduced or distributed in any form
# without the prior written permission of Initech.
"""
PYTHON_METADATA = """\
Metadata-Version: 2.1
Name: someproject
Version: 1.0
License: GPL-3.0-or-later
License-Expression: GPL-3.0-or-later
Classifier: License :: OSI Approved :: GNU General Public License v3 or later (GPLv3+)

This program is free software: you can redistribute it and/or modify
it under the terms of the GNU General Public License as published by
the Free Software Foundation, either version 3 of the License, or
(at your option) any later version.
"""


def request(*files: tuple[str, str]) -> TaskRequest:
    context = [ContextFile(path=path, content=content) for path, content in files]
    return TaskRequest(id="t1", tenant="acme", role="implementer", prompt="go", context=context)


def findings(path: str, content: str, policy: LicensesPolicy = DEFAULT) -> list[Finding]:
    return check(request((path, content)), policy)


def rules(path: str, content: str, policy: LicensesPolicy = DEFAULT) -> list[tuple[str, str]]:
    return [(f.violation.rule_id, f.action) for f in findings(path, content, policy)]


def spdx(expression: str, comment: str = "//") -> str:
    return f"{comment} SPDX-License-Identifier: {expression}\n\nint main(void) {{ return 0; }}\n"


# -- SPDX tags and expressions ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("MIT", []),
        ("Apache-2.0", []),
        ("BSD-3-Clause", []),
        ("GPL-3.0-only", [("licenses.strong-copyleft", "deny")]),
        ("GPL-2.0+", [("licenses.strong-copyleft", "deny")]),
        ("AGPL-3.0-or-later", [("licenses.network-copyleft", "deny")]),
        ("MIT OR GPL-3.0-only", []),
        ("(GPL-2.0-only WITH Linux-syscall-note) OR BSD-3-Clause", []),
        ("MIT AND GPL-2.0-only", [("licenses.strong-copyleft", "deny")]),
        ("mit and gpl-3.0+", [("licenses.strong-copyleft", "deny")]),
        ("GPL-2.0-only WITH Classpath-exception-2.0", [("licenses.weak-copyleft", "approve")]),
        ("GPL-2.0-with-classpath-exception", [("licenses.weak-copyleft", "approve")]),
        # ScanCode counts the syscall note among the exceptions that limit the copyleft to the file.
        ("GPL-2.0-only WITH Linux-syscall-note", [("licenses.weak-copyleft", "approve")]),
        ("LGPL-2.1-or-later", [("licenses.weak-copyleft", "approve")]),
        ("MPL-2.0", [("licenses.weak-copyleft", "approve")]),
        ("EPL-2.0", [("licenses.weak-copyleft", "approve")]),
        ("MIT AND LGPL-3.0-only", [("licenses.weak-copyleft", "approve")]),
        ("LGPL-3.0-only OR GPL-3.0-only", [("licenses.weak-copyleft", "approve")]),
        ("SSPL-1.0", [("licenses.source-available", "deny")]),
        ("BUSL-1.1", [("licenses.source-available", "deny")]),
        ("Elastic-2.0", [("licenses.source-available", "deny")]),
        ("Apache-2.0 WITH Commons-Clause", [("licenses.source-available", "deny")]),
        ("LicenseRef-Commons-Clause", [("licenses.source-available", "deny")]),
        ("CC-BY-NC-4.0", [("licenses.source-available", "deny")]),
        ("CC-BY-NC-SA-4.0", [("licenses.source-available", "deny")]),
        ("PolyForm-Noncommercial-1.0.0", [("licenses.source-available", "deny")]),
        ("LicenseRef-Proprietary", [("licenses.proprietary", "deny")]),
        ("LicenseRef-acme-internal", [("licenses.unknown", "approve")]),
        ("Totally-Made-Up-1.0", [("licenses.unknown", "approve")]),
        ("Artistic-2.0", [("licenses.weak-copyleft", "approve")]),
        ("CECILL-2.1", [("licenses.weak-copyleft", "approve")]),
        ("OSL-3.0", [("licenses.network-copyleft", "deny")]),
        ("Sleepycat", [("licenses.strong-copyleft", "deny")]),
        ("GPL-2.0", [("licenses.strong-copyleft", "deny")]),
        ("Zlib AND CC0-1.0", []),
        ("Hippocratic-2.1", [("licenses.source-available", "deny")]),
        ("Apache-2.0 WITH LLVM-exception", []),
        ("(MIT", [("licenses.unknown", "approve")]),
        ("MIT OR", [("licenses.unknown", "approve")]),
        ("MIT/Apache-2.0", []),
    ],
)
def test_an_spdx_expression_is_judged_as_a_whole(expression: str, expected: list[tuple[str, str]]) -> None:
    assert rules("src/main.c", spdx(expression)) == expected


@pytest.mark.parametrize(
    "tagged",
    [
        "# SPDX-License-Identifier: GPL-3.0-only\n",
        "/* SPDX-License-Identifier: GPL-3.0-only */\n",
        "<!-- SPDX-License-Identifier: GPL-3.0-only -->\n",
        "-- SPDX-License-Identifier: GPL-3.0-only\n",
        "#!/bin/sh\n# SPDX-License-Identifier: GPL-3.0-only\n",
        "/******************************************\n * SPDX-License-Identifier: GPL-3.0-only   *\n",
    ],
)
def test_the_tag_is_read_in_any_comment_style(tagged: str) -> None:
    (finding,) = findings("lib/x.c", tagged + "code\n")
    assert finding.violation.evidence == "GPL-3.0-only"
    assert finding.violation.rule_id == "licenses.strong-copyleft"


def test_a_finding_names_the_file_line_column_license_and_a_fix() -> None:
    content = "#!/usr/bin/env python3\n# SPDX-License-Identifier: MIT AND GPL-2.0-only\nimport os\n"
    (finding,) = findings("vendor/tool.py", content)
    v = finding.violation
    assert finding.action == "deny"
    assert (v.policy, v.rule_id, v.severity, v.enforced) == (
        "licenses",
        "licenses.strong-copyleft",
        "high",
        True,
    )
    assert v.location == "context:vendor/tool.py:2:28"
    assert v.evidence == "MIT AND GPL-2.0-only"
    assert "vendor/tool.py" in v.message and "GPL-2.0-only" in v.message and "copyleft" in v.message
    assert v.fix


@pytest.mark.parametrize(
    ("path", "content"),
    [
        ("src/tags.py", 'TAG = "SPDX-License-Identifier: GPL-3.0-only"\n'),
        ("scripts/check.sh", "grep -r 'SPDX-License-Identifier: GPL' src/\n"),
        ("docs/CONTRIBUTING.md", "Add a tag:\n\n```c\n// SPDX-License-Identifier: GPL-2.0-only\n```\n"),
        ("docs/style.md", "Start files with `SPDX-License-Identifier: AGPL-3.0-only` if you must.\n"),
        ("src/x.c", "// SPDX-License-Identifier:\n"),
    ],
)
def test_a_string_a_grep_or_an_example_of_the_tag_is_not_a_declaration(path: str, content: str) -> None:
    assert findings(path, content) == []


def test_a_tag_in_a_markdown_comment_or_front_matter_is_a_declaration() -> None:
    assert rules("docs/guide.md", "<!-- SPDX-License-Identifier: CC-BY-NC-4.0 -->\n# Guide\n") == [
        ("licenses.source-available", "deny")
    ]
    front = "---\ntitle: Notes\nSPDX-License-Identifier: GPL-3.0-or-later\n---\n# Notes\n"
    assert rules("docs/notes.md", front) == [("licenses.strong-copyleft", "deny")]


# -- headers and full texts ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("path", "content", "expression", "expected"),
    [
        ("src/gpl.c", GPL_C_HEADER, "GPL-2.0-or-later", [("licenses.strong-copyleft", "deny")]),
        ("app/server.py", AGPL_PY_HEADER, "AGPL-3.0-or-later", [("licenses.network-copyleft", "deny")]),
        ("include/libc.h", LGPL_HEADER, "LGPL-2.1-or-later", [("licenses.weak-copyleft", "approve")]),
        ("nss/pk11.h", MPL_HEADER, "MPL-2.0", [("licenses.weak-copyleft", "approve")]),
        ("tools/build.py", APACHE_HEADER, "Apache-2.0", []),
        ("go/main.go", GO_BSD_HEADER, "BSD-3-Clause", []),
        ("LICENSE", MIT_TEXT, "MIT", []),
        ("COPYING", GPL3_TEXT, "GPL-3.0-only", [("licenses.strong-copyleft", "deny")]),
        ("LICENSE.txt", SSPL_TEXT, "SSPL-1.0", [("licenses.source-available", "deny")]),
        ("LICENSE", BUSL_TEXT, "BUSL-1.1", [("licenses.source-available", "deny")]),
        ("LICENSE.md", ELASTIC_TEXT, "Elastic-2.0", [("licenses.source-available", "deny")]),
        (
            "LICENSE",
            COMMONS_CLAUSE_TEXT,
            "LicenseRef-Commons-Clause",
            [("licenses.source-available", "deny")],
        ),
        ("assets/LICENSE", CC_BY_NC_TEXT, "CC-BY-NC-4.0", [("licenses.source-available", "deny")]),
        ("LICENSES/GPL-3.0-only.txt", GPL3_TEXT, "GPL-3.0-only", [("licenses.strong-copyleft", "deny")]),
    ],
)
def test_headers_and_full_texts_are_declarations(
    path: str, content: str, expression: str, expected: list[tuple[str, str]]
) -> None:
    assert [d.expression for d in find_declarations(path, content)] == [expression]
    assert rules(path, content) == expected


def test_a_header_finding_points_at_the_grant() -> None:
    (finding,) = findings("src/gpl.c", GPL_C_HEADER)
    assert finding.violation.location == "context:src/gpl.c:4:4"
    assert finding.violation.evidence.startswith("This program is free software")
    assert "GPL-2.0-or-later" in finding.violation.message


@pytest.mark.parametrize(
    ("header", "expression"),
    [
        ("# Licensed under the GPLv3.\n", "GPL-3.0-only"),
        ("// This file is released under the GNU GPL v2 or later.\n", "GPL-2.0-or-later"),
        ("/* Copyright 2020 X. Licensed under the MIT License. */\n", "MIT"),
        (
            "# This work is licensed under a Creative Commons Attribution-NonCommercial 4.0 License.\n",
            "CC-BY-NC-4.0",
        ),
        (
            "// Use of this software is governed by the Business Source License included in LICENSE.\n",
            "BUSL-1.1",
        ),
        (
            "# Licensed under the Elastic License 2.0; you may not use this file except in compliance.\n",
            "Elastic-2.0",
        ),
        (
            "# This program is free software: you can redistribute it and/or modify it under the terms\n"
            "# of the Server Side Public License, version 1, as published by MongoDB, Inc.\n",
            "SSPL-1.0",
        ),
        (
            "# Licensed to the Apache Software Foundation (ASF). The ASF licenses this file to You\n"
            '# under the Apache License, Version 2.0 (the "License").\n',
            "Apache-2.0",
        ),
    ],
)
def test_common_header_phrasings_name_the_right_license(header: str, expression: str) -> None:
    assert [d.expression for d in find_declarations("src/file.py", header + "x = 1\n")] == [expression]


@pytest.mark.parametrize("content", [PROPRIETARY_NOTICE, RESERVED_AND_RESTRICTED])
def test_a_proprietary_notice_is_denied(content: str) -> None:
    (finding,) = findings("internal/billing.c", content)
    assert (finding.violation.rule_id, finding.action) == ("licenses.proprietary", "deny")
    assert "proprietary notice" in finding.violation.message


def test_a_confidential_notice_with_all_rights_reserved_is_proprietary() -> None:
    content = "# Copyright 2024 Globex. All rights reserved.\n# CONFIDENTIAL\nimport os\n"
    assert rules("globex/core.py", content) == [("licenses.proprietary", "deny")]


@pytest.mark.parametrize(
    ("path", "content"),
    [
        # A copyright line alone says who owns the file, not that it may not be used.
        ("src/a.py", "# Copyright (c) 2024 Example Inc. All rights reserved.\nimport os\n"),
        # "All rights reserved" beside an open license is the copyright line of that license.
        ("src/b.go", GO_BSD_HEADER),
        (
            "src/c.py",
            "# Copyright Microsoft Corporation. All rights reserved.\n# Licensed under the MIT License.\n",
        ),
        ("src/d.py", "# Proprietary and confidential code must never be pasted into prompts.\n"),
        ("src/e.py", "# Copyright 2024 Example. All rights reserved.\n# Keeps the tokens confidential.\n"),
        ("docs/policy.md", "# Policy\n\nUnauthorized use of the API is prohibited by our terms.\n"),
    ],
)
def test_near_misses_of_a_proprietary_notice_are_not_one(path: str, content: str) -> None:
    assert findings(path, content) == []


# -- mentions are not declarations -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("path", "content"),
    [
        (
            "config/licenses.yaml",
            "licenses:\n  deny:\n    - GPL-3.0\n    - AGPL-3.0-only\n  allow: [MIT, Apache-2.0]\n",
        ),
        ("policy.json", '{"deny": ["GPL-3.0", "SSPL-1.0"], "allow": ["MIT"]}\n'),
        ("deny.toml", '[licenses]\ndeny = ["GPL-3.0", "AGPL-3.0"]\n'),
        ("README.md", "# Tool\n\nWe chose MIT over GPL because we want companies to use it.\n"),
        ("README.md", "# Tool\n\nThis project is licensed under the GNU General Public License v3.\n"),
        (
            "docs/faq.rst",
            "Why not GPL?\n============\n\nThe GNU General Public License version 3 is too strict.\n",
        ),
        ("src/guard.py", "# We avoid GPL code: see docs/licensing.md\nimport os\n"),
        ("src/scan.py", "# Don't vendor code licensed under the GNU GPL v3 here.\nBANNED = ['GPL-3.0']\n"),
        ("CHANGELOG.md", "## 2.0\n\n- Relicensed from GPL-2.0 to MIT.\n"),
        ("site-packages/foo-1.0.dist-info/METADATA", PYTHON_METADATA),
        ("PKG-INFO", PYTHON_METADATA),
        ("package-lock.json", '{"packages": {"node_modules/x": {"license": "SSPL-1.0"}}}\n'),
        ("THIRD_PARTY_NOTICES.txt", "libfoo: GPL-2.0\n\n" + GPL3_TEXT),
        ("src/late.c", "int x;\n" * 80 + GPL_C_HEADER),
    ],
)
def test_a_mention_of_a_license_is_not_a_declaration(path: str, content: str) -> None:
    assert findings(path, content) == []


def test_file_kinds() -> None:
    assert file_kind("LICENSE") == file_kind("sub/COPYING.LESSER") == file_kind("LICENSE-MIT") == "license"
    assert file_kind("LICENSES/MIT.txt") == "license"
    assert file_kind("README.md") == file_kind("docs/x.rst") == "doc"
    assert file_kind("package-lock.json") == file_kind("a/b/PKG-INFO") == file_kind("NOTICE") == "skip"
    assert file_kind("package.json") == file_kind("Cargo.toml") == file_kind("x.gemspec") == "manifest"
    assert file_kind("src/main.rs") == file_kind("Makefile") == "code"


def test_a_license_file_that_is_no_known_text_is_unknown() -> None:
    assert rules("LICENSE", "You may use this only on Tuesdays.\n" * 5) == [("licenses.unknown", "approve")]
    assert rules("LICENSE", "MIT\n") == []
    assert rules("LICENSE", "GPL-3.0-or-later\n") == [("licenses.strong-copyleft", "deny")]
    assert findings("LICENSE", "") == []


# -- the policy ------------------------------------------------------------------------------------------
def test_a_bundle_overrides_the_lists_and_the_most_specific_entry_wins() -> None:
    gpl_shop = LicensesPolicy(allow=("GPL-*", "MIT"), deny=("AGPL-*",))
    assert rules("a.c", spdx("GPL-3.0-only"), gpl_shop) == []
    assert rules("a.c", spdx("AGPL-3.0-only"), gpl_shop) == [("licenses.network-copyleft", "deny")]
    strict = LicensesPolicy(deny=("*",), allow=("MIT",))
    assert rules("a.c", spdx("MIT"), strict) == []
    assert rules("a.c", spdx("Apache-2.0"), strict) == [("licenses.restricted", "deny")]
    kernel_ok = LicensesPolicy(allow=("GPL-2.0-only WITH Linux-syscall-note",))
    assert rules("a.h", spdx("GPL-2.0-only WITH Linux-syscall-note"), kernel_ok) == []


def test_unknown_and_proprietary_actions_come_from_the_bundle() -> None:
    policy = LicensesPolicy(unknown="deny", proprietary="approve")
    assert rules("a.c", spdx("Made-Up-1.0"), policy) == [("licenses.unknown", "deny")]
    assert rules("a.c", PROPRIETARY_NOTICE, policy) == [("licenses.proprietary", "approve")]
    assert rules("a.c", spdx("Made-Up-1.0"), LicensesPolicy(unknown="audit")) == [
        ("licenses.unknown", "audit")
    ]


def test_judge_names_the_license_that_decides_an_expression() -> None:
    assert judge("MIT AND (GPL-2.0-only OR LGPL-2.1-only)", DEFAULT) == Judgement(
        "approve", "LGPL-2.1-only", "weak-copyleft", "weak-copyleft"
    )
    assert judge("", DEFAULT).rule == "proprietary"


def test_audit_mode_reports_what_it_would_do_without_enforcing() -> None:
    (finding,) = findings("a.c", spdx("GPL-3.0-only"), LicensesPolicy(mode="audit"))
    assert finding.action == "deny"
    assert finding.violation.enforced is False


def test_a_bundle_is_decoded_from_yaml_with_typed_errors() -> None:
    text = "mode: audit\ndeny: ['GPL-*']\nallow: [MIT, 'BSD-*']\nunknown: deny\n"
    policy = msgspec.convert(yaml.safe_load(text), LicensesPolicy)
    assert policy.deny == ("GPL-*",) and policy.approve == DEFAULT.approve and policy.unknown == "deny"
    with pytest.raises(msgspec.ValidationError, match="unknown"):
        msgspec.convert({"unknown": "redact"}, LicensesPolicy)
    with pytest.raises(msgspec.ValidationError, match="denny"):
        msgspec.convert({"denny": ["GPL-*"]}, LicensesPolicy)


def test_every_file_is_checked_and_the_strictest_findings_come_first() -> None:
    files = [(f"lib/m{i}.c", spdx("LGPL-2.1-only")) for i in range(60)] + [("lib/z.c", spdx("GPL-2.0-only"))]
    found = check(request(*files), DEFAULT)
    assert len(found) == 50
    assert found[0].action == "deny" and found[0].violation.location.startswith("context:lib/z.c:")


def test_each_expression_is_reported_once_per_file() -> None:
    content = "".join(f"// SPDX-License-Identifier: GPL-2.0-only\nint f{i};\n" for i in range(100))
    assert len(findings("bundle.c", content)) == 1


# -- never raises, stays linear --------------------------------------------------------------------------
texts = st.one_of(
    st.text(max_size=2000),
    st.binary(max_size=2000).map(lambda b: b.decode("utf-8", "replace")),
    st.lists(
        st.sampled_from(
            [
                "SPDX-License-Identifier: ",
                "GPL-3.0 ",
                " AND ",
                " OR ",
                " WITH ",
                "(",
                ")",
                "\n",
                "# ",
                "This program is free software; you can redistribute it under the terms of the ",
                "GNU General Public License version ",
                "All rights reserved. ",
                "Proprietary and confidential",
                "Licensed under the ",
                "\ud800",
                "é",
            ]
        ),
        max_size=200,
    ).map("".join),
)
paths = st.sampled_from(["LICENSE", "src/a.c", "README.md", "x.json", "COPYING", "a/b/c.py", "LICENSES/x"])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(path=paths, content=texts)
def test_any_text_yields_a_list_of_findings(path: str, content: str) -> None:
    result = findings(path, content)
    assert isinstance(result, list)
    assert all(f.violation.policy == "licenses" for f in result)


@pytest.mark.parametrize("path", ["LICENSE", "src/big.c", "README.md"])
def test_huge_and_crafted_inputs_take_time_linear_in_their_size(path: str) -> None:
    size = 1_000_000
    plain = ("lorem ipsum dolor sit amet " * (size // 27 + 1))[:size]
    crafted_parts = [
        "// SPDX-License-Identifier: " + "(" * 200 + "\n",
        "// SPDX-License-Identifier: MIT\n```\n" * 20,
        "redistribute it and/or modify under the terms of the " * 5,
        "GNU General Public License " * 20 + "\n",
        "MIT License\nLicensed under the MIT License. This file is licensed under the GPL.\n" * 5,
        "All rights reserved. may not be copied CONFIDENTIAL\n" * 10 + "\n",
    ]
    crafted = ("".join(crafted_parts) * (size // 1000 + 1))[:size]

    def timed(content: str) -> float:
        start = time.perf_counter()
        findings(path, content)
        return time.perf_counter() - start

    timed(plain)  # warm caches and the SPDX index
    base = min(timed(plain) for _ in range(2))
    worst = min(timed(crafted) for _ in range(2))
    assert worst < max(10 * base, 0.25), (base, worst)


@pytest.mark.parametrize(
    "path", ["maestro/policy/policies/licenses/texts.py", "src/license_check.ts", "license.go"]
)
def test_source_files_named_after_licenses_are_code_not_license_texts(path: str) -> None:
    # Found by running check-pr on this repository: the license family's own pattern tables.
    assert file_kind(path) == "code"
    assert file_kind("LICENSE-MIT") == "license" and file_kind("COPYING.txt") == "license"
