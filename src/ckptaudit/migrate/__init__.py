"""Fix checkpoints without running them: ``migrate`` converts a checkpoint into one that
``torch.load(f, weights_only=True)`` loads, ``load`` does it in memory, ``allowlist`` writes
the ``add_safe_globals`` snippet for files a user trusts.

Data flows one way: read (formats, pickle VM) -> plan (convert each object) -> write
(pickler, zip or safetensors writer) -> verify -> rename. Nothing named in the file is
imported, resolved or called.
"""

from ckptaudit.migrate.allowlist import Snippet, allowlist_snippet
from ckptaudit.migrate.api import migrate, prepare
from ckptaudit.migrate.load import load
from ckptaudit.migrate.manifest import (
    ClassInfo,
    Conversion,
    Manifest,
    TensorEntry,
    manifest_dict,
    manifest_json,
    render_table,
)
from ckptaudit.migrate.plan import MigrateOptions

__all__ = [
    "ClassInfo",
    "Conversion",
    "Manifest",
    "MigrateOptions",
    "Snippet",
    "TensorEntry",
    "allowlist_snippet",
    "load",
    "manifest_dict",
    "manifest_json",
    "migrate",
    "prepare",
    "render_table",
]
