"""Reading a user's text file (calibration text, eval data, JSON) with one-line errors."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pocketbert.errors import PocketbertError


def read_text_file(path: Path, what: str, error: type[PocketbertError] = PocketbertError) -> str:
    """The file's text (UTF-8, a BOM dropped); ``what`` names it in messages ("eval data")."""
    if not path.exists():
        raise error(f"{path}: {what} not found")
    if not path.is_file():
        raise error(f"{path}: {what} is not a file")
    try:
        content = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise error(f"{path}: {what} is not UTF-8 text") from None
    if "\x00" in content:
        raise error(f"{path}: {what} is not a text file")
    return content


def parse_json(text: str, where: str, error: type[PocketbertError] = PocketbertError) -> Any:
    """``json.loads`` with a one-line error naming ``where`` (a path, or path:line). Deeply
    nested input (a few thousand ``[``) makes the parser raise RecursionError, not
    ValueError, so every reader that caught only the latter printed a traceback."""
    try:
        return json.loads(text)
    except RecursionError:
        raise error(f"{where}: not valid JSON (nested too deeply)") from None
    except ValueError as exc:
        raise error(f"{where}: not valid JSON ({exc})") from None


def tsv_rows(content: str, path: Path, columns: tuple[str, ...],
             error: type[PocketbertError] = PocketbertError) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, row) for each row of a tab-separated text whose header names
    ``columns`` (other columns may follow). csv fills a short row with None, folds a long
    one's extra fields under a None key and keeps the last of two same-named columns, all
    silently: each is refused here, naming the line."""
    reader = csv.DictReader(io.StringIO(content), delimiter="\t", quoting=csv.QUOTE_NONE)
    header = reader.fieldnames or []
    if any(column not in header for column in columns):
        names = " and ".join(repr(column) for column in columns)
        raise error(f"{path}: expected {names} column{'s' * (len(columns) > 1)} in the TSV header "
                    f"(found: {', '.join(header) or 'nothing'})")
    twice = sorted({name for name in header if header.count(name) > 1})
    if twice:
        raise error(f"{path}: the TSV header names the column {twice[0]!r} twice")
    for row in reader:
        where = f"{path}:{reader.line_num}"
        if None in row or any(row[name] is None for name in header):
            raise error(f"{where}: expected {len(header)} tab-separated fields, as the header has")
        yield reader.line_num, row
