"""Errors for bad input.

Every error a user can cause by what they wrote names where it is: the file, the document in it, the object
and the field, so the message can be acted on without reading a traceback. The CLI turns these into exit
code 2 (bad input) before anything is built.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Source:
    """Where a document came from: a file path (or "-" for stdin, "<inline>" for literals) and its index."""

    file: str = "<inline>"
    doc: int | None = None

    def describe(self) -> str:
        if self.doc is None:
            return self.file
        return f"{self.file} (document {self.doc + 1})"


class NetsimError(Exception):
    """Base class of every error netsim reports to a user without a traceback."""

    exit_code = 1


class SpecError(NetsimError):
    """Input that is wrong: names the file, object and field, and says what is wrong."""

    exit_code = 2

    def __init__(self, message: str, *, source: Source | None = None, obj: str | None = None,
                 field: str | None = None):
        self.message = message
        self.source = source or Source()
        self.obj = obj
        self.field = field
        super().__init__(self.render())

    def render(self) -> str:
        where = [self.source.describe()]
        if self.obj:
            where.append(self.obj)
        if self.field:
            where.append(f"field {self.field}")
        return f"{': '.join(where)}: {self.message}"


class SpecErrors(NetsimError):
    """Several SpecErrors found in one pass, so a user fixes them all at once."""

    exit_code = 2

    def __init__(self, errors: list[SpecError]):
        self.errors = list(errors)
        super().__init__("\n".join(e.render() for e in self.errors))


class UsageError(NetsimError):
    """A command used wrongly or in the wrong situation (not root, cluster already running...)."""

    exit_code = 2


class MissingDependency(NetsimError):
    """A kernel feature or a tool netsim needs is absent; the message says how to get it."""

    exit_code = 2
