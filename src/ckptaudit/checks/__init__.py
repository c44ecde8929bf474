"""Judge inert trees against a policy: (pickle facts, policy) -> findings. No I/O.

Two questions are answered separately:

* **Would torch load it?** torch's weights_only unpickler checks every GLOBAL by name, then
  applies structural rules to the runtime types of the objects opcodes act on. Each breach is a
  :class:`Violation` carrying torch's own wording; the first one (in torch's reading order) is
  the error torch would raise.
* **Is it dangerous?** A global from the dangerous catalog, or a call of anything that is not
  shown to be an inert data constructor (a known constructor, an allowed torch global, an Enum
  member lookup, or a benign pattern recognised by its arguments).

Findings group occurrences by (rule, global); each occurrence is an object in the tree.
"""

from ckptaudit.checks.checker import check_units
from ckptaudit.checks.types import brief, runtime_type
from ckptaudit.checks.units import CheckResult, PickleUnit, Violation

__all__ = ["CheckResult", "PickleUnit", "Violation", "brief", "check_units", "runtime_type"]
