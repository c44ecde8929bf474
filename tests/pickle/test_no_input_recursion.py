"""No recursion as deep as the file likes (issue 10, item 5).

Every function in src/ that calls itself, directly or through others, either recurses on
something the file does not control or is capped: tuples by the emulator
(``max_tuple_depth``), the object tree by migrate's own limit, and the helpers below by
theirs. These inputs are far deeper than Python's recursion limit: an uncapped recursion
fails them with RecursionError.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from loader_bytes_helpers import global_, torch_zip_with, unicode_

import ckptaudit
from ckptaudit.errors import MigrationRefused
from ckptaudit.findings import Status
from ckptaudit.migrate.convert import NotConvertible, as_bytes, decode_numpy_array
from ckptaudit.migrate.plan import field_kind
from ckptaudit.pickle.nodes import Call, Global

DEEP = 50_000


def _global(qualified: str) -> Global:
    module, name = qualified.rsplit(".", 1)
    return Global(module, name, 0, "GLOBAL", False)


def test_bytes_wrapped_in_newobj_as_deep_as_the_file_likes() -> None:
    node: object = b"x"
    for _ in range(DEEP):
        node = Call(
            _global("copyreg.__newobj__"), (_global("builtins.bytes"), node), None, "REDUCE", 0
        )
    assert as_bytes(node) is None  # refused past a few wrappers, not a RecursionError
    one = Call(_global("copyreg.__newobj__"), (_global("builtins.bytes"), b"x"), None, "REDUCE", 0)
    assert as_bytes(one) == b"x"


def test_numpy_shape_with_more_dimensions_than_numpy_allows() -> None:
    state = (
        1,
        (1,) * DEEP,
        Call(_global("numpy.dtype"), ("f8", False, True), None, "REDUCE", 0),
        False,
        b"\x00" * 8,
    )
    node = Call(_global("numpy.core.multiarray._reconstruct"), (), None, "REDUCE", 0)
    node.state, node.builds = state, 1
    with pytest.raises(NotConvertible, match="dimensions"):
        decode_numpy_array(node)


def test_deques_of_deques_as_deep_as_the_file_likes() -> None:
    node: object = 1
    for _ in range(DEEP):
        node = Call(_global("collections.deque"), ([node],), None, "REDUCE", 0)
    kind = field_kind(node)
    assert kind.startswith("deque@None[deque@None[") and kind.count("[") <= 9


def test_a_deep_list_and_dict_tree_is_audited_and_migration_refuses_it(tmp_path: Path) -> None:
    """Lists and dicts 100,000 deep: the audit walks them without recursion; migrate's
    converter stops at its own depth limit with a clear refusal."""
    deep = b"]" * 100_000 + b"a" * 99_999
    deep_dicts = b"}" + (unicode_("k") + b"}") * 100_000 + b"s" * 100_000
    deque = global_("collections", "deque") + b")R"
    body = b"\x80\x02}" + unicode_("l") + deep + b"s" + unicode_("d") + deep_dicts + b"s"
    body += unicode_("q") + deque + b"s."
    source = tmp_path / "deep.pt"
    source.write_bytes(torch_zip_with({}, body))
    report = ckptaudit.audit_file(source)
    assert report.status is Status.INCOMPATIBLE, report.findings
    with pytest.raises(MigrationRefused, match="nested deeper than"):
        ckptaudit.migrate(source, tmp_path / "fixed.pt")
