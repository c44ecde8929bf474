"""The checker: torch's rules and the danger rules over the facts of pickle units."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ckptaudit.checks.shapes import is_enum_shape, is_mapping_subclass_shape, shape_kind
from ckptaudit.checks.types import (
    BUILD_ALWAYS,
    INVOKES_ARGUMENT,
    SETITEM_TYPES,
    STATE_ARGUMENT,
    brief,
    is_tensor_rebuild,
    planted_hooks,
    planted_methods,
    runtime_type,
    tabled_argument,
    torch_global_name,
    type_repr,
)
from ckptaudit.checks.units import CheckResult, PickleUnit, Violation
from ckptaudit.findings import Finding, Kind, Remedy, Severity
from ckptaudit.pickle.limits import Limits
from ckptaudit.pickle.nodes import Call, Global, PDict
from ckptaudit.pickle.paths import locate
from ckptaudit.pickle.vm import OPCODE_NAMES
from ckptaudit.policy.dangerous import danger_reason
from ckptaudit.policy.hints import NEEDS_CONVERSION, hint_for
from ckptaudit.policy.inert import (
    ABSORBING_CALLEES,
    INERT_CLASSMETHODS,
    absorbed_references,
    benign_pattern,
    getattr_target,
    is_inert_constructor,
)
from ckptaudit.policy.torch_policy import Policy
from ckptaudit.rules import rule

__all__ = ["check_units"]


@dataclass
class _Group:
    """Occurrences gathered for one finding."""

    category: str
    member: str | None
    message: str
    global_name: str | None = None
    kind: Kind = Kind.UNKNOWN
    remedy: Remedy = Remedy.ALLOWLIST
    hint: str | None = None
    severity: Severity | None = None
    nodes: list[Any] = field(default_factory=list)
    node_ids: set[int] = field(default_factory=set)
    count: int = 0
    offset: int | None = None
    opcode: str | None = None

    def add(self, node: Any, offset: int | None) -> None:
        """Add an occurrence (an object, or None for an opcode use) and its offset."""
        if node is not None:
            key = id(node)
            if key in self.node_ids:
                return
            self.node_ids.add(key)
            self.nodes.append(node)
        self.count += 1
        if offset is not None and (self.offset is None or offset < self.offset):
            self.offset = offset


class _Checker:
    """Checks of one set of pickle units under one policy."""

    def __init__(self, policy: Policy, limits: Limits) -> None:
        self.policy = policy
        self.limits = limits
        self.groups: dict[Hashable, _Group] = {}
        self.first_violation: Violation | None = None
        self.unsafe: set[str] = set()
        self.unsafe_named: set[str] = set()
        self.convert: dict[str, str] = {}
        """Globals that allowlisting cannot fix, with the reason."""
        self.trusted_callees: dict[str, bool] = {}
        """Callee name -> whether calling it is shown harmless, whatever its arguments."""
        self.unwise: dict[str, str] = {}
        """Dangerous globals used benignly here: allowlisting works but opens the door."""

    def group(self, unit: PickleUnit, category: str, label: Hashable, **fields: Any) -> _Group:
        """Return the finding of (category, label) in a unit, made with ``fields`` the first time.

        One finding per (category, global or opcode) and pickle member, as the report promises.
        """
        key = (category, label, unit.member)
        found = self.groups.get(key)
        if found is None:
            found = self.groups[key] = _Group(category=category, member=unit.member, **fields)
        return found

    def violate(self, unit: PickleUnit, offset: int, message: str | Callable[[], str]) -> None:
        """Record a breach of torch's rules; only the first one torch meets is kept.

        ``message`` may be a callable, so that the 200,000th breach of an object-heavy
        pickle costs a comparison, not a formatted string.
        """
        if not unit.torch_reads:
            return
        first = self.first_violation
        if first is not None and (first.order, first.offset) <= (unit.order, offset):
            return
        text = message() if callable(message) else message
        self.first_violation = Violation(unit.order, offset, text, unit.member)

    # -- one unit ----------------------------------------------------------------------------

    def check(self, unit: PickleUnit) -> None:
        """Apply every check to one pickle unit."""
        result = unit.result
        policy = self.policy
        for g in result.globals:
            if not g.dynamic:
                g.rename(*policy.normalize(g.module, g.name))
        calls_by_func: dict[int, list[Call]] = {}
        for c in result.calls:
            if isinstance(c.func, Global):
                calls_by_func.setdefault(id(c.func), []).append(c)
        # Globals a benign pattern passes as data (operator.or_ in a union of types).
        absorbed: set[int] = set()
        for c in result.calls:
            func = c.func
            if (
                isinstance(func, Global)
                and func.qualified in ABSORBING_CALLEES
                and benign_pattern(func.qualified, c)
            ):
                absorbed.update(id(g) for g in absorbed_references(func.qualified, c))
        self._check_opcodes(unit)
        self._check_globals(unit, calls_by_func, absorbed)
        self._check_calls(unit)
        self._check_events(unit)
        self._check_persids(unit)
        for offset in result.undecodable:
            self.violate(
                unit, offset, "'utf-8' codec can't decode an 8-bit string (SHORT_BINSTRING)"
            )
            self.group(
                unit,
                "forbidden-operation",
                "str8",
                message="an 8-bit string is not valid UTF-8; torch decodes it strictly and fails",
                kind=Kind.OPCODE,
                remedy=Remedy.RESAVE,
                hint="save again from Python 3 with protocol 2",
            ).add(None, offset)

    def _check_opcodes(self, unit: PickleUnit) -> None:
        result = unit.result
        for op, count in result.opcode_counts.items():
            if self.policy.supports(op):
                continue
            name = OPCODE_NAMES.get(op, f"0x{op:02x}")
            first = result.opcode_first.get(op, result.start)
            self.violate(unit, first, f"Unsupported operand {op}")
            g = self.group(
                unit,
                "unsupported-opcode",
                name,
                message=f"opcode {name} is not implemented by torch's weights_only unpickler",
                kind=Kind.OPCODE,
                remedy=Remedy.RESAVE,
                hint="save with torch.save(obj, f) and the default pickle_protocol=2",
                opcode=name,
            )
            g.count += count - 1
            g.add(None, first)

    def _check_globals(
        self, unit: PickleUnit, calls_by_func: dict[int, list[Call]], absorbed: set[int]
    ) -> None:
        policy = self.policy
        for g in unit.result.globals:
            uses: list[Any] = list(calls_by_func.get(id(g), ()))
            occurrences: list[Any] = uses or [g]
            if g.dynamic:
                grp = self.group(
                    unit,
                    "unsafe-call",
                    "dynamic",
                    message=f"a global whose name is computed at load time ({g.opcode} "
                    f"of {g.module!r}, {g.name!r}); nothing static can tell what it imports",
                    kind=Kind.CALLABLE,
                    remedy=Remedy.NEVER,
                    hint="do not load this file without weights_only",
                )
                for node in occurrences:
                    grp.add(node, g.offset)
                continue
            q = g.qualified
            default_allowed = q in policy.allowed
            if not policy.is_allowed(q):
                self.unsafe.add(q)
                self.unsafe_named.add(q)
            if g.opcode == "GLOBAL":
                self._torch_global(unit, g)
            if default_allowed:
                continue
            reason = danger_reason(g.module, g.name)
            benign = [benign_pattern(q, c) for c in uses]
            harmless = (uses and all(benign)) or (not uses and id(g) in absorbed)
            if reason and not harmless:
                grp = self.group(
                    unit,
                    "dangerous-global",
                    q,
                    global_name=q,
                    message=f"{q}: {reason}",
                    kind=Kind.CALLABLE,
                    remedy=Remedy.NEVER,
                    hint="do not load this file without weights_only; never allowlist this global",
                )
                for node in occurrences:
                    grp.add(node, g.offset)
            elif reason:
                use = f"benign use ({benign[0]})" if benign else "only passed as data"
                self.unwise.setdefault(q, f"{use}, but {reason}")
            if policy.is_allowed(q):
                continue
            if policy.is_blocked(g.module):
                grp = self.group(
                    unit,
                    "blocked-module",
                    q,
                    global_name=q,
                    message=f"{q} is in module {g.module}, which torch never allows",
                    kind=Kind.CALLABLE,
                    remedy=Remedy.NEVER,
                    hint="remove it from what is saved",
                )
            else:
                grp = self.group(
                    unit,
                    "not-allowlisted",
                    q,
                    global_name=q,
                    message=f"{q} is not an allowed global for torch's weights_only unpickler",
                )
            for node in occurrences:
                grp.add(node, g.offset)

    def _torch_global(self, unit: PickleUnit, g: Global) -> None:
        """The error torch's GLOBAL raises for this name, if any."""
        policy = self.policy
        q = g.qualified
        if policy.is_blocked(g.module):
            self.violate(
                unit,
                g.offset,
                f"Trying to load unsupported GLOBAL {q} whose module {g.module} is blocked.",
            )
        elif policy.is_allowed(q):
            return
        elif q in policy.special_error_globals:
            what = (
                "``torch.distributed.tensor`` must be imported to load DTensors"
                if q.startswith("torch.distributed")
                else "``torch.nested`` and ``torch._dynamo`` must be imported to load nested "
                "jagged tensors (NJTs)"
            )
            self.violate(unit, g.offset, what)
        else:
            name = torch_global_name(q)
            self.violate(
                unit,
                g.offset,
                f"Unsupported global: GLOBAL {name} was not an allowed global by default. "
                f"Please use `torch.serialization.add_safe_globals([{name}])` or the "
                f"`torch.serialization.safe_globals([{name}])` context manager to allowlist "
                "this global if you trust this class/function.",
            )

    def _check_calls(self, unit: PickleUnit) -> None:
        for c in unit.result.calls:
            func = c.func
            # INST and OBJ call what they name even without arguments (pickle's instantiate);
            # only NEWOBJ creates without calling anything the file chose.
            creation = c.opcode in ("NEWOBJ", "NEWOBJ_EX")
            # torch's rules for REDUCE and NEWOBJ on what is not an allowed global.
            if not isinstance(func, Global):
                if c.opcode == "REDUCE":
                    self.violate(
                        unit,
                        c.offset,
                        f"Trying to call reduce for unrecognized function {brief(func)}",
                    )
                elif c.opcode == "NEWOBJ":
                    self.violate(
                        unit,
                        c.offset,
                        "Can only create new object for nn.Parameter or classes allowlisted "
                        f"via `add_safe_globals` but got {brief(func)}",
                    )
            if c.builds:
                self._check_build(unit, c, c.build_offset or c.offset)
            if (
                c.state is not None
                or c.kwargs is not None
                or (isinstance(func, Global) and func.qualified in STATE_ARGUMENT)
            ):
                self._check_planted(unit, c)
            mapping = _keys_argument(c)
            if mapping is not None:
                self._keys_of_global(unit, c, mapping)
            if planted_hooks(c) is not None:
                self._deferred(unit, c, "backward hooks of a tensor, run at .backward()")
            if creation:
                if _makes_class(c) or not isinstance(func, Global):
                    self._unsafe_creation(unit, c)
                continue
            self._judge_callee(unit, c, func)
            # Allowed functions that call one of their arguments: judge that argument too.
            index = INVOKES_ARGUMENT.get(func.qualified) if isinstance(func, Global) else None
            if index is not None and type(c.args) is tuple and len(c.args) > index:
                inner = c.args[index]
                inner_args = c.args[index + 2] if len(c.args) > index + 2 else ()
                proxy = Call(inner, inner_args, None, "REDUCE", c.offset)
                if not isinstance(inner, Global) or not is_tensor_rebuild(inner):
                    self._judge_callee(unit, proxy, inner, reached_through=func.qualified)

    def _judge_callee(
        self, unit: PickleUnit, c: Call, func: Any, reached_through: str | None = None
    ) -> None:
        """Report a call of anything not shown to be an inert data constructor."""
        policy = self.policy
        if isinstance(func, Global):
            if func.dynamic:
                return  # reported with the dynamic global
            q = func.qualified
            trusted = self.trusted_callees.get(q)
            if trusted is None:
                # Judged once per name: a memoized global may be called millions of times.
                trusted = self.trusted_callees[q] = (
                    q in policy.allowed
                    or q in policy.extra_allowed
                    or is_inert_constructor(q, func.module)
                    or danger_reason(func.module, func.name) is not None
                )
            if trusted or (
                reached_through is None
                and (is_enum_shape(c, func) or is_mapping_subclass_shape(c, func))
            ):
                return
            label = q
            why = f"the file calls {q}(...), which is not shown to be an inert data constructor"
        elif isinstance(func, Call):
            target = getattr_target(func) if self._is_getattr(func) else None
            if target is not None and target in INERT_CLASSMETHODS:
                return
            inner = func.func.qualified if isinstance(func.func, Global) else "a computed value"
            label = f"{target[0]}.{target[1]}" if target else f"<result of {inner}>"
            why = f"the file calls a computed callable ({label})"
        else:
            return  # calling a literal fails in any unpickler; torch's rule covers it
        if reached_through:
            why += f", through {reached_through}, which calls its argument"
        self._never_load(
            unit,
            label,
            c,
            c.offset,
            why,
            label,
            hint="do not load this file without weights_only unless you know this callable "
            "is harmless; then store plain data instead",
        )

    def _never_load(
        self,
        unit: PickleUnit,
        key: Hashable,
        node: Any,
        offset: int,
        message: str,
        global_name: str | None = None,
        hint: str = "do not load this file without weights_only",
    ) -> None:
        """Record one occurrence of an unsafe call that no saved object explains."""
        self.group(
            unit,
            "unsafe-call",
            key,
            global_name=global_name,
            message=message,
            kind=Kind.CALLABLE,
            remedy=Remedy.NEVER,
            hint=hint,
        ).add(node, offset)

    def _unsafe_creation(self, unit: PickleUnit, c: Call) -> None:
        """NEWOBJ that makes a class from the file's own namespace, or of a computed class.

        ``meta.__new__(meta, name, bases, namespace)`` turns a dict of the file's callables
        into dunder methods (``__del__``, ``__setstate__``) that then run by themselves; and
        the class of an ordinary object is always a global, never something the file built.
        """
        label = brief(c.func)
        what = (
            "with (name, bases, namespace): the file defines a class of its own"
            if _makes_class(c)
            else "(a class computed by the file)"
        )
        self._never_load(unit, ("creates", label), c, c.offset, f"NEWOBJ of {label} {what}", label)

    def _keys_of_global(self, unit: PickleUnit, c: Call, mapping: Global) -> None:
        """dict(G), OrderedDict(G), defaultdict(f, G): CPython calls G.keys() and G[k]."""
        label = f"{mapping.qualified}.keys"
        message = (
            f"{brief(c.func)}({mapping.qualified}) calls {mapping.qualified}.keys(): "
            "a saved mapping is never a class or function"
        )
        self._never_load(unit, ("keys", label), c, c.offset, message, label)

    def _deferred(self, unit: PickleUnit, c: Call, what: str) -> None:
        """A callable stored where torch or the user's code will call it later."""
        message = (
            f"the file installs {what}: torch.save never writes these, and whatever the file "
            "put there runs later in the user's process"
        )
        self._never_load(unit, ("deferred", what), c, c.offset, message)

    def _check_planted(self, unit: PickleUnit, c: Call) -> None:
        """Methods the unpickler calls without REDUCE, set by the file on an object.

        APPEND calls ``obj.append``, BUILD ``obj.__setstate__`` (looked up on the instance),
        ``dict(obj)`` calls ``obj.keys``: a callable stored in an object's state under such
        a name is called as surely as by REDUCE. No saved object holds one.
        """
        planted = planted_methods(c)
        if c.builds > 1:
            # pickle never builds one object twice; a second BUILD calls whatever
            # __setstate__ the first one set.
            planted.append(("__setstate__", c.state))
        for name, value in planted:
            self._never_load(
                unit,
                ("planted", name),
                c,
                c.build_offset or c.offset,
                f"the file sets the {name!r} attribute of an object to {brief(value)}; "
                "the unpickler or a constructor calls that method without REDUCE",
                brief(value),
                hint="do not load this file: no saved object carries its own methods",
            )

    @staticmethod
    def _is_getattr(call: Call) -> bool:
        return isinstance(call.func, Global) and call.func.qualified == "builtins.getattr"

    def _check_build(self, unit: PickleUnit, target: Any, offset: int) -> None:
        t = runtime_type(target)
        policy = self.policy
        if t is not None and (
            t in BUILD_ALWAYS or t in policy.allowed_classes or t in policy.extra_allowed
        ):
            return
        self.violate(
            unit,
            offset,
            lambda: (
                "Can only build Tensor, Parameter, OrderedDict or types allowlisted via "
                f"`add_safe_globals`, but got {type_repr(t)}"
            ),
        )
        if (
            isinstance(target, Call)
            and isinstance(target.func, Global)
            and t in (target.func.qualified, *self.unsafe_named)
        ):
            return  # an instance of a global already reported: allowlisting it fixes BUILD
        if t is not None and not t.startswith("builtins."):
            # A type the pickle never names (np.dtype('f8') is a Float64DType): torch's
            # get_unsafe_globals_in_checkpoint misses it, but it must be allowlisted too.
            self.unsafe.add(t)
            grp = self.group(
                unit,
                "forbidden-operation",
                ("BUILD", t),
                global_name=t,
                message=f"BUILD on a {t} object: torch builds only allowlisted types, and this "
                "type is never named in the pickle (so torch's get_unsafe_globals_in_checkpoint "
                "does not list it)",
                kind=shape_kind(target),
                remedy=Remedy.ALLOWLIST,
                opcode="BUILD",
            )
            grp.add(target, offset)
            return
        self._forbidden(unit, "BUILD", target, t, offset)

    def _check_events(self, unit: PickleUnit) -> None:
        for e in unit.result.events:
            if isinstance(e.target, Global):
                self._mutates_global(unit, e.op, e.target, e.offset)
            t = runtime_type(e.target)
            if e.op in ("APPEND", "APPENDS"):
                if t == "builtins.list":
                    continue
                verb = "append to" if e.op == "APPEND" else "extend"
                self.violate(unit, e.offset, f"Can only {verb} lists, but got {type_repr(t)}")
                self._forbidden(unit, e.op, e.target, t, e.offset)
            elif e.op in ("SETITEM", "SETITEMS"):
                if t in SETITEM_TYPES:
                    continue
                self.violate(
                    unit,
                    e.offset,
                    f"Can only {e.op} for dict, collections.OrderedDict, collections.Counter, "
                    f"but got {type_repr(t)}",
                )
                self._forbidden(unit, e.op, e.target, t, e.offset)
            elif e.op == "BUILD":
                self._check_build(unit, e.target, e.offset)
            # ADDITEMS exists only in protocol 4+: the unsupported opcode is the finding.

    def _mutates_global(self, unit: PickleUnit, op: str, target: Global, offset: int) -> None:
        """BUILD, SETITEM or APPEND on a class, function or module rather than on data.

        That rewrites the object for the whole process (a class's methods, a module's
        functions, a registry): pickle writes these opcodes only for objects it created.
        """
        label = target.qualified
        message = (
            f"{op} on {label} itself: the file rewrites a class, function or module for the "
            "rest of the process (its methods may then run the file's callables)"
        )
        self._never_load(unit, ("mutates", label), target, offset, message, label)

    def _forbidden(
        self, unit: PickleUnit, op: str, target: Any, t: str | None, offset: int
    ) -> None:
        label = t or "an object of unknown type"
        if t is not None and not t.startswith("builtins."):
            self.convert.setdefault(t, f"it is the target of {op}, which torch forbids on it")
        rules = {
            "APPEND": "torch appends only to lists",
            "APPENDS": "torch extends only lists",
            "SETITEM": "torch sets items only on dict, OrderedDict and Counter",
            "SETITEMS": "torch sets items only on dict, OrderedDict and Counter",
            "BUILD": "torch builds only Tensor, Parameter, OrderedDict and allowlisted types",
        }
        kind = shape_kind(target)
        grp = self.group(
            unit,
            "forbidden-operation",
            (op, t),
            global_name=t if t and not t.startswith("builtins.") else None,
            message=f"{op} on {label}: {rules[op]}, even when the class is allowlisted",
            kind=Kind.CONTAINER if op != "BUILD" else kind,
            remedy=Remedy.CONVERT,
            opcode=op,
        )
        grp.add(target, offset)

    def _check_persids(self, unit: PickleUnit) -> None:
        for p in unit.result.persids:
            pid = p.pid
            first = pid[0] if type(pid) is tuple and pid else None
            if isinstance(first, bytes):
                first = first.decode("ascii", "replace")
            if p.opcode == "BINPERSID" and type(pid) is tuple and first == "storage":
                continue
            if p.opcode == "BINPERSID":
                self.violate(
                    unit,
                    p.offset,
                    "Only persistent_load of storage is allowed, but got " + brief(first),
                )
            grp = self.group(
                unit,
                "forbidden-operation",
                "persid",
                message="a persistent id that is not a tensor storage; torch allows only storages",
                kind=Kind.OPCODE,
                remedy=Remedy.CONVERT,
                opcode=p.opcode,
            )
            grp.add(p, p.offset)

    # -- findings ----------------------------------------------------------------------------

    def finish(self, units: Iterable[PickleUnit]) -> CheckResult:
        """Locate every occurrence in the trees and turn the groups into findings."""
        units = list(units)
        wanted: dict[int, list[Hashable]] = {}
        for key, grp in self.groups.items():
            for node in grp.nodes:
                wanted.setdefault(id(node), []).append(key)
        paths: dict[Hashable, list[str]] = {}
        counts: dict[Hashable, int] = {}
        reached: set[int] = set()
        for unit in units:
            if unit.result.root is None:
                continue
            found, counted, got = locate(unit.result.root, wanted, self.limits.max_paths)
            reached |= got
            for key, listed in found.items():
                paths.setdefault(key, []).extend(listed)
            for key, n in counted.items():
                counts[key] = counts.get(key, 0) + n
        findings = [
            self._finding(key, grp, paths, counts, reached) for key, grp in self.groups.items()
        ]
        findings.sort(key=lambda f: (-f.severity, f.rule, f.offset or 0))
        first = [self.first_violation] if self.first_violation else []
        dangerous = frozenset(
            id(node)
            for grp in self.groups.values()
            if (grp.severity or rule(grp.category).severity) is Severity.DANGEROUS
            for node in grp.nodes
        )
        return CheckResult(findings, first, self.unsafe, dangerous)

    def _finding(
        self,
        key: Hashable,
        grp: _Group,
        paths: dict[Hashable, list[str]],
        counts: dict[Hashable, int],
        reached: set[int],
    ) -> Finding:
        r = rule(grp.category)
        listed = list(paths.get(key, []))[: self.limits.max_paths]
        unreached = [node for node in grp.nodes if id(node) not in reached]
        for node in unreached[: max(self.limits.max_paths - len(listed), 0)]:
            offset = getattr(node, "offset", None)
            where = f" (built at byte {offset})" if offset is not None else ""
            listed.append(f"<not reachable from root{where}>")
        # Objects: every place they sit plus those built but unreachable. Opcode-level
        # findings (no nodes) keep the count they gathered.
        count = counts.get(key, 0) + len(unreached) if grp.nodes else grp.count
        kind, remedy, hint = grp.kind, grp.remedy, grp.hint
        if grp.category == "not-allowlisted":
            kind = shape_kind(grp.nodes[0]) if grp.nodes else Kind.UNKNOWN
            q = grp.global_name
            kind, hint = hint_for(q, kind)
            if q in self.convert:
                remedy = Remedy.CONVERT
                hint = f"{hint} (allowlisting cannot work: {self.convert[q or '']})"
            elif q in NEEDS_CONVERSION or q in self.unwise:
                remedy = Remedy.CONVERT
                why = NEEDS_CONVERSION.get(q or "") or self.unwise.get(q or "", "")
                hint = f"{hint} (do not allowlist it, though torch would accept it: {why})"
            else:
                remedy = Remedy.ALLOWLIST
        elif hint is None:
            kind, hint = hint_for(grp.global_name, kind)
        message = grp.message
        if grp.category == "not-allowlisted" and kind is not Kind.UNKNOWN:
            message = f"{message} ({kind.value})"
        return Finding(
            rule=r.code,
            category=r.category,
            severity=grp.severity or r.severity,
            global_name=grp.global_name,
            kind=kind,
            remedy=remedy,
            message=message,
            hint=hint or "",
            count=count,
            paths=tuple(listed),
            offset=grp.offset,
            member=grp.member,
            opcode=grp.opcode,
        )


_MAPPING_ARGUMENT = {
    "builtins.dict": 0,
    "collections.OrderedDict": 0,
    "collections.Counter": 0,
    "collections.defaultdict": 1,
    "copyreg._reconstructor": 2,
}
"""Data constructors that read a mapping argument through its ``keys()``."""


def _keys_argument(c: Call) -> Global | None:
    """The global passed where one of these constructors reads a mapping, if any."""
    mapping = tabled_argument(c, _MAPPING_ARGUMENT)
    return mapping if isinstance(mapping, Global) else None


def _makes_class(c: Call) -> bool:
    """NEWOBJ arguments shaped like a class statement: (name, bases, namespace)."""
    args = c.args
    return (
        type(args) is tuple
        and len(args) == 3
        and isinstance(args[0], str)
        and type(args[1]) is tuple
        and type(args[2]) is PDict
    )


def check_units(units: Iterable[PickleUnit], policy: Policy, limits: Limits) -> CheckResult:
    """Judge the pickle units of one file under a policy.

    Args:
        units: the file's pickle streams, in the order torch reads them.
        policy: torch's weights_only policy (plus the user's allowlist).
        limits: caps on listed paths.

    Returns:
        Findings (worst first), torch's violations in reading order, and the globals a user
        would have to allowlist.
    """
    units = list(units)
    checker = _Checker(policy, limits)
    for unit in units:
        checker.check(unit)
    return checker.finish(units)
