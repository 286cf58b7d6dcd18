"""Reading a user's text file (calibration text, eval data, JSON) with one-line errors."""

from __future__ import annotations

import json
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
