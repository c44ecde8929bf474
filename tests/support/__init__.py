"""Helpers shared by the tests: one vocabulary to build pickles and containers, one way to load.

``opcodes`` assembles pickles opcode by opcode, ``containers`` wraps them in the files torch
and other tools read, ``payloads`` holds the pickles the bypass tests share, ``loaders`` proves
a payload is reached by a real loader without running it, ``lookalikes`` is the one list of
benign files that must never be called dangerous, ``strategies`` generates pickles for
hypothesis. ``opcodes``, ``containers`` and ``payloads`` import only the standard library, so
``hostile_cases`` (which must never import ckptaudit or a payload's module) can use them.
"""
