"""What license texts look like: the patterns that recognise SPDX tags, license grants in file headers,
full license texts, the exceptions granted beside them and proprietary notices (names says which SPDX ids
the names they match stand for).

Every pattern is google-re2 (linear time). Words of a phrase may be separated by any gap, comment markers
included, so a header broken over ` * ` or `# ` lines still reads as one sentence.
"""

from __future__ import annotations

import re2

# A gap between two words of a phrase: spaces, line breaks and the comment markers that start a line.
_GAP = r"[\s#*/;%!|<>-]+"
_MARK = r"[ \t]*(?:(?:[#*/;%!|<>-]+|'[ \t]|\(\*|\{-|rem\b|::|dnl\b)[ \t]*)*"
"""Comment markers that may open a line before a tag or a title. A quote is Basic's comment only before a
space: `'# SPDX-License-Identifier: ...` is a string literal in code (a test's fixture), not a comment."""


def _words(pattern: str) -> str:
    """A pattern whose spaces (outside character classes) match any gap between words, markers included."""
    out: list[str] = []
    in_class = escaped = False
    for char in pattern:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "[":
            in_class = True
        elif char == "]":
            in_class = False
        elif char == " " and not in_class:
            out.append(_GAP)
            continue
        out.append(char)
    return "".join(out)


SPDX_TAG = re2.compile(
    r"(?im)^" + _MARK + r"@?SPDX-License-Identifier[ \t]*:[ \t]*(?P<expr>[^\r\n]*)",
)
# What may follow the expression on its line: a comment's end, or the right edge of a comment box.
TAG_END = re2.compile(r"\s*(?:\*/|-->|-\}|\*\)|\"\"\"|''').*$|[\s\"',;*|#]+$")
# A header's license field: JSDoc's `@license`, a docstring's `License:`, Python's `__license__ =`.
FIELD_LINE = re2.compile(
    r"(?im)^"
    + _MARK
    + r"[\"']{0,3}(?:@licen[cs]e[ \t]+|licen[cs]e[ \t]*:[ \t]*|__license__[ \t]*=[ \t]*[\"'])"
    # A quoted value after `license:` is data in code (an object literal), not a header's field.
    r"(?P<value>[^\r\n\"']{1,120})"
)
FENCE = re2.compile(r"(?m)^[ \t]*(?:```|~~~)")

_LICENSE = r"Licen[cs]e"
_VERSION = r"v(?:ersion)?\.?(?: )?"

# License names, each alternative with its own groups; name_to_spdx turns the groups into an SPDX id.
_NAME = _words(
    r"(?:"
    rf"(?:GNU )?(?P<gnu>Affero |Lesser |Library )?General Public {_LICENSE}"
    rf"(?:[^.]{{0,120}}?\b{_VERSION}(?P<gnuv>[123](?:\.[01])?))?"
    r"(?:[^.]{0,80}?(?P<gnul>later version|or later))?"
    r"|(?:GNU )?(?P<gs>A|L)?GPL(?:[- ]?v?(?P<gsv>[123](?:\.[01])?))?(?P<gsl>\+|-or-later| or later)?(?:\W|$)"
    rf"|Apache(?: Software)? {_LICENSE}(?:,? {_VERSION}(?P<apv>[12]\.[01]))?|Apache[- ]2\.0|ASL[- ]?2\b"
    rf"|Mozilla Public {_LICENSE}(?:,? {_VERSION}(?P<mplv>[12]\.[01]))?|MPL[- ]?v?(?P<mplv2>[12]\.[01])"
    rf"|Eclipse Public {_LICENSE}(?:,?(?: -)? {_VERSION}(?P<eplv>[12]\.0))?|EPL[- ]?v?(?P<eplv2>[12]\.0)"
    rf"|Common Development and Distribution {_LICENSE}|CDDL"
    rf"|Server Side Public {_LICENSE}|SSPL"
    r"|PolyForm[- ](?P<pf2>Noncommercial|Strict|Small[- ]Business|Perimeter|Shield|Internal[- ]Use"
    r"|Free[- ]Trial)"
    rf"|Business Source {_LICENSE}|BUSL|BSL 1\.1"
    rf"|Elastic {_LICENSE}(?: v?2(?:\.0)?)?|ELv2"
    r"|Commons Clause"
    r"|Creative Commons (?P<cc>Attribution(?:[- ](?:Non-?Commercial|NoDerivatives|NoDerivs|ShareAlike))*)"
    rf"(?: {_LICENSE})?(?:,? (?:{_VERSION})?(?P<ccv>[1-4]\.0))?"
    r"|CC[- ]BY(?P<ccs>(?:-(?:NC|ND|SA))*)(?:[- ](?P<ccsv>[1-4]\.0))?"
    r"|CC0|Creative Commons Zero"
    r"|PolyForm (?P<pf>Noncommercial|Strict|Small Business|Perimeter|Shield|Internal Use|Free Trial)"
    rf" {_LICENSE}"
    # A company's own license, named by its kind: "the Acme Commercial License", "a Community License".
    rf"|(?P<closed>(?:[\w.&-]+ ){{0,3}}(?:proprietary|commercial|closed[- ]source|enterprise)(?: software)?"
    rf" {_LICENSE}(?: agreement)?|end[- ]user {_LICENSE} agreement|EULA\b)"
    rf"|(?P<community>(?:[\w.&-]+ ){{0,3}}(?:community|source[- ]available) {_LICENSE}(?: agreement)?)"
    rf"|Boost Software {_LICENSE}"
    rf"|GNU Free Documentation {_LICENSE}(?:,? {_VERSION}(?P<fdlv>1\.[123]))?"
    rf"|\"?Artistic {_LICENSE}\"?(?: (?:{_VERSION})?(?P<artv>[12]\.0))?"
    rf"|European Union Public {_LICENSE}(?: \(\"?EUPL\"?\))?(?:,? v\.? ?(?P<euplv>1\.[012]))?"
    rf"|Open Software {_LICENSE}(?: \(\"?OSL\"?\))?(?:,? v\.? ?(?P<oslv>[123]\.[01]))?"
    rf"|Academic Free {_LICENSE}(?: \(\"?AFL\"?\))?(?:,? v\.? ?(?P<aflv>[123]\.[012]))?"
    rf"|zlib(?:/libpng)? {_LICENSE}"
    r"|(?:the )?Unlicense"
    r"|(?:(?:new|modified|simplified|revised|original) )?BSD(?:[- ](?P<bsdn>[0234])[- ]?Clause)?"
    r"|ISC\b"
    r"|(?-i:MIT)\b"
    # Any other SPDX id ("under OSL-3.0"); name_to_spdx keeps it only if it is on the list.
    r"|(?P<id>[A-Za-z][A-Za-z0-9+_-]*(?:\.[A-Za-z0-9+_-]+)*)"
    r")"
)

# What makes a header a grant: the file is licensed under the name that follows.
GRANT = re2.compile(
    r"(?i)(?:"
    + _words(
        r"(?P<g1>(?:\b(?-i:[A-Z])[\w.-]*(?: [\w.-]+){0,3} is free software[;:,]? (?:you can )?)?"
        r"redistribute[^.;]{0,60}?\bunder)"
    )
    + r"|"
    + _words(
        r"(?P<g2>this (?:file|program|library|software|code|source code(?: form)?|module|project|work|package"
        r"|component|font|material|document(?:ation)?|content|header|plugin|crate|application|script|repository)s?"
        r"\b[^.;]{0,80}?(?:(?:licen[cs]ed|released|distributed|made available|provided|published|offered"
        r"|available|covered|governed|used|copied|modified)\b[^.;]{0,30}?\b(?:under|by)|subject to))"
    )
    + r"|"
    + _words(r"(?P<g3>licenses this file to you under)")
    + r"|(?m:^)"
    + _MARK
    + _words(r"(?P<g4>(?-i:Licen[cs]ed|Released|Distributed|Dual[- ]licensed|Made available) under)")
    + r"|[.;:)][ \t]+"
    + _words(r"(?P<g5>(?-i:Licen[cs]ed|Released|Distributed|Dual[- ]licensed) under)")
    + r"|"
    # Any subject: "libfoo is licensed under", "Everything here is released under", "content licensed under".
    + _words(
        r"(?P<g6>\b(?:is|are)(?: (?:also|now|hereby|currently|being|all|itself))? (?:dual[- ])?"
        r"(?:licen[cs]ed|released|distributed|made available|available|provided|published|offered)\b"
        r"[^.;]{0,30}?\b(?:under|by))"
    )
    + r"|"
    + _words(r"(?P<g7>\b(?:dual[- ])?(?:licen[cs]ed|released) under)")
    + r")"
    + _words(r"(?: the)?(?: terms (?:and conditions )?of)?(?: either)?(?: the| a| an)? (?P<name>")
    + _NAME
    + r")"
)
GRANT_LEADS = ("g1", "g2", "g3", "g4", "g5", "g6", "g7")
SUBJECT_LEADS = ("g6", "g7")
"""Leads that stand for any subject: a question or a negation before them on the line makes no grant."""
NOT_A_GRANT = re2.compile(
    r"(?i)\b(?:if|whether|unless|when|check(?:s|ing)?|ensure|verify|detect|returns?|don'?t|do not|never|avoid"
    r"|no|not|any|which|what|whose|dependenc(?:y|ies)|vendored|third[- ]party)\b"
)
NAME_ONLY = re2.compile(r"(?i)^\s*(?:the\s+)?(?P<name>" + _NAME + r")")
"""A license name alone, as a manifest's field holds it."""


def _phrase(text: str) -> str:
    """A literal phrase whose words may be separated by any gap."""
    return _GAP.join(re2.escape(word) for word in text.split())


# Exceptions a header or a text grants beside a GNU license, by their published wording: (group, pattern, id).
EXCEPTION_RULES: tuple[tuple[str, str, str], ...] = (
    ("x_gcc", r"GCC Runtime Library Exception", "GCC-exception-3.1"),
    (
        "x_classpath",
        r"\"?Classpath\"? exception|permission to link this library with independent modules",
        "Classpath-exception-2.0",
    ),
    ("x_bison", r"special exception[^.]{0,200}?Bison", "Bison-exception-2.2"),
    (
        "x_autoconf",
        r"special exception[^.]{0,200}?(?:generated by|output of) Autoconf",
        "Autoconf-exception-2.0",
    ),
    ("x_libtool", r"special exception[^.]{0,200}?(?:GNU )?Libtool", "Libtool-exception"),
    ("x_font", r"font exception|special exception[^.]{0,200}?embed[^.]{0,40}?font", "Font-exception-2.0"),
    ("x_syscall", r"normal system calls[^.]{0,80}?not[^.]{0,40}?derived work", "Linux-syscall-note"),
)
EXCEPTION = re2.compile(
    r"(?i)" + "|".join(f"(?P<{key}>{_words(pattern)})" for key, pattern, _ in EXCEPTION_RULES)
)
GNU_ID = re2.compile(r"^(?:A|L)?GPL-[123]\.[01](?:-only|-or-later)$")
"""A GNU license id alone: the licenses these exceptions are written for."""


# Full license texts: a title at the start of a line, or the sentence that grants the license.
TEXT_RULES: tuple[tuple[str, str], ...] = (
    (
        "gnu_title",
        r"(?m:^)[ \t]*GNU (?P<tg>AFFERO |LESSER |LIBRARY )?GENERAL PUBLIC LICEN[CS]E\s+Version "
        r"(?P<tgv>[123](?:\.[01])?),",
    ),
    ("apache_title", r"(?m:^)[ \t]*Apache License\s+Version 2\.0, January 2004"),
    ("mpl_title", r"(?m:^)[ \t]*Mozilla Public License,?\s+Version (?P<tmv>[12]\.[01])"),
    ("epl_title", r"(?m:^)[ \t]*Eclipse Public License - v(?:ersion)? ?(?P<tev>[12]\.0)"),
    ("cddl_title", r"(?m:^)[ \t]*COMMON DEVELOPMENT AND DISTRIBUTION LICENSE \(CDDL\)"),
    ("sspl_title", r"(?m:^)" + _MARK + r"Server Side Public License,?\s+(?:VERSION|v\.?) ?1\b"),
    ("busl_title", r"(?m:^)" + _MARK + r"Business Source License 1\.[01]"),
    ("busl_mark", r"\"Business Source License\" is a trademark of"),
    ("elastic_title", r"(?m:^)" + _MARK + r"Elastic License 2\.0"),
    ("commons_title", r"\"?Commons Clause\"? License Condition v1\.0"),
    ("commons_with", r"\bwith (?:the )?\"?Commons Clause\b"),
    (
        "polyform_title",
        r"(?m:^)" + _MARK + r"PolyForm (?P<tpf>Noncommercial|Small Business|Perimeter|Shield|Internal Use"
        r"|Free Trial|Strict|Countdown|Project) License 1\.0\.0",
    ),
    (
        "commons_body",
        _phrase("The Software is provided to you by the Licensor under the License, as defined below,"),
    ),
    (
        "cc_title",
        r"(?m:^)" + _MARK + r"(?:Creative Commons )?(?:Legal Code\s+)?Attribution"
        r"(?P<tcc>(?:-(?:NonCommercial|ShareAlike|NoDerivatives|NoDerivs))*) (?P<tccv>[1-4]\.0)"
        r" (?:International|Unported|Generic)",
    ),
    ("cc0_title", r"(?m:^)" + _MARK + r"CC0 1\.0 Universal"),
    ("mit_title", r"(?m:^)" + _MARK + r"(?:The )?MIT License(?: \(MIT\))?[ \t]*(?m:$)"),
    ("mit_body", _phrase("Permission is hereby granted, free of charge, to any person obtaining a copy")),
    (
        "isc_body",
        _phrase("Permission to use, copy, modify, and")
        + r"(?:/or)?"
        + _GAP
        + _phrase("distribute this software for any purpose with or without fee is hereby granted"),
    ),
    ("bsd_body", _phrase("Redistribution and use in source and binary forms, with or without modification")),
    ("unlicense_body", _phrase("This is free and unencumbered software released into the public domain")),
    ("zlib_body", _phrase("Permission is granted to anyone to use this software for any purpose, including")),
    ("boost_title", r"(?m:^)" + _MARK + r"Boost Software License - Version 1\.0"),
    ("wtfpl_title", r"DO WHAT THE FUCK YOU WANT TO PUBLIC LICENSE"),
    ("psf_title", r"PYTHON SOFTWARE FOUNDATION LICENSE VERSION 2"),
)
TEXT = re2.compile(r"(?i)" + "|".join(f"(?P<{key}>{pattern})" for key, pattern in TEXT_RULES))

# Proprietary notices: a line that says so, or "All rights reserved" with a restriction and no grant.
NOTICE = re2.compile(
    r"(?im)(?:^"
    + _MARK
    # "(c) Acme Corp. Confidential and proprietary." : a few words may come before the phrase on its line.
    + r"(?:[^\n]*?[\s.,;:(-])?"
    + r"(?P<n1>(?:proprietary (?:and|&) confidential|confidential (?:and|&) proprietary|company confidential"
    r"|strictly confidential|highly confidential)\b)[ \t]*(?:[.!:;,)\]*/-]|information\b|$)"
    + r"|(?P<n2>"
    + _words(
        r"unauthori[sz]ed (?:copying|use|reproduction|distribution|disclosure|modification)"
        r"(?:(?:,| and| or| and/or|,? or|,? and)"
        r" (?:copying|use|reproduction|distribution|disclosure|modification))*"
        r"(?: of this (?:file|software|source|code|program|document|material|work|project)"
        r"[^.]{0,80}?prohibited"
        r"|[^.]{0,80}?strictly prohibited)"
    )
    + r")|(?P<n8>"
    + _words(
        r"(?:copying|use|reproduction|distribution|modification|disclosure)[^.]{0,120}?without (?:the )?"
        r"(?:(?:prior|express|explicit) )*(?:written )?(?:permission|consent|authori[sz]ation)[^.]{0,60}?"
        r"(?:is |are )?strictly prohibited"
    )
    + r")|(?P<n3>"
    + _words(
        r"this (?:file|software|source code|code|program|document|material|work|project|library|module)s? "
        r"(?:is|are|contains?|constitutes?) (?:the )?(?:highly |strictly )?(?:proprietary|confidential)\b"
    )
    + r")|(?P<n4>"
    + _words(
        r"(?:may not|must not|shall not|cannot|can not) (?:be )?(?:used|copied|reproduced|distributed"
        r"|disclosed|modified|published|transmitted|sold)[^.]{0,80}?without (?:the )?"
        r"(?:(?:prior|express|explicit) )*(?:written )?"
        r"(?:permission|consent|authori[sz]ation)"
    )
    + r")|(?P<n5>all rights reserved)|^"
    + _MARK
    + r"(?P<n6>(?:company |strictly |highly )?confidential(?: information)?)[ \t]*(?:[.!:;,)\]*-]|$)"
    + r"|(?P<n7>"
    + _words(r"confidential (?:information|property|material) of")
    + r"))"
)

# Only text holding one of these can hold a header, a full text or a notice (lower-case, plain `in`).
KEYWORDS = (
    "licen",
    "copyright",
    "confidential",
    "proprietary",
    "permission",
    "redistribut",
    "public domain",
    "rights reserved",
    "commons clause",
    "gpl",
    " under ",
)
