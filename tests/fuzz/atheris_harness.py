"""Coverage-guided fuzzing of ckptaudit.audit_bytes with atheris (optional, not in CI).

    pip install atheris            # into a scratch venv; not a project requirement
    python tests/fuzz/atheris_harness.py -max_total_time=600 [corpus_dir]

The property is the one tests/fuzz/test_fuzz.py checks: a report always comes back, and
the opcodes executed never exceed the pickle bytes analysed (plus one per stream).
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports():
    import ckptaudit
    from ckptaudit.findings import FileReport
    from ckptaudit.pickle.limits import DEFAULT_LIMITS

SLACK = DEFAULT_LIMITS.max_pickles + 8


def test_one_input(data: bytes) -> None:
    report = ckptaudit.audit_bytes(data, name="<atheris>")
    if not isinstance(report, FileReport):
        raise AssertionError(type(report))
    if report.stats.opcodes > report.stats.pickle_bytes + SLACK:
        raise AssertionError(report.stats)


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
