"""What every command module shares: the registry's names for argparse choices."""

from __future__ import annotations


def architecture_names() -> list[str]:
    from pocketbert.models.registry import ARCHITECTURES

    return list(ARCHITECTURES)


def task_names() -> list[str]:
    from pocketbert.models.registry import TASKS

    return list(TASKS)
