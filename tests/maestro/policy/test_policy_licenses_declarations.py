"""The licenses family's declarations beyond tags and headers: manifests, titles, notices, subjects.

Each class here was a blind spot an independent corpus found (issue 9); each test names the class, and
its cases are instances of it, not the examples the corpus held.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from maestro.policy.policies.licenses import LicensesPolicy, check, policy
from maestro.policy.policies.licenses.declarations import find_declarations
from proto.v1 import ContextFile, TaskRequest

DEFAULT = LicensesPolicy()


def actions(path: str, content: str) -> list[str]:
    context = [ContextFile(path=path, content=content)]
    found = check(
        TaskRequest(id="t1", tenant="acme", role="implementer", prompt="go", context=context), DEFAULT
    )
    return [f.action for f in found]


def expressions(path: str, content: str) -> list[str]:
    return [d.expression for d in find_declarations(path, content)]


# -- a package manifest's own license field is a declaration -------------------------------------------
MANIFESTS = [
    ("package.json", '{{\n  "name": "x",\n  "version": "1.0.0",\n  "license": "{0}"\n}}\n'),
    ("web/package.json", '{{"name": "x", "licenses": [{{"type": "{0}", "url": "https://x"}}]}}'),
    ("composer.json", '{{"name": "acme/x", "license": ["{0}"]}}\n'),
    ("Cargo.toml", '[package]\nname = "x"\nversion = "0.1.0"\nlicense = "{0}"\n'),
    ("crates/a/Cargo.toml", '[workspace.package]\nlicense = "{0}"\n'),
    ("pyproject.toml", '[project]\nname = "x"\nlicense = "{0}"\n'),
    ("pyproject.toml", '[project]\nname = "x"\nlicense = {{text = "{0}"}}\n'),
    ("pyproject.toml", '[tool.poetry]\nname = "x"\nlicense = "{0}"\n'),
    ("x.gemspec", 'Gem::Specification.new do |spec|\n  spec.name = "x"\n  spec.license = "{0}"\nend\n'),
    ("x.gemspec", "Gem::Specification.new do |s|\n  s.licenses = ['{0}']\nend\n"),
    (
        "pom.xml",
        "<project>\n  <licenses>\n    <license>\n      <name>{0}</name>\n    </license>\n  </licenses>\n"
        "</project>\n",
    ),
    ("setup.cfg", "[metadata]\nname = x\nlicense = {0}\n"),
    ("setup.py", 'from setuptools import setup\nsetup(\n    name="x",\n    license="{0}",\n)\n'),
    ("X.nuspec", '<package><metadata><license type="expression">{0}</license></metadata></package>\n'),
    ("X.csproj", "<Project><PropertyGroup><PackageLicenseExpression>{0}</PackageLicenseExpression>"),
    ("Chart.yaml", "apiVersion: v2\nname: x\nannotations:\n  artifacthub.io/license: {0}\n"),
    ("recipe/meta.yaml", "package:\n  name: x\nabout:\n  license: {0}\n"),
    ("CITATION.cff", "cff-version: 1.2.0\ntitle: x\nlicense: {0}\n"),
    ("galaxy.yml", "namespace: acme\nname: x\nlicense:\n  - {0}\n"),
    ("mix.exs", 'defp package do\n  [licenses: ["{0}"], links: %{{}}]\nend\n'),
    ("x.cabal", "name: x\nversion: 0.1\nlicense: {0}\n"),
    ("x.spec", "Name: x\nVersion: 1.0\nLicense: {0}\n"),
    ("build.gradle.kts", 'publishing {{ pom {{ licenses {{ license {{\n  name.set("{0}")\n}} }} }} }}\n'),
    ("build.gradle", "pom {{\n  licenses {{\n    license {{\n      name = '{0}'\n    }}\n  }}\n}}\n"),
    ("build.sbt", 'licenses := Seq("{0}" -> url("https://example.org/license"))\n'),
    ("project.clj", '(defproject x "1.0"\n  :license {{:name "{0}" :url "https://x"}})\n'),
    ("src/x.app.src", '{{application, x, [{{vsn, "1.0"}}, {{licenses, ["{0}"]}}]}}.\n'),
    ("metadata.rb", "name 'x'\nlicense '{0}'\nversion '1.0'\n"),
    ("Dockerfile", 'FROM alpine\nLABEL org.opencontainers.image.licenses="{0}"\n'),
    ("META.json", '{{"name": "X", "license": ["{0}"]}}\n'),
    ("metadata.json", '{{"name": "acme-x", "license": "{0}"}}\n'),
]


@pytest.mark.parametrize(("path", "template"), MANIFESTS)
@pytest.mark.parametrize(("expression", "expected"), [("GPL-3.0-or-later", ["deny"]), ("MIT", [])])
def test_a_manifests_own_license_field_is_a_declaration(
    path: str, template: str, expression: str, expected: list[str]
) -> None:
    content = template.format(expression)
    assert expressions(path, content) == [expression]
    assert actions(path, content) == expected


@pytest.mark.parametrize(
    ("path", "content", "expression"),
    [
        (
            "pyproject.toml",
            '[project]\nclassifiers = [\n  "License :: OSI Approved :: GNU Affero General'
            ' Public License v3",\n]\n',
            "AGPL-3.0-only",
        ),
        (
            "setup.py",
            'setup(classifiers=["License :: OSI Approved :: GNU General Public License v2 (GPLv2)"])\n',
            "GPL-2.0-only",
        ),
        ("DESCRIPTION", "Package: x\nVersion: 1.0\nLicense: GPL (>= 2)\n", "GPL-2.0-or-later"),
        ("DESCRIPTION", "Package: x\nLicense: AGPL-3 | file LICENSE\n", "AGPL-3.0-only"),
        (
            "pom.xml",
            "<licenses><license><name>GNU General Public License, Version 3</name></license></licenses>",
            "GPL-3.0-only",
        ),
        ("package.json", '{"name": "x", "license": "UNLICENSED", "private": true}', ""),
        ("composer.json", '{"name": "acme/x", "license": "proprietary"}', ""),
        ("META.json", '{"name": "X", "license": ["gpl_3"]}', "GPL-3.0-only"),
        ("META.yml", "name: X\nlicense: agpl_3\n", "AGPL-3.0-only"),
    ],
)
def test_ecosystem_license_names_are_read_as_spdx(path: str, content: str, expression: str) -> None:
    assert expressions(path, content) == [expression]
    assert actions(path, content) == ["deny"]


@pytest.mark.parametrize(
    ("path", "content"),
    [
        # A lockfile lists its dependencies' licenses: none of them is this file's license.
        ("package-lock.json", '{"packages": {"node_modules/x": {"license": "GPL-3.0-only"}}}'),
        ("Cargo.lock", '[[package]]\nname = "x"\nversion = "1.0.0"\n'),
        ("poetry.lock", '[[package]]\nname = "x"\n[package.extras]\nlicense = "GPL-3.0"\n'),
        ("composer.lock", '{"packages": [{"name": "x", "license": ["GPL-3.0-only"]}]}'),
        ("yarn.lock", 'x@^1:\n  version "1.0.0"\n  license "GPL-3.0"\n'),
        # A pointer to a file is not a license: the file itself is judged when it is in the context.
        ("package.json", '{"name": "x", "license": "SEE LICENSE IN LICENSE.txt"}'),
        ("Cargo.toml", '[package]\nname = "x"\nlicense-file = "LICENSE"\n'),
        # Configuration that names licenses it denies or allows is not a declaration.
        ("config/licenses.yaml", "licenses:\n  deny:\n    - GPL-3.0\n  allow: [MIT]\n"),
        ("deny.toml", '[licenses]\ndeny = ["GPL-3.0"]\n'),
        ("api/repo.json", '{"name": "linux", "license": {"spdx_id": "GPL-2.0"}}'),
        ("site-packages/foo-1.0.dist-info/METADATA", "License-Expression: GPL-3.0-only\n"),
        ("pyproject.toml", '[project]\nname = "x"\ndependencies = ["gpl-tool>=1"]\n'),
        ("package.json", '{"name": "x", "dependencies": {"gpl": "^1.0.0"}, "license": "MIT"}'),
        ("Cargo.toml", '[package]\nlicense = "MIT OR GPL-3.0-only"\n'),
    ],
)
def test_lockfiles_pointers_and_configuration_are_not_declarations(path: str, content: str) -> None:
    assert actions(path, content) == []


# -- the MIT title anywhere in the text ----------------------------------------------------------------
@pytest.mark.parametrize(
    "content",
    [
        "MIT License\n\nCopyright (c) 2024 Example\n\nSee https://opensource.org/licenses/MIT for terms.\n",
        "The MIT License (MIT)\n\nCopyright (c) 2015 Example\n\nThe full text is at the project's site.\n",
        "Copyright (c) 2024 Example\n\n# MIT License\n\nUse it as the MIT License allows.\n",
    ],
)
def test_the_mit_title_is_recognised_wherever_it_stands(content: str) -> None:
    assert expressions("LICENSE", content) == ["MIT"]
    assert actions("LICENSE", content) == []


# -- "X is licensed under <id>" for any subject and any SPDX id ---------------------------------------
@pytest.mark.parametrize(
    ("header", "expression"),
    [
        ("# libfoo is licensed under the GPL-3.0-or-later.\n", "GPL-3.0-or-later"),
        ("// Acme SDK is released under the GNU AGPL v3.\n", "AGPL-3.0-only"),
        ("/* The Widget Toolkit is distributed under OSL-3.0. */\n", "OSL-3.0"),
        ("# Copyright 2021 X. zlibx is dual-licensed under EUPL-1.2.\n", "EUPL-1.2"),
        ("-- Everything in this directory is licensed under CECILL-2.1\n", "CECILL-2.1"),
        ("# The Foo project is licensed under the Apache License 2.0.\n", "Apache-2.0"),
    ],
)
def test_any_subject_licensed_under_a_license_is_a_declaration(header: str, expression: str) -> None:
    assert expressions("src/file.py", header + "x = 1\n") == [expression]


@pytest.mark.parametrize(
    "header",
    [
        "# Check whether a dependency is licensed under the GPL before vendoring it.\n",
        "# Returns True if the package is licensed under the terms of the AGPL.\n",
        "# This code is licensed under the terms below.\n",
    ],
)
def test_a_subject_in_a_question_or_without_a_license_is_not_a_declaration(header: str) -> None:
    assert actions("src/check.py", header + "x = 1\n") == []


# -- prose after an SPDX tag ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("line", "expression", "expected"),
    [
        ("# SPDX-License-Identifier: GPL-3.0-or-later  -- see COPYING", "GPL-3.0-or-later", ["deny"]),
        ("// SPDX-License-Identifier: MIT (see LICENSE)", "MIT", []),
        ("# SPDX-License-Identifier: Apache-2.0, see LICENSE for details", "Apache-2.0", []),
        ("/* SPDX-License-Identifier: (MIT OR GPL-2.0-only) - dual */", "(MIT OR GPL-2.0-only)", []),
        ("// SPDX-License-Identifier: AGPL-3.0-only. Copyright 2024 X", "AGPL-3.0-only", ["deny"]),
    ],
)
def test_prose_after_an_spdx_tag_does_not_break_the_expression(
    line: str, expression: str, expected: list[str]
) -> None:
    content = line + "\nint x;\n"
    assert expressions("src/a.c", content) == [expression]
    assert actions("src/a.c", content) == expected


# -- proprietary and source-available notices in their usual wordings ---------------------------------
@pytest.mark.parametrize(
    "header",
    [
        "# Copyright 2024 Initech. All rights reserved.\n# Unauthorized copying, modification or distribution"
        " is strictly prohibited.\n",
        "// (c) Acme Corp. Confidential and proprietary.\n",
        "/* ACME CORPORATION CONFIDENTIAL AND PROPRIETARY */\n",
        "# Copyright (c) Globex Inc. All Rights Reserved.\n# Proprietary & Confidential.\n",
        "# All rights reserved. Copying this file, via any medium, without written permission is strictly"
        " prohibited.\n",
    ],
)
def test_proprietary_notices_in_their_usual_wordings(header: str) -> None:
    assert actions("src/billing.py", header + "import os\n") == ["deny"]


@pytest.mark.parametrize(
    "content",
    [
        "// Business Source License 1.1\n// Licensor: HashiCorp\n",
        "# Use of this software is governed by the Business Source License 1.1 included in LICENSE.\n",
        "// Licensed under the Elastic License 2.0; you may not use this file except in compliance.\n",
        "# Licensed under the Server Side Public License, v 1.\n",
        "# Licensed under the Apache License, Version 2.0, with the Commons Clause.\n",
        "// This file is licensed under the PolyForm Noncommercial License 1.0.0.\n",
        "# Content licensed under CC BY-NC-SA 4.0.\n",
        "* PolyForm Shield License 1.0.0\n",
    ],
)
def test_source_available_and_non_commercial_headers_are_denied(content: str) -> None:
    assert actions("src/server.go", content + "package main\n") == ["deny"]


@pytest.mark.parametrize(
    "content",
    [
        "# PolyForm Noncommercial License 1.0.0\n\n<https://polyformproject.org/licenses/noncommercial/1.0.0>\n",
        "License text copyright (c) 2020 MariaDB Corporation Ab, All Rights Reserved.\n"
        '"Business Source License" is a trademark of MariaDB Corporation Ab.\n\nParameters\n',
        "Server Side Public License, v 1\n\nCopyright (c) 2018 MongoDB, Inc.\n",
    ],
)
def test_source_available_license_texts_are_denied(content: str) -> None:
    assert actions("LICENSE", content) == ["deny"]


# -- the family's guard against malformed expressions swallows only what the parser raises -------------
def test_a_programming_error_while_judging_is_not_swallowed(monkeypatch: pytest.MonkeyPatch) -> None:
    class Broken:
        known_symbols: dict[str, object] = {}

        def parse(self, *args: object, **kwargs: object) -> object:
            raise TypeError("a bug, not a malformed expression")

    monkeypatch.setattr(policy, "_licensing", lambda: Broken())
    with pytest.raises(TypeError, match="a bug"):
        actions("src/a.c", "// SPDX-License-Identifier: MIT\n")


@pytest.mark.parametrize("marker", [";;", ";", "%%", "REM", "!", "'"])
def test_a_header_is_read_under_any_line_comment_marker(marker: str) -> None:
    header = "".join(
        f"{marker} {line}\n"
        for line in (
            "This program is free software; you can redistribute it and/or modify",
            "it under the terms of the GNU General Public License as published by",
            "the Free Software Foundation; either version 3 of the License, or",
        )
    )
    assert expressions("src/mode.el", header + "(provide 'mode)\n") == ["GPL-3.0-only"]


@pytest.mark.parametrize(
    ("path", "content", "expected"),
    [
        # A product's license key, a licence file name or a name that is no license: YAML holds all sorts.
        ("values.yaml", 'license: "eyJhbGciOiJSUzI1NiJ9.payload"\n', []),
        ("values.yaml", "license:\n  secretName: gitlab-license\n  key: license\n", []),
        ("config.yml", "license: enterprise\n", []),
        # An id that ends in "License" is an id, not a pointer to a LICENSE file.
        ("pkg.spec", "Name: x\nLicense: BSD-3-Clause-No-Military-License\n", ["deny"]),
        ("Cargo.toml", '[package]\nlicense = "docs/LICENSE.txt"\n', []),
    ],
)
def test_yaml_license_keys_count_only_when_they_name_a_license(
    path: str, content: str, expected: list[str]
) -> None:
    assert actions(path, content) == expected


@pytest.mark.parametrize(
    ("title", "expression"),
    [
        (
            "                GNU Free Documentation License\n                 Version 1.3, 3 November 2008\n",
            "GFDL-1.3-only",
        ),
        (
            '                         The "Artistic License"\n\n                                Preamble\n',
            "Artistic-1.0",
        ),
        (
            "                       The Artistic License 2.0\n\n           Copyright (c) 2000-2006\n",
            "Artistic-2.0",
        ),
        ("EUROPEAN UNION PUBLIC LICENCE v. 1.2\nEUPL (c) the European Union 2007, 2016\n", "EUPL-1.2"),
        ('Open Software License ("OSL") v. 3.0\n\nThis Open Software License applies\n', "OSL-3.0"),
        ('Academic Free License ("AFL") v. 3.0\n\nThis Academic Free License applies\n', "AFL-3.0"),
    ],
)
def test_a_license_file_is_known_by_its_title(title: str, expression: str) -> None:
    body = title + "\nSome terms that no rule knows, in many words, over several lines.\n" * 3
    assert expressions("LICENSE", body) == [expression]


def test_a_license_file_that_starts_with_a_word_that_is_an_id_is_not_that_license() -> None:
    assert expressions("LICENSE", "Fair use of this material is limited.\n" * 3) == ["NOASSERTION"]


LIBSTDCXX = """\
// Copyright (C) 2004-2022 Free Software Foundation, Inc.
//
// This file is part of the GNU ISO C++ Library.  This library is free
// software; you can redistribute it and/or modify it under the
// terms of the GNU General Public License as published by the
// Free Software Foundation; either version 3, or (at your option)
// any later version.
//
// Under Section 7 of GPL version 3, you are granted additional
// permissions described in the GCC Runtime Library Exception, version
// 3.1, as published by the Free Software Foundation.
"""
OPENJDK = """\
/*
 * This code is free software; you can redistribute it and/or modify it
 * under the terms of the GNU General Public License version 2 only, as
 * published by the Free Software Foundation.  Oracle designates this
 * particular file as subject to the "Classpath" exception as provided
 * by Oracle in the LICENSE file that accompanied this code.
 */
"""
BISON = """\
/* This program is free software: you can redistribute it and/or modify
   it under the terms of the GNU General Public License as published by
   the Free Software Foundation, either version 3 of the License, or
   (at your option) any later version.

   As a special exception, you may create a larger work that contains
   part or all of the Bison parser skeleton and distribute that work
   under terms of your choice.  */
"""
AUTOCONF = """\
# This program is free software; you can redistribute it and/or modify
# it under the terms of the GNU General Public License as published by
# the Free Software Foundation; either version 2, or (at your option)
# any later version.
#
# As a special exception to the GNU General Public License, if you
# distribute this file as part of a program that contains a
# configuration script generated by Autoconf, you may include it under
# the same distribution terms that you use for the rest of that program.
"""


@pytest.mark.parametrize(
    ("path", "content", "expression"),
    [
        ("include/c++/limits", LIBSTDCXX, "GPL-3.0-or-later WITH GCC-exception-3.1"),
        ("java/util/List.java", OPENJDK, "GPL-2.0-only WITH Classpath-exception-2.0"),
        ("src/parse.c", BISON, "GPL-3.0-or-later WITH Bison-exception-2.2"),
        ("m4/ax_check.m4", AUTOCONF, "GPL-2.0-or-later WITH Autoconf-exception-2.0"),
    ],
)
def test_a_headers_exception_is_part_of_its_declaration(path: str, content: str, expression: str) -> None:
    assert expressions(path, content + "int x;\n") == [expression]
    assert actions(path, content + "int x;\n") == ["approve"]


@pytest.mark.parametrize(
    ("path", "content"),
    [
        (
            "setup.py",
            '# SPDX-License-Identifier: GPL-3.0-only\nfrom setuptools import setup\nsetup(name="x")\n',
        ),
        ("Dockerfile", "# SPDX-License-Identifier: AGPL-3.0-or-later\nFROM alpine\n"),
        (
            "build.gradle",
            "/*\n * Licensed under the GNU General Public License v3.0.\n */\nplugins { id 'java' }\n",
        ),
        ("Cargo.toml", '# SPDX-License-Identifier: GPL-2.0-only\n[package]\nname = "x"\nlicense = "MIT"\n'),
    ],
)
def test_a_manifest_that_is_also_code_is_read_for_its_tags_and_headers(path: str, content: str) -> None:
    assert actions(path, content) == ["deny"]


@pytest.mark.parametrize(
    ("path", "content"),
    [
        ("package.json", "[" * 100_000),
        ("composer.json", '{"license": ' * 50_000),
        ("pyproject.toml", "a = " + "[" * 100_000),
        ("Cargo.toml", "x = " + "{ y = " * 50_000),
    ],
)
def test_a_deeply_nested_manifest_is_no_declaration_and_no_crash(path: str, content: str) -> None:
    assert actions(path, content) == []


_MANIFEST_PATHS = st.sampled_from(
    [
        "package.json",
        "Cargo.toml",
        "pyproject.toml",
        "setup.py",
        "pom.xml",
        "DESCRIPTION",
        "Chart.yaml",
        "x.gemspec",
        "X.nuspec",
        "mix.exs",
        "Dockerfile",
        "build.gradle",
        "META.json",
        "x.app.src",
    ]
)
_MANIFEST_TEXT = st.lists(
    st.sampled_from(
        [
            '"license"',
            ": ",
            '"GPL-3.0"',
            "license = ",
            "License: ",
            "<licenses>",
            "<name>",
            "</name>",
            "[",
            "]",
            "{",
            "}",
            ",",
            "\n",
            "  - ",
            "GPL (>= 2)",
            " | ",
            "LICENSE",
            "UNLICENSED",
            "(",
            ")",
            "'",
            '"',
            "�",
        ]
    ),
    max_size=80,
).map("".join)


@settings(max_examples=300, deadline=None)
@given(path=_MANIFEST_PATHS, content=st.one_of(_MANIFEST_TEXT, st.text(max_size=500)))
def test_any_manifest_text_is_judged_without_raising(path: str, content: str) -> None:
    assert all(action in ("deny", "approve", "audit") for action in actions(path, content))


@pytest.mark.parametrize(
    ("path", "content"),
    [
        ("src/a.py", "# Licensed under a commercial license. See LICENSE-COMMERCIAL.\n"),
        ("src/b.ts", "// This software is provided under a proprietary license agreement with Acme Corp.\n"),
        (
            "LICENSE",
            "PROPRIETARY SOFTWARE LICENSE AGREEMENT\n\nThis agreement is between you and Acme.\n" * 2,
        ),
        ("LICENSE.txt", "END USER LICENSE AGREEMENT\n\nPlease read this agreement carefully.\n" * 2),
    ],
)
def test_a_grant_under_a_proprietary_license_is_proprietary(path: str, content: str) -> None:
    assert expressions(path, content) == ["LicenseRef-Proprietary"]
    assert actions(path, content) == ["deny"]


def test_advice_about_proprietary_licenses_is_not_a_grant() -> None:
    assert actions("src/vendor.py", "# Don't vendor code released under a proprietary license.\n") == []


@pytest.mark.parametrize(
    ("path", "content", "expression"),
    [
        ("src/app.js", "/*!\n * widget v1.2.3\n * @license AGPL-3.0-or-later\n */\n", "AGPL-3.0-or-later"),
        ("src/tool.py", '"""Tool.\n\nLicense: GPL-3.0-or-later\n"""\n', "GPL-3.0-or-later"),
        ("src/mod.py", '__author__ = "X"\n__license__ = "GPLv2"\n', "GPL-2.0-only"),
        ("lib/x.pl", "# Licence: GNU General Public License v3\n", "GPL-3.0-only"),
        ("src/ok.js", "/** @license MIT */\n", "MIT"),
    ],
)
def test_a_license_field_line_in_a_header_is_a_declaration(path: str, content: str, expression: str) -> None:
    assert expressions(path, content) == [expression]


@pytest.mark.parametrize(
    "content",
    [
        "# License: see the LICENSE file\n",
        "# license: the terms below\n",
        'LICENSE = "GPL-3.0"  # the id we check dependencies against\n',
        "def license(self): return self._license\n",
        'FIXTURE = {\n    license: "GPL-3.0-only",\n}\n',
        "class Package:\n    license: str = 'AGPL-3.0'\n",
    ],
)
def test_a_license_line_that_names_no_license_is_not_a_declaration(content: str) -> None:
    assert actions("src/x.py", content) == []


@pytest.mark.parametrize(
    "line",
    [
        "    '# SPDX-License-Identifier: GPL-3.0-only\\n'",
        "    '// SPDX-License-Identifier: AGPL-3.0-only',",
        "    '<!-- SPDX-License-Identifier: GPL-2.0-only -->'",
    ],
)
def test_a_tag_inside_a_string_literal_is_not_a_declaration(line: str) -> None:
    assert actions("tests/test_tags.py", "CASES = [\n" + line + "\n]\n") == []


def test_a_basic_comment_still_holds_a_tag() -> None:
    assert actions("Module1.vb", "' SPDX-License-Identifier: GPL-3.0-only\nModule Module1\n") == ["deny"]


@pytest.mark.parametrize(
    ("title", "expression"),
    [
        ("The Universal Permissive License (UPL), Version 1.0\n", "UPL-1.0"),
        ("Microsoft Public License (Ms-PL)\n", "MS-PL"),
        ("PostgreSQL Licence\n", "PostgreSQL"),
        ("University of Illinois/NCSA Open Source License\n", "NCSA"),
        ("CeCILL FREE SOFTWARE LICENSE AGREEMENT\n\nVersion 2.1 dated 2013-06-21\n", "CECILL-2.1"),
    ],
)
def test_a_license_files_title_that_holds_an_id_names_it(title: str, expression: str) -> None:
    body = title + "\nSome terms that no rule knows, in many words, over several lines.\n" * 3
    assert expressions("LICENSE", body) == [expression]


@pytest.mark.parametrize(
    ("path", "content"),
    [
        (".licensee.yml", "license: GPL-3.0\nallowed:\n  - MIT\n"),
        ("config/scan.ini", "[scan]\nlicense: GPL-3.0\n"),
        ("k8s/deploy.yaml", "metadata:\n  labels:\n    license: agpl\n"),
    ],
)
def test_a_license_key_in_data_that_is_no_manifest_is_not_a_field_line(path: str, content: str) -> None:
    assert actions(path, content) == []


def test_an_eula_file_is_a_license_file() -> None:
    content = "END USER LICENSE AGREEMENT\n\nPlease read this agreement carefully.\n"
    assert actions("EULA.txt", content) == ["deny"]


@pytest.mark.parametrize(
    ("value", "expression"),
    [
        ("PSF", "PSF-2.0"),
        ("Boost", "BSL-1.0"),
        ("Artistic", "Artistic-1.0"),
        ("same as Perl", "Artistic-1.0-Perl OR GPL-1.0-or-later"),
        ("Dual MIT/GPL", "MIT OR GPL-1.0-or-later"),
        ("GPL 2 or later", "GPL-2.0-or-later"),
        ("GPLv3 or any later version", "GPL-3.0-or-later"),
    ],
)
def test_common_manifest_license_names(value: str, expression: str) -> None:
    assert expressions("setup.py", f'setup(name="x", license="{value}")\n') == [expression]


def test_boosts_id_in_a_header_is_not_the_business_source_license() -> None:
    assert expressions("src/x.hpp", "// Distributed under BSL-1.0.\nint x;\n") == ["BSL-1.0"]
    assert actions("src/x.hpp", "// Distributed under BSL-1.0.\nint x;\n") == []


@pytest.mark.parametrize(
    ("header", "expression"),
    [
        ("# Licensed under the Acme Commercial License.\n", "LicenseRef-Proprietary"),
        (
            "// Licensed under the Globex Enterprise License Agreement; see LICENSE-EE.\n",
            "LicenseRef-Proprietary",
        ),
        (
            "// Use of this software is governed by the Cockroach Community License.\n",
            "LicenseRef-Source-Available",
        ),
        ("# This file is licensed under the Confluent Community License.\n", "LicenseRef-Source-Available"),
    ],
)
def test_a_companys_own_commercial_or_community_license_is_named_by_its_kind(
    header: str, expression: str
) -> None:
    assert expressions("src/x.go", header + "package x\n") == [expression]
    assert actions("src/x.go", header + "package x\n") == ["deny"]


def test_a_proprietary_option_beside_an_open_one_is_judged_as_a_choice() -> None:
    # Composer: "an array of licenses ... the user can choose" (a disjunctive choice).
    assert actions("composer.json", '{"name": "a/b", "license": ["MIT", "proprietary"]}') == []
    assert actions("Cargo.toml", '[package]\nlicense = "LicenseRef-Proprietary AND MIT"\n') == ["deny"]
