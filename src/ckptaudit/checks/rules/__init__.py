"""The rule modules, one per rule family; :data:`RULE_MODULES` orders their checks.

Importing a module registers its check and rules (see :mod:`ckptaudit.checks.registry`); the
tuple below is the whole set, written out: there is no plugin discovery, and a test fails when
a module in this folder is missing from it. Within a stage, checks run in the tuple's order,
which matters where one check reads what another learnt: the allowlist check names the globals
torch refuses before the operations check decides whether a BUILD needs a finding of its own.
"""

from ckptaudit.checks.rules import (
    allowlist,
    container,
    dangerous_globals,
    hidden_payload,
    malformed,
    opcodes,
    operations,
    rebuild,
    unsafe_calls,
    untrusted_code,
)

__all__ = ["RULE_MODULES"]

RULE_MODULES = (
    container,
    malformed,
    opcodes,
    allowlist,
    dangerous_globals,
    operations,
    unsafe_calls,
    untrusted_code,
    rebuild,
    hidden_payload,
)
"""Every rule module, in registration order."""
