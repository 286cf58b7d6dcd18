"""What every API call returns: one typed record that reads three ways.

``str(result)`` is the text the CLI prints (the CLI prints nothing else), a notebook shows
``_repr_markdown_`` (the records as a table, then the warnings), and ``records()`` gives
plain JSON-safe dicts, a row each, for ``pandas.DataFrame(result.records())`` or a report.
"""

from __future__ import annotations

import json
from dataclasses import dataclass


@dataclass(frozen=True)
class Result:
    """A record's ``warnings`` field (when it has one) holds lines a user must see after the
    work (untrained heads, a file kept under the floors, a deprecated format), each starting with ``WARNING:`` or ``note:``;
    the CLI prints them to stderr as ``pocketbert: <line>``."""

    def lines(self) -> list[str]:
        raise NotImplementedError(f"{type(self).__name__} says nothing")

    def records(self) -> list[dict]:
        raise NotImplementedError(f"{type(self).__name__} has no rows")

    def notices(self) -> tuple[str, ...]:
        """The record's ``warnings`` field, for the records that have one."""
        return tuple(getattr(self, "warnings", ()))

    def __str__(self) -> str:
        return "\n".join(self.lines())

    def __repr__(self) -> str:  # a REPL shows what the CLI would print
        return "\n".join([*self.lines(), *self.notices()])

    def to_json(self) -> str:
        return json.dumps(self.records(), indent=2, allow_nan=False)

    def _repr_markdown_(self) -> str:
        rows = self.records()
        columns = list(dict.fromkeys(key for row in rows for key in row))
        table = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        table += ["| " + " | ".join(_cell(row.get(key)) for key in columns) + " |" for row in rows]
        title = f"**{type(self).__name__}**: {self.lines()[0] if self.lines() else ''}"
        return "\n".join([title, "", *(table if columns else []), *(f"\n> {w}" for w in self.notices())])


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (dict, list)):
        text = json.dumps(value)
        return text if len(text) <= 60 else text[:57] + "..."
    return "" if value is None else str(value).replace("|", "\\|")
