import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # helpers.py


@pytest.fixture(scope="session")
def cli_env():
    """Environment for running the CLI in a subprocess: offline, no stray hub cache."""
    env = dict(os.environ)
    env["HF_HUB_OFFLINE"] = "1"
    return env
