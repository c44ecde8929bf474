"""One budget per file (issue 10, item 5): the resource cases of the review, kept small.

Each case is a file that made ckptaudit run the same bytes many times, or scan them many
times. The tests assert what bounds the work (bytes and opcodes emulated for the whole file,
a limit finding, one run per distinct member), never how long it took;
benchmarks/resource_cases.py measures time and peak memory on the full-size files.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
from loader_bytes_helpers import (
    deep_tuple_key,
    many_nested_loads,
    overlapping_members,
    repeated_proto,
    same_member_directory,
    streams_after_stop,
    zip_of,
)

import ckptaudit
from ckptaudit.findings import Status
from ckptaudit.formats import BytesSource, Container, read_container
from ckptaudit.pickle.budget import Budget
from ckptaudit.pickle.limits import DEFAULT_LIMITS, Limits


def read(data: bytes, limits: Limits = DEFAULT_LIMITS) -> Container:
    return read_container(BytesSource(data, "case"), limits)


def most_bytes(data: bytes, limits: Limits = DEFAULT_LIMITS) -> int:
    """What the file's budget allows (no compressed members here)."""
    return Budget(limits, len(data)).max_bytes


def rules(data: bytes) -> list[str]:
    return [f.rule for f in ckptaudit.audit_bytes(data).findings]


def test_a_payload_loaded_in_seventy_places_runs_within_the_budget() -> None:
    data = many_nested_loads(30_000, 70)
    limits = Limits(emulated_bytes_floor=0)  # twice the file's size: two runs of it
    container = read(data, limits)
    assert container.emulated_bytes <= most_bytes(data, limits)
    assert container.emulated_opcodes <= most_bytes(data, limits)
    # Unbounded, the nested payload alone would run 70 times: 2.1 million bytes.
    assert 30 * most_bytes(data, limits) < 70 * 30_000
    report = ckptaudit.audit_bytes(data, limits=limits)
    assert report.status is Status.DANGEROUS  # pickle.loads is dangerous by itself
    assert "CKA402" in [f.rule for f in report.findings]


def test_directory_entries_for_one_member_run_it_once() -> None:
    payload = b"\x80\x02(" + b"}" * 20_000 + b"l."
    data = same_member_directory("payload", payload, 64)
    container = read(data)
    assert len([u for u in container.units if u.member and "payload" in u.member]) == 1
    assert container.emulated_bytes <= len(payload) + 64
    assert ckptaudit.audit_bytes(data).status is Status.INCOMPATIBLE


def test_overlapping_members_count_each_time() -> None:
    """Distinct entries whose data are the same bytes: each run counts, and the budget
    stops them; the file is never compatible."""
    payload = b"\x80\x02(" + b"}" * 200_000 + b"l."
    data = overlapping_members(payload, 40)
    limits = Limits(emulated_bytes_floor=0)
    container = read(data, limits)
    assert container.emulated_bytes <= most_bytes(data, limits)
    assert not container.complete
    report = ckptaudit.audit_bytes(data, limits=limits)
    assert report.status is Status.ERROR
    assert "CKA402" in [f.rule for f in report.findings]


def test_deflated_members_have_room_for_what_they_inflate_to() -> None:
    """A compressed pickle provides its inflated size as input: no limit is hit."""
    rng = random.Random(1)
    body = b"\x80\x02(" + b"".join(b"K" + bytes([rng.randrange(4)]) for _ in range(400_000))
    body += b"l."
    data = zip_of({"model/data.pkl": body, "model/version": b"3\n"}, compress=True)
    assert len(data) * 2 < len(body)
    container = read(data, Limits(emulated_bytes_floor=0))
    assert container.complete
    assert container.emulated_bytes >= len(body)


def test_a_large_plain_pickle_read_in_growing_windows_stays_in_budget() -> None:
    """The reader retries with a window four times larger: the runs it throws away are
    refunded, so a pickle of several MiB is not cut short."""
    body = b"\x80\x02(" + b"K\x01" * (3 << 20) + b"l."
    report = ckptaudit.audit_bytes(body, limits=Limits(emulated_bytes_floor=0))
    assert "CKA402" not in [f.rule for f in report.findings]
    assert report.status is Status.INCOMPATIBLE


def test_streams_after_stop_are_capped_and_scanned_once() -> None:
    data = streams_after_stop(1 + 10_001, 60)  # the pickle, then 10,001 after its STOP
    container = read(data)
    assert container.emulated_bytes <= len(data)
    assert "CKA402" in rules(data)


def test_carving_repeated_proto_is_bounded() -> None:
    data = repeated_proto(2 << 20)
    container_error = ckptaudit.audit_bytes(data)
    assert container_error.status is Status.ERROR
    assert "CKA402" in [f.rule for f in container_error.findings]
    assert "budget" in (container_error.error or "")


_CHILD = """
import json, sys, ckptaudit
report = ckptaudit.audit_file(sys.argv[1])
print(json.dumps({"status": str(report.status), "rules": [f.rule for f in report.findings],
                  "error": report.error}))
"""


@pytest.mark.parametrize("depth", [400_000])
def test_a_deep_tuple_key_is_an_error_not_a_crash(tmp_path: Path, depth: int) -> None:
    """Hashing a 400,000-deep tuple overflowed the C stack (SIGSEGV); run in a child so
    that a crash fails this test instead of the whole run."""
    path = tmp_path / "deep.pkl"
    path.write_bytes(deep_tuple_key(depth))
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, str(path)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout)
    assert out["status"] == "error" and "CKA402" in out["rules"]
    assert "nested more than" in out["error"]


def test_a_tuple_key_within_the_limit_is_judged() -> None:
    report = ckptaudit.audit_bytes(deep_tuple_key(DEFAULT_LIMITS.max_tuple_depth - 1))
    assert report.status is Status.INCOMPATIBLE, report.findings
