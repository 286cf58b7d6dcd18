"""Errors a user can cause and fix (bad paths, bad checkpoints, bad requests).

The CLI turns every ``PocketbertError`` into one line on stderr and exit code 2; anything
else is a bug in pocketbert and keeps its traceback.
"""


class PocketbertError(Exception):
    """A problem with the user's input, explained in one line."""


class ConfigError(PocketbertError):
    """config.json is missing, unreadable or describes something we do not know."""


class CheckpointError(PocketbertError):
    """Weights are missing, corrupt, or do not fit the architecture."""


def first_line(exc: BaseException, limit: int = 300) -> str:
    """What a library's exception says, cut to one line: the CLI prints one line per error,
    and C++ runtimes append pages of frames after the reason."""
    text = str(exc).strip()
    return text.splitlines()[0][:limit] if text else type(exc).__name__
