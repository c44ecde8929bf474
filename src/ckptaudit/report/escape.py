"""Make text from a file safe to show: names, members and paths are chosen by the attacker.

A global named ``x\x1b[2J...STATUS: compatible`` must not clear the terminal and print a
verdict of its own, and a file name with ``|`` or a newline must not add rows to a Markdown
table. JSON, JSONL and SARIF escape by construction; text and Markdown go through here.
"""

from __future__ import annotations

import shlex

__all__ = ["md", "md_code", "printable", "shell_word"]


def printable(text: str) -> str:
    """``text`` with every non-printable character but tab (controls, newlines, bidi
    overrides, unassigned code points) written as a Python escape."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or c == "\t" else repr(c)[1:-1] for c in text)


def md(text: str) -> str:
    """Text for a Markdown line or table cell: printable, with table pipes, code-span
    backticks and HTML neutralised."""
    text = printable(text).replace("|", "\\|").replace("`", "\\`")
    return text.replace("<", "&lt;").replace(">", "&gt;")


def md_code(text: str) -> str:
    """A Markdown code span of ``text``, which cannot close early or break a table row."""
    return "`" + printable(text).replace("`", "'").replace("|", "\\|") + "`"


def shell_word(text: str) -> str:
    """``text`` quoted as one word of a shell command line."""
    return shlex.quote(printable(text))
