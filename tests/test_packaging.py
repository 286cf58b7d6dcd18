"""`pip install .` and `pip install -e .` both give a working `pocketbert` whose imports do
not depend on the working directory (the top-level folders reach the package through
src/pocketbert symlinks, as in ExecuTorch)."""

from __future__ import annotations

import site
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

CHECK = (
    "import pocketbert, pocketbert.models, pocketbert.export, pocketbert.quantize, pocketbert.benchmarks\n"
    "from pocketbert.models import MobileBertForMaskedLM, SqueezeBertModel, DistilBertForQuestionAnswering, BertModel\n"
    "print(pocketbert.models.__file__)\n"
)


def make_venv(path: Path) -> Path:
    """A fresh venv that sees this environment's dependencies (torch etc.) through a .pth
    file but not pocketbert itself, so installing pocketbert is what is tested."""
    venv.EnvBuilder(with_pip=True, system_site_packages=False).create(path)
    python = path / "bin" / "python"
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()
    ours = sysconfig.get_paths()["purelib"]
    deps = [p for p in [ours, *site.getsitepackages()] if Path(p).is_dir()]
    (Path(purelib) / "_deps.pth").write_text("\n".join(dict.fromkeys(deps)) + "\n")
    return python


@pytest.mark.slow
@pytest.mark.parametrize("editable", [False, True], ids=["install", "editable"])
def test_install_and_import_from_anywhere(tmp_path, editable):
    python = make_venv(tmp_path / "venv")
    args = [python, "-m", "pip", "install", "--quiet", "--no-deps"]
    args += ["-e", str(REPO)] if editable else [str(REPO)]
    done = subprocess.run(args, capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    # -I: isolated mode, the working directory is not on sys.path
    imported = subprocess.run([python, "-I", "-c", CHECK], capture_output=True, text=True, cwd=elsewhere)
    assert imported.returncode == 0, imported.stderr
    location = Path(imported.stdout.strip())
    if editable:
        assert location.resolve().is_relative_to(REPO)
    else:
        assert not location.resolve().is_relative_to(REPO), location
    cli = subprocess.run([tmp_path / "venv" / "bin" / "pocketbert", "models"], capture_output=True, text=True, cwd=elsewhere)
    assert cli.returncode == 0, cli.stderr
    assert "mobilebert" in cli.stdout and sys.executable  # the console script runs
