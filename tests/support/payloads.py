"""Payloads the bypass tests share: what runs, what each loader records when it is reached.

Every payload runs a process only through a recorder (see ``loaders``): the strings below are
what the recorder logs when a real loader reaches the call.
"""

from __future__ import annotations

from support.opcodes import (
    build,
    empty_dict,
    global_,
    int_,
    invoke,
    setitem,
    unicode,
    wrap,
)


def os_attr(attr: str) -> bytes:
    """getattr(logging.os, attr): os.<attr> without ever naming os."""
    return invoke(global_("builtins", "getattr"), global_("logging", "os"), unicode(attr))


def partial(func: bytes, *args: bytes) -> bytes:
    """functools.partial(func, *args): a callable the file assembles, called later."""
    return invoke(global_("functools", "partial"), func, *args)


def namespace(**attrs: bytes) -> bytes:
    """A SimpleNamespace whose instance attributes the file chooses (one BUILD)."""
    items = b"".join(unicode(k) + v + setitem() for k, v in attrs.items())
    return invoke(global_("types", "SimpleNamespace")) + empty_dict() + items + build()


SYSTEM_TRUE = partial(os_attr("system"), unicode("true"))
"""Calling it runs os.system('true')."""
HOSTILE = wrap(invoke(global_("os", "system"), unicode("true")))
"""A protocol-2 pickle that calls os.system('true')."""
BENIGN = wrap(empty_dict() + unicode("a") + int_(1) + setitem())
"""A protocol-2 pickle of {'a': 1}."""
RAN = "system('true',)"
"""What the recorder logs when HOSTILE, SYSTEM_TRUE or TEXT_PAYLOAD is reached."""
TEXT_PAYLOAD = b"cos\nsystem\n(S'true'\ntR."
"""os.system('true') at protocol 0, every argument a line of text."""

PAYLOAD = partial(global_("uuid", "_get_command_stdout"), unicode("true"))
"""An uncatalogued global (calling it runs a process): a file holding it is dangerous only if
the route that calls it is seen, not because of a flagged name."""
REACHED = "uuid._get_command_stdout('true'"
"""PAYLOAD reached, whatever extra arguments it got."""
