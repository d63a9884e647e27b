"""The licenses family's labelled cases, generated from the SPDX list and the ecosystems' manifest formats.

A case is positive when the shipped bundle gives the licenses family an enforced violation for it: the
file declares a license whose category (or notice) the bundle denies or sends to approval. Under the
shipped bundle that is strong, network and weak copyleft, source-available and non-commercial licenses,
proprietary notices, and licenses no category holds; permissive and public-domain licenses pass.

Positives: ids drawn from every category of the SPDX list (license-expression's bundled ScanCode index,
every k-th id so each run is the same) in every carrier a file declares its license in: SPDX tags in each
comment style, with and without prose after the tag; each ecosystem's manifest field (npm, Composer,
Cargo, PEP 621, Poetry, setuptools, RubyGems, CocoaPods, Maven, NuGet, MSBuild, R, Mix, Cabal, RPM,
opam, Helm, conda, CITATION.cff, Galaxy) and its own names for licenses (Trove classifiers, R's names,
Maven's long names); a bare id as a LICENSE file; license headers and full texts; proprietary notices.

Negatives, for each positive kind: permissive and public-domain ids in the same carriers; `OR` with a
permissive option; a mention of a license in prose, docs, changelogs and code that is not a declaration;
a dependency's license in a lockfile or an inventory; configuration that lists licenses to deny; a tag
shown as an example; a pointer to a license file; near misses of a proprietary notice.
"""

from __future__ import annotations

from collections.abc import Callable

from maestro.policy.policies.licenses.categories import Category, index
from tests.services.guard.corpus.case import Case, request

Carrier = tuple[str, str, Callable[[str], tuple[str, str]]]
"""(name, source, id -> (path, content))."""

POSITIVE_CATEGORIES: tuple[Category, ...] = (
    "strong-copyleft",
    "network-copyleft",
    "weak-copyleft",
    "source-available",
)
NEGATIVE_CATEGORIES: tuple[Category, ...] = ("permissive", "public-domain")


def _ids(categories: tuple[Category, ...]) -> list[str]:
    """SPDX ids (not exceptions, not ScanCode's own LicenseRefs) in these categories, sorted."""
    return sorted(
        {
            e.spdx
            for e in index().values()
            if e.category in categories and not e.exception and not e.spdx.startswith("LicenseRef-")
        }
    )


def _spread(ids: list[str], count: int, offset: int) -> list[str]:
    """`count` ids spread evenly over the sorted list, starting at a different place per carrier."""
    step = max(len(ids) // count, 1)
    return [ids[(offset + i * step) % len(ids)] for i in range(count)]


def _tag(mark: str, end: str = "", prose: str = "") -> Callable[[str], tuple[str, str]]:
    def carrier(spdx: str) -> tuple[str, str]:
        return (
            "src/module.c",
            f"{mark} SPDX-License-Identifier: {spdx}{prose}{end}\n\nint main(void) {{ return 0; }}\n",
        )

    return carrier


def _file(path: str, template: str) -> Callable[[str], tuple[str, str]]:
    return lambda spdx: (path, template.replace("{id}", spdx))


CARRIERS: list[Carrier] = [
    ("spdx-tag:c", "SPDX spec annex E", _tag("//")),
    ("spdx-tag:block", "SPDX spec annex E", _tag("/*", " */")),
    ("spdx-tag:prose-after", "SPDX spec annex E; REUSE", _tag("#", prose="  -- see COPYING")),
    ("spdx-tag:html", "SPDX spec annex E", _tag("<!--", " -->")),
    ("license-file:id", "REUSE LICENSES/; bare id", _file("LICENSE", "{id}\n")),
    (
        "npm",
        "npm package.json license",
        _file("package.json", '{\n  "name": "pkg",\n  "license": "{id}"\n}\n'),
    ),
    (
        "composer",
        "Composer schema license",
        _file("composer.json", '{"name": "acme/pkg", "license": ["{id}"]}\n'),
    ),
    ("cargo", "Cargo manifest license", _file("Cargo.toml", '[package]\nname = "pkg"\nlicense = "{id}"\n')),
    (
        "pep621",
        "PEP 639 license expression",
        _file("pyproject.toml", '[project]\nname = "pkg"\nlicense = "{id}"\n'),
    ),
    (
        "poetry",
        "Poetry pyproject license",
        _file("pyproject.toml", '[tool.poetry]\nname = "pkg"\nlicense = "{id}"\n'),
    ),
    (
        "setuptools-cfg",
        "setuptools setup.cfg metadata",
        _file("setup.cfg", "[metadata]\nname = pkg\nlicense = {id}\n"),
    ),
    (
        "setuptools-py",
        "setuptools setup()",
        _file("setup.py", 'from setuptools import setup\nsetup(name="p", license="{id}")\n'),
    ),
    (
        "rubygems",
        "RubyGems specification license",
        _file("pkg.gemspec", 'Gem::Specification.new do |s|\n  s.license = "{id}"\nend\n'),
    ),
    (
        "cocoapods",
        "CocoaPods podspec license",
        _file("Pkg.podspec", "Pod::Spec.new do |s|\n  s.license = { :type => '{id}' }\nend\n"),
    ),
    (
        "maven",
        "Maven POM licenses",
        _file(
            "pom.xml",
            "<project>\n  <licenses>\n    <license><name>{id}</name></license>\n  </licenses>\n</project>\n",
        ),
    ),
    (
        "nuget",
        "NuGet nuspec license expression",
        _file(
            "Pkg.nuspec",
            '<package><metadata><license type="expression">{id}</license></metadata></package>\n',
        ),
    ),
    (
        "msbuild",
        "MSBuild PackageLicenseExpression",
        _file(
            "Pkg.csproj",
            "<Project><PropertyGroup><PackageLicenseExpression>{id}</PackageLicenseExpression></PropertyGroup></Project>\n",
        ),
    ),
    ("mix", "Hex package licenses", _file("mix.exs", 'defp package do\n  [licenses: ["{id}"]]\nend\n')),
    ("cabal", "Cabal license field", _file("pkg.cabal", "cabal-version: 2.2\nname: pkg\nlicense: {id}\n")),
    (
        "rpm",
        "RPM spec License tag (SPDX in Fedora)",
        _file("pkg.spec", "Name: pkg\nVersion: 1.0\nLicense: {id}\n"),
    ),
    ("opam", "opam license field", _file("pkg.opam", 'opam-version: "2.0"\nlicense: "{id}"\n')),
    (
        "helm",
        "Artifact Hub annotation",
        _file("Chart.yaml", "apiVersion: v2\nname: pkg\nannotations:\n  artifacthub.io/license: {id}\n"),
    ),
    (
        "conda",
        "conda-build meta.yaml about",
        _file("recipe/meta.yaml", "package:\n  name: pkg\nabout:\n  license: {id}\n"),
    ),
    (
        "citation",
        "CITATION.cff license",
        _file("CITATION.cff", "cff-version: 1.2.0\ntitle: pkg\nlicense: {id}\n"),
    ),
    (
        "galaxy",
        "Ansible Galaxy galaxy.yml",
        _file("galaxy.yml", "namespace: acme\nname: pkg\nlicense:\n  - {id}\n"),
    ),
    (
        "gradle",
        "Gradle maven-publish pom licenses",
        _file("build.gradle.kts", 'publishing { pom { licenses { license {\n  name.set("{id}")\n} } } }\n'),
    ),
    (
        "sbt",
        "sbt licenses setting",
        _file("build.sbt", 'licenses := Seq("{id}" -> url("https://x.org/l"))\n'),
    ),
    (
        "leiningen",
        "Leiningen :license",
        _file("project.clj", '(defproject x "1.0"\n  :license {:name "{id}"})\n'),
    ),
    (
        "rebar",
        "Erlang .app.src licenses",
        _file("src/x.app.src", '{application, x, [{licenses, ["{id}"]}]}.\n'),
    ),
    ("chef", "Chef metadata.rb license", _file("metadata.rb", "name 'x'\nlicense '{id}'\n")),
    (
        "oci",
        "OCI image annotation org.opencontainers.image.licenses",
        _file("Dockerfile", 'FROM alpine\nLABEL org.opencontainers.image.licenses="{id}"\n'),
    ),
    ("cpan", "CPAN::Meta::Spec license", _file("META.json", '{"name": "X", "license": ["{id}"]}\n')),
]

# Ecosystems' own names for licenses, and whether the shipped bundle flags them.
NAMED: list[tuple[str, str, str, bool]] = [
    (
        "trove",
        "pyproject.toml",
        '[project]\nclassifiers = ["License :: OSI Approved :: GNU General Public License v3 (GPLv3)"]\n',
        True,
    ),
    (
        "trove",
        "setup.py",
        'setup(classifiers=["License :: OSI Approved :: GNU Affero General '
        'Public License v3 or later (AGPLv3+)"])\n',
        True,
    ),
    (
        "trove",
        "setup.cfg",
        "[metadata]\nclassifiers =\n    License :: OSI Approved :: GNU "
        "Lesser General Public License v3 (LGPLv3)\n",
        True,
    ),
    (
        "trove",
        "pyproject.toml",
        '[project]\nclassifiers = ["License :: OSI Approved :: Mozilla Public License 2.0 (MPL 2.0)"]\n',
        True,
    ),
    ("trove", "setup.py", 'setup(classifiers=["License :: Other/Proprietary License"])\n', True),
    (
        "trove",
        "pyproject.toml",
        '[project]\nclassifiers = ["License :: OSI Approved :: MIT License"]\n',
        False,
    ),
    (
        "trove",
        "setup.py",
        'setup(classifiers=["License :: OSI Approved :: Apache Software License"])\n',
        False,
    ),
    ("trove", "setup.cfg", "[metadata]\nclassifiers =\n    License :: OSI Approved :: BSD License\n", False),
    (
        "trove",
        "pyproject.toml",
        '[project]\nclassifiers = ["License :: OSI Approved :: ISC License (ISCL)"]\n',
        False,
    ),
    (
        "trove",
        "setup.py",
        'setup(classifiers=["License :: OSI Approved :: Python Software Foundation License"])\n',
        False,
    ),
    ("r", "DESCRIPTION", "Package: pkg\nLicense: GPL-3\n", True),
    ("r", "DESCRIPTION", "Package: pkg\nLicense: GPL (>= 2)\n", True),
    ("r", "DESCRIPTION", "Package: pkg\nLicense: AGPL-3\n", True),
    ("r", "DESCRIPTION", "Package: pkg\nLicense: LGPL-2.1\n", True),
    ("r", "DESCRIPTION", "Package: pkg\nLicense: GPL-2 | GPL-3\n", True),
    ("r", "DESCRIPTION", "Package: pkg\nLicense: MIT + file LICENSE\n", False),
    ("r", "DESCRIPTION", "Package: pkg\nLicense: BSD_3_clause + file LICENSE\n", False),
    ("r", "DESCRIPTION", "Package: pkg\nLicense: Apache License 2.0\n", False),
    ("r", "DESCRIPTION", "Package: pkg\nLicense: CC0\n", False),
    ("r", "DESCRIPTION", "Package: pkg\nLicense: MIT + file LICENSE | GPL-3\n", False),
    (
        "maven-name",
        "pom.xml",
        "<licenses><license><name>GNU General Public License, Version 3</name></license></licenses>",
        True,
    ),
    (
        "maven-name",
        "pom.xml",
        "<licenses><license><name>GNU Affero General Public License v3.0</name></license></licenses>",
        True,
    ),
    (
        "maven-name",
        "pom.xml",
        "<licenses><license><name>Eclipse Public License - v 2.0</name></license></licenses>",
        True,
    ),
    (
        "maven-name",
        "pom.xml",
        "<licenses><license><name>GNU Lesser General Public License v2.1</name></license></licenses>",
        True,
    ),
    (
        "maven-name",
        "pom.xml",
        "<licenses><license><name>Server Side Public License</name></license></licenses>",
        True,
    ),
    (
        "maven-name",
        "pom.xml",
        "<licenses><license><name>The Apache Software License, Version 2.0</name></license></licenses>",
        False,
    ),
    ("maven-name", "pom.xml", "<licenses><license><name>MIT License</name></license></licenses>", False),
    (
        "maven-name",
        "pom.xml",
        "<licenses><license><name>BSD 3-Clause License</name></license></licenses>",
        False,
    ),
    (
        "maven-name",
        "pom.xml",
        "<licenses><license><name>GPLv2</name></license><license><name>Apache "
        "License 2.0</name></license></licenses>",
        False,
    ),
    ("npm-marker", "package.json", '{"name": "internal", "private": true, "license": "UNLICENSED"}\n', True),
    ("npm-marker", "package.json", '{"name": "x", "license": "(MIT OR GPL-3.0-or-later)"}\n', False),
    ("npm-marker", "package.json", '{"name": "x", "licenses": [{"type": "GPL-2.0"}]}\n', True),
    ("npm-marker", "package.json", '{"name": "x", "license": "SEE LICENSE IN LICENSE.md"}\n', False),
    ("cargo-dual", "Cargo.toml", '[package]\nname = "x"\nlicense = "MIT OR Apache-2.0"\n', False),
    ("cargo-dual", "Cargo.toml", '[package]\nname = "x"\nlicense = "MIT AND GPL-3.0-only"\n', True),
    (
        "cargo-dual",
        "Cargo.toml",
        '[package]\nname = "x"\nlicense = "Apache-2.0 WITH LLVM-exception"\n',
        False,
    ),
    (
        "cargo-dual",
        "Cargo.toml",
        '[package]\nname = "x"\nlicense = "GPL-2.0 WITH Classpath-exception-2.0"\n',
        True,
    ),
    ("rpm-old", "pkg.spec", "Name: pkg\nLicense: GPLv2+ and MIT\n", True),
    ("rpm-old", "pkg.spec", "Name: pkg\nLicense: MIT or GPLv2+\n", False),
    ("gem-list", "x.gemspec", "Gem::Specification.new do |s|\n  s.licenses = ['MIT', 'Ruby']\nend\n", False),
    ("gem-list", "x.gemspec", "Gem::Specification.new do |s|\n  s.licenses = ['AGPL-3.0']\nend\n", True),
]

NAMED += [
    ("common-name", "setup.py", 'setup(name="x", license="GPL 2 or later")\n', True),
    ("common-name", "setup.py", 'setup(name="x", license="same as Perl")\n', True),
    ("common-name", "x.gemspec", "Gem::Specification.new do |s|\n  s.license = 'AGPLv3'\nend\n", True),
    ("common-name", "setup.cfg", "[metadata]\nlicense = BSL\n", True),
    ("common-name", "setup.py", 'setup(name="x", license="Boost")\n', False),
    ("common-name", "setup.py", 'setup(name="x", license="Dual MIT/GPL")\n', False),
    ("common-name", "setup.py", 'setup(name="x", license="PSF")\n', False),
    ("common-name", "pkg.spec", "Name: x\nLicense: ASL 2.0\n", False),
    ("common-name", "setup.py", 'setup(name="x", license="Apache 2")\n', False),
]

# (kind, path, content, positive): headers, full texts and notices.
GPL_HEADER = (
    "{c} Copyright (C) 2019 Jane Hacker\n{c}\n{c} This program is "
    "free software; you can redistribute it and/or modify\n"
    "{c} it under the terms of the GNU General Public License as published by\n"
    "{c} the Free Software Foundation; either version {v} of the "
    "License, or\n{c} (at your option) any later version.\n"
)
APACHE_HEADER = (
    "{c} Copyright 2024 The Authors\n{c}\n{c} Licensed under the "
    'Apache License, Version 2.0 (the "License");\n'
    "{c} you may not use this file except in compliance with the License.\n"
)
MIT_BODY = (
    "Permission is hereby granted, free of charge, to any person obtaining a copy\nof this software and "
    'associated documentation files (the "Software"), to deal\nin the Software without restriction.\n'
)
BSD_BODY = (
    "Redistribution and use in source and binary forms, with or without "
    "modification, are permitted provided\n"
    "that the following conditions are met:\n3. Neither the name "
    "of the copyright holder nor the names of its\n"
)
TEXTS: list[tuple[str, str, str, bool]] = [
    *(
        (f"header:gpl-{v}", f"src/m{i}.{ext}", GPL_HEADER.format(c=c, v=v) + "\ncode()\n", True)
        for i, (c, ext) in enumerate([("#", "py"), (" *", "c"), ("//", "go"), ("--", "sql"), (";;", "el")])
        for v in ("2", "3")
    ),
    (
        "header:agpl",
        "app/server.py",
        "# This program is free software: you can redistribute it and/or "
        "modify\n# it under the terms of the GNU Affero General Public "
        "License as published\n# by the Free Software Foundation, either "
        "version 3 of the License.\n",
        True,
    ),
    (
        "header:lgpl",
        "lib/x.h",
        "/* This library is free software; you can redistribute it and/or\n"
        "   modify it under the terms of the GNU Lesser General Public\n"
        "   License as published by the Free Software Foundation; version "
        "2.1. */\n",
        True,
    ),
    (
        "header:mpl",
        "lib/pk11.h",
        "/* This Source Code Form is subject to the terms of the Mozilla "
        "Public\n * License, v. 2.0. If a copy of the MPL was not distributed "
        "with this\n * file, You can obtain one at http://mozilla.org/MPL/2.0/. "
        "*/\n",
        True,
    ),
    (
        "header:epl",
        "src/Main.java",
        "/*\n * This program and the accompanying materials are made "
        "available under the\n * terms of the Eclipse Public License "
        "2.0 which is available at\n * http://www.eclipse.org/legal/epl-2.0\n"
        " */\n",
        True,
    ),
    (
        "header:subject",
        "src/lib.rs",
        "// libfoo is licensed under the GPL-3.0-or-later.\nfn main() {}\n",
        True,
    ),
    ("header:subject", "src/a.py", "# Acme SDK is released under the GNU AGPL v3.\nimport os\n", True),
    ("header:subject", "src/b.ts", "// The Widget Toolkit is distributed under OSL-3.0.\nexport {}\n", True),
    ("header:subject", "src/c.py", "# Everything in this directory is licensed under EUPL-1.2.\n", True),
    (
        "header:busl",
        "src/core.go",
        "// Copyright (c) HashiCorp, Inc.\n// Use of this software is "
        "governed by the Business Source License included in the LICENSE "
        "file.\npackage core\n",
        True,
    ),
    (
        "header:busl",
        "src/d.go",
        "// Business Source License 1.1\n// Licensor: Example Corp\npackage d\n",
        True,
    ),
    (
        "header:elastic",
        "src/e.java",
        "/*\n * Licensed under the Elastic License 2.0; you may not use "
        "this file except\n * in compliance with the Elastic License "
        "2.0.\n */\n",
        True,
    ),
    ("header:sspl", "src/f.cpp", "// Licensed under the Server Side Public License, v 1.\nint f();\n", True),
    (
        "header:commons-clause",
        "src/g.py",
        "# Licensed under the Apache License, Version 2.0, with the Commons Clause.\n",
        True,
    ),
    (
        "header:polyform",
        "src/h.ts",
        "// This file is licensed under the PolyForm Noncommercial License 1.0.0.\n",
        True,
    ),
    ("header:cc-nc", "docs/talk.py", "# Content licensed under CC BY-NC-SA 4.0.\n", True),
    (
        "text:gpl3",
        "COPYING",
        "                    GNU GENERAL PUBLIC LICENSE\n            "
        "           Version 3, 29 June 2007\n\n Copyright (C) 2007 Free "
        "Software Foundation, Inc.\n",
        True,
    ),
    (
        "text:agpl3",
        "LICENSE",
        "                    GNU AFFERO GENERAL PUBLIC LICENSE\n     "
        "                  Version 3, 19 November 2007\n",
        True,
    ),
    (
        "text:lgpl21",
        "COPYING.LESSER",
        "                  GNU LESSER GENERAL PUBLIC LICENSE\n       "
        "                Version 2.1, February 1999\n",
        True,
    ),
    (
        "text:mpl2",
        "LICENSE",
        "Mozilla Public License Version 2.0\n==================================\n\n1. Definitions\n",
        True,
    ),
    (
        "text:sspl",
        "LICENSE.txt",
        "                     Server Side Public License\n                     VERSION 1, OCTOBER 16, 2018\n",
        True,
    ),
    (
        "text:busl",
        "LICENSE",
        "Business Source License 1.1\n\nParameters\n\nLicensor: Example Corp.\nChange Date: 2028-01-01\n",
        True,
    ),
    (
        "text:busl",
        "LICENSE",
        "License text copyright (c) 2020 MariaDB Corporation Ab, All "
        'Rights Reserved.\n"Business Source License" is a trademark of '
        "MariaDB Corporation Ab.\n",
        True,
    ),
    (
        "text:elastic",
        "LICENSE.md",
        "Elastic License 2.0\n\nURL: https://www.elastic.co/licensing/elastic-license\n",
        True,
    ),
    (
        "text:commons-clause",
        "LICENSE",
        '"Commons Clause" License Condition v1.0\n\nThe Software is provided '
        "to you by the Licensor under the License, as defined below, "
        "subject to the following condition.\n",
        True,
    ),
    (
        "text:polyform",
        "LICENSE.md",
        "# PolyForm Noncommercial License 1.0.0\n\n<https://polyformproject.org/licenses/noncommercial/1.0.0>\n",
        True,
    ),
    (
        "text:polyform",
        "LICENSE",
        "# PolyForm Shield License 1.0.0\n\n<https://polyformproject.org/licenses/shield/1.0.0>\n",
        True,
    ),
    (
        "text:cc-nc",
        "assets/LICENSE",
        "Attribution-NonCommercial 4.0 International\n\n=====\n\nCreative "
        "Commons Corporation is not a law firm.\n",
        True,
    ),
    ("text:cc-nd", "assets/LICENSE", "Attribution-NoDerivatives 4.0 International\n\n=====\n", True),
    (
        "text:gfdl",
        "doc/COPYING.DOC",
        "      GNU Free Documentation License\n       Version 1.3, 3 November 2008\n",
        True,
    ),
    (
        "text:artistic",
        "LICENSE",
        "               The Artistic License 2.0\n\n    Copyright (c) 2000-2006, The Perl Foundation.\n",
        True,
    ),
    (
        "text:eupl",
        "LICENCE",
        "EUROPEAN UNION PUBLIC LICENCE v. 1.2\nEUPL (c) the European Union 2007, 2016\n",
        True,
    ),
    (
        "text:osl",
        "LICENSE",
        'Open Software License ("OSL") v. 3.0\n\nThis Open Software License applies to any work\n',
        True,
    ),
    (
        "negative:text:afl",
        "LICENSE",
        'Academic Free License ("AFL") v. 3.0\n\nThis Academic Free License applies to any work\n',
        False,
    ),
    ("text:unknown", "LICENSE", "You may use this software only on Tuesdays and only for good.\n" * 4, True),
    (
        "notice:proprietary",
        "src/billing.c",
        "/*\n * Copyright (C) Acme Corp - All Rights Reserved\n * Unauthorized "
        "copying of this file, via any medium is strictly prohibited\n"
        " * Proprietary and confidential\n */\n",
        True,
    ),
    (
        "notice:proprietary",
        "src/a.py",
        "# Copyright 2024 Initech. All rights reserved.\n# Unauthorized "
        "copying, modification or distribution is strictly prohibited.\n",
        True,
    ),
    ("notice:proprietary", "src/b.ts", "// (c) Acme Corp. Confidential and proprietary.\n", True),
    ("notice:proprietary", "src/c.java", "/* ACME CORPORATION CONFIDENTIAL AND PROPRIETARY */\n", True),
    (
        "notice:proprietary",
        "src/d.py",
        "# Copyright (c) Globex Inc. All Rights Reserved.\n# Proprietary & Confidential.\n",
        True,
    ),
    (
        "notice:proprietary",
        "src/e.go",
        "// All rights reserved. Copying this file, via any medium, without "
        "written permission is strictly prohibited.\n",
        True,
    ),
    (
        "notice:proprietary",
        "src/f.py",
        "# Copyright (c) 2024 Initech. All rights reserved.\n# This source "
        "code may not be copied, reproduced or distributed in any form\n"
        "# without the prior written permission of Initech.\n",
        True,
    ),
    (
        "notice:proprietary",
        "src/g.py",
        "# Copyright 2024 Globex. All rights reserved.\n# CONFIDENTIAL\n",
        True,
    ),
    (
        "notice:proprietary",
        "src/h.cs",
        "// This software is the confidential and proprietary information of Umbrella Corp.\n",
        True,
    ),
    (
        "notice:commercial",
        "src/i.py",
        "# Licensed under a commercial license. See LICENSE-COMMERCIAL.\n",
        True,
    ),
    (
        "notice:eula",
        "LICENSE.txt",
        "END USER LICENSE AGREEMENT\n\nPlease read this agreement carefully.\n",
        True,
    ),
    (
        "negative:notice:advice-license",
        "src/j.py",
        "# Don't vendor code released under a proprietary license.\n",
        False,
    ),
    ("header:field", "dist/widget.js", "/*!\n * widget v1.2.3\n * @license AGPL-3.0-or-later\n */\n", True),
    ("header:field", "src/tool.py", '"""Tool.\n\nLicense: GPL-3.0-or-later\n"""\n', True),
    ("header:field", "src/mod.py", '__author__ = "X"\n__license__ = "GPLv2"\n', True),
    ("negative:header:field", "dist/ok.js", "/** @license MIT */\n", False),
    ("negative:header:field", "src/p.py", '"""Tool.\n\nLicense: BSD-3-Clause\n"""\n', False),
    (
        "negative:code:object-literal",
        "src/fixture.js",
        'const pkg = {\n  license: "GPL-3.0-only",\n};\n',
        False,
    ),
    ("negative:code:field-pointer", "src/q.py", "# License: see the LICENSE file\n", False),
    (
        "text:title-id",
        "LICENSE",
        "CeCILL FREE SOFTWARE LICENSE AGREEMENT\n\nVersion 2.1 dated 2013-06-21\n",
        True,
    ),
    (
        "negative:text:title-id",
        "LICENSE",
        "The Universal Permissive License (UPL), Version 1.0\n\nSubject to the condition\n",
        False,
    ),
    (
        "negative:text:title-id",
        "LICENSE.txt",
        "PostgreSQL Licence\n\nPermission to use, copy, modify and distribute\n",
        False,
    ),
    (
        "negative:text:title-id",
        "LICENSE",
        "University of Illinois/NCSA Open Source License\n\nCopyright (c) 2003\n",
        False,
    ),
    (
        "notice:eula-file",
        "EULA.txt",
        "END USER LICENSE AGREEMENT\n\nPlease read this agreement carefully.\n",
        True,
    ),
    ("negative:header:boost-id", "include/x.hpp", "// Distributed under BSL-1.0.\nint x;\n", False),
    ("notice:company-commercial", "src/k.py", "# Licensed under the Acme Commercial License.\n", True),
    (
        "notice:company-community",
        "pkg/l.go",
        "// Use of this software is governed by the Cockroach Community License.\n",
        True,
    ),
    (
        "negative:header:company-open",
        "src/m.py",
        "# Licensed under the Apache License, Version 2.0 (the Acme community edition).\n",
        False,
    ),
    # Permissive headers and texts in the same carriers.
    *(
        (f"negative:header:apache:{c.strip()}", f"src/n{i}.x", APACHE_HEADER.format(c=c), False)
        for i, c in enumerate(["#", " *", "//", "--"])
    ),
    ("negative:text:mit", "LICENSE", "MIT License\n\nCopyright (c) 2024 Example\n\n" + MIT_BODY, False),
    (
        "negative:text:mit-title",
        "LICENSE",
        "The MIT License (MIT)\n\nCopyright (c) 2015 Example\n\nSee https://opensource.org/licenses/MIT\n",
        False,
    ),
    (
        "negative:text:mit-title",
        "LICENSE.md",
        "Copyright (c) 2024 Example\n\n# MIT License\n\nUse it as the MIT License allows.\n",
        False,
    ),
    ("negative:text:bsd", "LICENSE", "Copyright (c) 2024 Example\n\n" + BSD_BODY, False),
    (
        "negative:text:isc",
        "LICENSE",
        "ISC License\n\nPermission to use, copy, modify, and/or distribute "
        "this software for any purpose with or without fee is hereby "
        "granted.\n",
        False,
    ),
    (
        "negative:text:unlicense",
        "UNLICENSE",
        "This is free and unencumbered software released into the public domain.\n",
        False,
    ),
    (
        "negative:text:apache",
        "LICENSE",
        "                                 Apache License\n           "
        "                Version 2.0, January 2004\n",
        False,
    ),
    ("negative:text:cc0", "LICENSE", "CC0 1.0 Universal\n\nStatement of Purpose\n", False),
    (
        "negative:text:boost",
        "LICENSE_1_0.txt",
        "Boost Software License - Version 1.0 - August 17th, 2003\n",
        False,
    ),
    (
        "negative:header:go-bsd",
        "main.go",
        "// Copyright 2009 The Go Authors. All rights reserved.\n// Use "
        "of this source code is governed by a BSD-style\n// license that "
        "can be found in the LICENSE file.\npackage main\n",
        False,
    ),
    (
        "negative:header:subject",
        "src/lib.rs",
        "// libfoo is licensed under the MIT License.\nfn main() {}\n",
        False,
    ),
    (
        "negative:header:subject",
        "src/x.py",
        "# The Foo project is released under the Apache License 2.0.\n",
        False,
    ),
    (
        "negative:header:subject",
        "src/y.py",
        "# Everything in this directory is licensed under BSD-2-Clause.\n",
        False,
    ),
    (
        "negative:header:ms",
        "src/c.ts",
        "// Copyright (c) Microsoft Corporation. All rights reserved.\n// Licensed under the MIT License.\n",
        False,
    ),
    # Near misses of a proprietary notice.
    (
        "negative:notice:copyright-only",
        "src/a.py",
        "# Copyright (c) 2024 Example Inc. All rights reserved.\nimport os\n",
        False,
    ),
    (
        "negative:notice:advice",
        "src/b.py",
        "# Proprietary and confidential code must never be pasted into prompts.\n",
        False,
    ),
    (
        "negative:notice:tokens",
        "src/c.py",
        "# Copyright 2024 Example. All rights reserved.\n# Keeps the tokens confidential.\n",
        False,
    ),
    (
        "negative:notice:terms",
        "docs/policy.md",
        "# Policy\n\nUnauthorized use of the API is prohibited by our terms.\n",
        False,
    ),
    (
        "negative:notice:classification",
        "src/d.py",
        'LEVELS = ["public", "internal", "confidential"]\n',
        False,
    ),
]

# Mentions that are not declarations, and files that list other packages' licenses.
MENTIONS: list[tuple[str, str, str]] = [
    ("prose:readme", "README.md", "# Tool\n\nWe chose MIT over GPL because we want companies to use it.\n"),
    (
        "prose:faq",
        "docs/faq.rst",
        "Why not GPL?\n============\n\nThe GNU General Public License version 3 is too strict.\n",
    ),
    ("prose:changelog", "CHANGELOG.md", "## 2.0\n\n- Relicensed from AGPL-3.0 to MIT.\n"),
    (
        "prose:docs-example",
        "docs/CONTRIBUTING.md",
        "Add a tag:\n\n```c\n// SPDX-License-Identifier: GPL-2.0-only\n```\n",
    ),
    (
        "prose:inline-code",
        "docs/style.md",
        "Start files with `SPDX-License-Identifier: AGPL-3.0-only` if you must.\n",
    ),
    (
        "prose:comparison",
        "docs/licensing.md",
        "| License | Copyleft |\n|---|---|\n| GPL-3.0 | strong |\n| SSPL-1.0 | source-available |\n",
    ),
    ("code:comment", "src/guard.py", "# We avoid GPL code: see docs/licensing.md\nimport os\n"),
    (
        "code:negation",
        "src/scan.py",
        "# Don't vendor code licensed under the GNU GPL v3 here.\nBANNED = ['GPL-3.0']\n",
    ),
    (
        "code:question",
        "src/check.py",
        "# Check whether a dependency is licensed under the AGPL before vendoring it.\n",
    ),
    ("code:string", "src/tags.py", 'TAG = "SPDX-License-Identifier: GPL-3.0-only"\n'),
    ("code:grep", "scripts/check.sh", "grep -r 'SPDX-License-Identifier: GPL' src/\n"),
    ("code:compare", "src/policy.py", 'if license_id == "SSPL-1.0":\n    raise Refused(license_id)\n'),
    (
        "lockfile:npm",
        "package-lock.json",
        '{"packages": {"node_modules/gpl-lib": {"version": "1.0.0", "license": "GPL-3.0-only"}}}\n',
    ),
    ("lockfile:yarn", "yarn.lock", 'gpl-lib@^1:\n  version "1.0.0"\n  license "GPL-3.0"\n'),
    ("lockfile:pnpm", "pnpm-lock.yaml", "packages:\n  /agpl-lib@1.0.0:\n    license: AGPL-3.0-only\n"),
    ("lockfile:cargo", "Cargo.lock", '[[package]]\nname = "gpl-crate"\nversion = "1.0.0"\n'),
    ("lockfile:poetry", "poetry.lock", '[[package]]\nname = "gpl-lib"\nlicense = "GPL-3.0"\n'),
    ("lockfile:composer", "composer.lock", '{"packages": [{"name": "x/y", "license": ["GPL-3.0-only"]}]}\n'),
    ("lockfile:gem", "Gemfile.lock", "GEM\n  specs:\n    gpl-gem (1.0)\n"),
    ("lockfile:go", "go.sum", "github.com/gpl/lib v1.0.0 h1:abc=\n"),
    ("inventory:notices", "THIRD_PARTY_NOTICES.txt", "libfoo 1.0: GPL-2.0-only\nlibbar 2.0: AGPL-3.0\n"),
    (
        "inventory:dist-info",
        "site-packages/foo-1.0.dist-info/METADATA",
        "Metadata-Version: 2.1\nLicense-Expression: GPL-3.0-or-later\n",
    ),
    ("inventory:pkg-info", "PKG-INFO", "Metadata-Version: 2.1\nLicense: GPL-3.0-or-later\n"),
    (
        "inventory:sbom",
        "sbom.spdx.json",
        '{"packages": [{"name": "x", "licenseConcluded": "GPL-2.0-only"}]}\n',
    ),
    (
        "config:policy",
        "config/licenses.yaml",
        "licenses:\n  deny:\n    - GPL-3.0\n    - AGPL-3.0-only\n  allow: [MIT]\n",
    ),
    ("config:deny-toml", "deny.toml", '[licenses]\ndeny = ["GPL-3.0", "AGPL-3.0"]\n'),
    ("config:json", "policy.json", '{"deny": ["GPL-3.0", "SSPL-1.0"], "allow": ["MIT"]}\n'),
    ("config:licensee", ".licensee.yml", "license: GPL-3.0\nallowed:\n  - MIT\n"),
    ("data:api", "fixtures/repo.json", '{"name": "linux", "license": {"spdx_id": "GPL-2.0"}}\n'),
    (
        "manifest:dependency",
        "package.json",
        '{"name": "x", "license": "MIT", "dependencies": {"gpl-lib": "^1.0.0"}}\n',
    ),
    (
        "manifest:dependency",
        "pyproject.toml",
        '[project]\nname = "x"\nlicense = "Apache-2.0"\ndependencies = ["agpl-tool>=1"]\n',
    ),
    ("manifest:pointer", "Cargo.toml", '[package]\nname = "x"\nlicense-file = "LICENSE"\n'),
    ("manifest:pointer", "pyproject.toml", '[project]\nname = "x"\nlicense = {file = "LICENSE"}\n'),
    ("manifest:none", "go.mod", "module example.com/x\n\ngo 1.22\n\nrequire github.com/gpl/lib v1.0.0\n"),
    (
        "manifest:none",
        "Chart.yaml",
        "apiVersion: v2\nname: x\ndescription: A chart (the app is AGPL, see docs)\n",
    ),
    (
        "prose:badge",
        "README.md",
        "[![License: GPL v3](https://img.shields.io/badge/License-GPLv3-blue.svg)](LICENSE)\n",
    ),
    (
        "code:classifier-table",
        "src/trove.py",
        'GPL = "License :: OSI Approved :: GNU General Public License v3 (GPLv3)"\n',
    ),
    ("yaml:nested", ".github/workflows/ci.yml", "jobs:\n  scan:\n    with:\n      license: GPL-3.0\n"),
    ("yaml:label", "k8s/deploy.yaml", "metadata:\n  labels:\n    app: x\n    license: agpl\n"),
    ("yaml:product-key", "values.yaml", 'license: "eyJhbGciOiJSUzI1NiJ9.cGF5bG9hZA"\n'),
    ("yaml:product-key", "helm/values.yaml", "license:\n  secretName: gitlab-license\n  key: license\n"),
    ("yaml:edition", "config.yml", "license: enterprise\n"),
    (
        "dockerfile:package",
        "Dockerfile",
        "FROM debian\nRUN apt-get install -y gpl-tool  # GPL-3.0 licensed\n",
    ),
    (
        "gradle:dependency",
        "build.gradle",
        "dependencies {\n  implementation 'org.gnu:gpl-lib:1.0' // GPL-3.0\n}\n",
    ),
    (
        "code:string-tag",
        "tests/test_tags.py",
        "CASES = [\n    '# SPDX-License-Identifier: GPL-3.0-only\\n',\n]\n",
    ),
    (
        "late-header",
        "src/late.c",
        "int x;\n" * 80 + "/* This program is free software; you can redistribute it under "
        "the terms of the GNU General Public License */\n",
    ),
]

# `OR` with a permissive option, in the carriers above.
DUAL = [
    "MIT OR GPL-3.0-only",
    "Apache-2.0 OR AGPL-3.0-or-later",
    "BSD-3-Clause OR SSPL-1.0",
    "(MIT OR GPL-2.0-or-later)",
    "GPL-2.0-only OR BSD-2-Clause",
    "ISC OR LGPL-3.0-only",
    "Unlicense OR BUSL-1.1",
    "MPL-2.0 OR Apache-2.0",
    "(GPL-2.0-only WITH Linux-syscall-note) OR MIT",
    "0BSD OR EUPL-1.2",
]
# `AND` with a restrictive part, and exceptions, in the same carriers.
COMBINED = [
    "MIT AND GPL-3.0-only",
    "Apache-2.0 AND LGPL-2.1-or-later",
    "(MIT OR Apache-2.0) AND AGPL-3.0-only",
    "GPL-2.0-only WITH Classpath-exception-2.0",
    "GPL-3.0-or-later WITH GCC-exception-3.1",
    "BSD-3-Clause AND CC-BY-NC-4.0",
    "Apache-2.0 WITH Commons-Clause",
    "LicenseRef-acme-internal",
]


GO_MODULES: list[tuple[str, str, bool]] = [
    (
        "go-module:gpl",
        "                    GNU GENERAL PUBLIC LICENSE\n                       Version 3, 29 June 2007\n",
        True,
    ),
    (
        "go-module:agpl",
        "                    GNU AFFERO GENERAL PUBLIC LICENSE\n                       Version 3\n",
        True,
    ),
    ("go-module:busl", "Business Source License 1.1\n\nParameters\n\nLicensor: Example Corp.\n", True),
    ("negative:go-module:bsd", "Copyright (c) 2009 The Go Authors.\n\n" + BSD_BODY, False),
    ("negative:go-module:mit", "MIT License\n\nCopyright (c) 2024 Example\n\n" + MIT_BODY, False),
    (
        "negative:go-module:apache",
        "                Apache License\n                Version 2.0, January 2004\n",
        False,
    ),
]


def _cases() -> list[Case]:
    cases: list[Case] = []

    def add(kind: str, positive: bool, path: str, content: str, source: str) -> None:
        n = len(cases)
        context = [{"path": path, "content": content}]
        cases.append(Case("licenses", kind, positive, request("licenses", n, context=context), source))

    flagged, passing = _ids(POSITIVE_CATEGORIES), _ids(NEGATIVE_CATEGORIES)
    for offset, (name, source, carrier) in enumerate(CARRIERS):
        for spdx in _spread(flagged, 8, offset):
            add(f"{name}", True, *carrier(spdx), f"{source}; SPDX list via ScanCode LicenseDB")
        for spdx in _spread(passing, 6, offset):
            add(
                f"negative:{name}:permissive",
                False,
                *carrier(spdx),
                f"{source}; SPDX list via ScanCode LicenseDB",
            )
        add(
            f"negative:{name}:or-permissive",
            False,
            *carrier(DUAL[offset % len(DUAL)]),
            "SPDX spec annex D: OR",
        )
        add(f"{name}:and", True, *carrier(COMBINED[offset % len(COMBINED)]), "SPDX spec annex D: AND, WITH")
    for kind, path, content, positive in NAMED:
        add(
            kind if positive else f"negative:{kind}",
            positive,
            path,
            content,
            "the ecosystem's own license names",
        )
    for kind, path, content, positive in TEXTS:
        add(kind, positive, path, content, "license texts and headers as published")
    for kind, path, content in MENTIONS:
        add(f"negative:{kind}", False, path, content, "mentions and inventories that are not declarations")
    # Go has no license field: a module's LICENSE beside its go.mod is its declaration.
    go_mod = {"path": "go.mod", "content": "module example.com/x\n\ngo 1.22\n"}
    for kind, text, positive in GO_MODULES:
        context = [go_mod, {"path": "LICENSE", "content": text}]
        n = len(cases)
        request_ = request("licenses", n, context=context)
        cases.append(Case("licenses", kind, positive, request_, "Go modules reference: module licenses"))
    return cases


CASES: list[Case] = _cases()
