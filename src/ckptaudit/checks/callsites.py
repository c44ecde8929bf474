"""Judge a call site: which tier the code a loader would run there belongs to.

Every call site (a call, a ``__new__``, a BUILD, an item set or append on an instance, an
argument a callable calls or keeps to call later) names the code that runs there: a global,
an attribute reached from one (``datetime.datetime.fromtimestamp``), a method of the type of
an object the file built. That name falls in exactly one tier:

- **inert**: the callables table (or the generated value classes, or torch's own allowlist)
  says this site of this callable only builds data;
- **catalogued**: the dangerous catalog names it (reported as CKA301);
- **unsafe**: it is in the known pool (standard library, torch's install closure) and nothing
  shows it inert: default-deny, reported as CKA302;
- **untrusted**: it is outside the known pool (a user's module, a library): loading imports
  and runs it, which CKA304 reports per package, never guessing it dangerous.

Judgements depend only on the name, the site and the policy, so they are cached per file.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ckptaudit.policy.callables import INERT, Inert, Site, inert_entry, value_class
from ckptaudit.policy.closure import is_known_pool
from ckptaudit.policy.dangerous import danger_reason
from ckptaudit.policy.torch_policy import Policy

__all__ = ["Judgement", "Tier", "judge_name", "qualified_parts"]


class Tier(enum.Enum):
    """Where the code a call site runs belongs."""

    INERT = "inert"
    CATALOGUED = "catalogued"
    UNSAFE = "unsafe"
    UNTRUSTED = "untrusted"


@dataclass(frozen=True)
class Judgement:
    """The tier of one (name, site), with the table entry or the reason behind it."""

    tier: Tier
    reason: str
    entry: Inert | None = None


_VALUE_SITES = frozenset({Site.CALL, Site.NEW, Site.BUILD})
_PLAIN_SITES = frozenset({Site.NEW, Site.BUILD})
_TORCH_SITES = frozenset({Site.CALL, Site.NEW})


def qualified_parts(qualified: str, module: str) -> tuple[str, str]:
    """(module, qualname) of a name whose module is known."""
    return module, qualified[len(module) + 1 :]


def judge_name(qualified: str, module: str, site: Site, policy: Policy) -> Judgement:
    """The tier of running ``module.qualname`` at a kind of call site.

    An exact entry of the callables table, and a value class, win over the catalog's
    module-wide entries (``signal.Signals`` is an Enum in a dangerous module); the catalog
    wins over module-wide table entries.
    """
    name = qualified[len(module) + 1 :]
    entry = inert_entry(qualified, module)
    exact = qualified in INERT
    if entry is not None and site in entry.sites and (exact or not danger_reason(module, name)):
        return Judgement(Tier.INERT, entry.reason, entry)
    kind = value_class(qualified)
    if kind is not None and kind != "plain" and site in _VALUE_SITES:
        return Judgement(Tier.INERT, f"a value class of the known pool ({kind})")
    if site in _TORCH_SITES and (qualified in policy.allowed or qualified in policy.extra_allowed):
        return Judgement(Tier.INERT, "allowed by torch's weights_only policy (or by --allow)")
    reason = danger_reason(module, name)
    if reason is not None:
        return Judgement(Tier.CATALOGUED, reason)
    if kind == "plain" and site in _PLAIN_SITES:
        return Judgement(
            Tier.INERT, "a plain class: object.__new__, and BUILD only sets its attributes"
        )
    if is_known_pool(module):
        if entry is not None:
            where = ", ".join(sorted(s.value for s in entry.sites))
            return Judgement(Tier.UNSAFE, f"inert only at its {where} sites, not as a {site.value}")
        return Judgement(Tier.UNSAFE, "in the standard library or torch's install closure, and "
                         "not shown to be inert there")
    return Judgement(Tier.UNTRUSTED, "outside the known pool: loading runs its module's code")
