"""Every hostile case of tests/hostile_cases.py (with its advisory) is caught; look-alikes are not.

The catalogue cites a public advisory or technique for each case (see
docs/notes/scanner-bypasses.md); this test holds ckptaudit to all of them.
"""

from __future__ import annotations

import sys

import hostile_cases as hc
import pytest
from support.lookalikes import Lookalike, family

import ckptaudit
from ckptaudit.findings import Severity, Status


@pytest.mark.parametrize("case", hc.CASES, ids=lambda c: c.name)
def test_hostile_case_is_never_compatible(case: hc.HostileCase) -> None:
    report = ckptaudit.audit_bytes(case.data, name=case.filename)
    assert report.status is not Status.COMPATIBLE
    if case.expect == "dangerous":
        assert report.status is Status.DANGEROUS, (case.reference, report.findings)
    else:
        # Not loadable at all: an error, or a refusal by torch's rules, is the right answer.
        assert report.status in (Status.ERROR, Status.INCOMPATIBLE, Status.DANGEROUS)
        assert not report.weights_only_compatible


@pytest.mark.parametrize("case", [c for c in hc.CASES if c.dangerous_global], ids=lambda c: c.name)
def test_hostile_case_names_the_culprit(case: hc.HostileCase) -> None:
    report = ckptaudit.audit_bytes(case.data, name=case.filename)
    named = {f.global_name for f in report.findings if f.severity is Severity.DANGEROUS}
    wanted = {case.dangerous_global, case.resolved_target} - {None}
    # A culprit reached through a dotted path may be reported under its full dotted name.
    assert named & wanted or any(n and any(w in n for w in wanted) for n in named), named


@pytest.mark.parametrize("lookalike", family("catalogue"))
def test_benign_lookalike_is_not_dangerous(lookalike: Lookalike) -> None:
    report = ckptaudit.audit_bytes(lookalike.make(), name=lookalike.filename)
    assert report.status is not Status.DANGEROUS, report.findings


def test_auditing_the_whole_catalogue_imports_nothing_it_names() -> None:
    before = set(sys.modules)
    for case in hc.CASES + hc.BENIGN_LOOKALIKES:
        ckptaudit.audit_bytes(case.data, name=case.filename)
    new = set(sys.modules) - before
    named = {c.dangerous_global.split(".")[0] for c in hc.CASES if c.dangerous_global}
    assert not (new & named), new & named
