"""Judge what the container readers found: (pickle facts, policy) -> findings and a verdict.

Two questions are answered separately:

* **Would torch load it?** torch's weights_only unpickler checks every GLOBAL by name, then
  applies structural rules to the runtime types of the objects opcodes act on. The first
  breach in torch's reading order is the error torch would raise.
* **Is it dangerous?** A global from the dangerous catalog, or a call of anything that is not
  shown to be an inert data constructor.

Each rule family is a module of :mod:`ckptaudit.checks.rules` holding its rules and the check
that emits their findings; :func:`check_file` runs them all. Findings group occurrences by
(rule, global); each occurrence is an object in the tree. No I/O happens here.
"""

from ckptaudit.checks.context import FileFacts
from ckptaudit.checks.engine import CheckOutcome, check_file, check_units
from ckptaudit.checks.registry import Rule, all_rules, rule_for

__all__ = [
    "CheckOutcome",
    "FileFacts",
    "Rule",
    "all_rules",
    "check_file",
    "check_units",
    "rule_for",
]
