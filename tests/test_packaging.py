"""`pip install .` and `pip install -e .` both give a working `pocketbert` whose imports do
not depend on the working directory (the top-level folders reach the package through
src/pocketbert symlinks, as in ExecuTorch); the built sdist and wheel carry every part."""

from __future__ import annotations

import os
import shutil
import site
import tarfile
import zipfile
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest
from test_layers import PACKAGES

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


# what a build must not pick up from a working copy (caches, venvs, earlier builds, exports)
NOT_SOURCE = shutil.ignore_patterns(".git", ".venv", "build", "dist", "out", "*.egg-info", "__pycache__",
                                    ".pytest_cache", "*.pyc")


def build(hook: str, source: Path, out: Path) -> Path:
    """One PEP 517 hook of setuptools (the project's backend) in a fresh process, without
    build isolation: this environment's setuptools builds, so nothing is downloaded."""
    out.mkdir(exist_ok=True)
    done = subprocess.run([sys.executable, "-c", f"from setuptools import build_meta\nprint(build_meta.{hook}({str(out)!r}))"],
                          capture_output=True, text=True, cwd=source, env={**os.environ, "PYTHONPATH": ""})
    assert done.returncode == 0, done.stderr[-4000:]
    return out / done.stdout.strip().splitlines()[-1]


SRC_PACKAGES = ("api", "commands", "executor")  # packages of src/pocketbert itself


def source_files() -> dict[str, list[str]]:
    """Every .py of the package as the repository holds it: each part's folder, and
    src/pocketbert's own modules and commands."""
    files = {part: sorted(str(p.relative_to(REPO / part)) for p in (REPO / part).rglob("*.py")) for part in PACKAGES}
    src = REPO / "src" / "pocketbert"
    files["pocketbert"] = sorted(str(p.relative_to(src)) for p in src.glob("*.py"))
    for package in SRC_PACKAGES:
        files[package] = sorted(str(p.relative_to(src / package)) for p in (src / package).glob("*.py"))
    assert all(files.values()), {part: names for part, names in files.items() if not names}
    return files


def missing(names: set[str], expected: list[str]) -> list[str]:
    return [name for name in expected if name not in names]


@pytest.mark.slow
def test_sdist_and_wheel_carry_every_part_and_the_wheel_exports_from_anywhere(tmp_path, cli_env):
    files = source_files()
    shutil.copytree(REPO, tmp_path / "checkout", symlinks=True, ignore=NOT_SOURCE)  # the working tree stays clean
    sdist = build("build_sdist", tmp_path / "checkout", tmp_path / "dist")
    with tarfile.open(sdist) as archive:
        root = archive.getnames()[0].split("/")[0]
        in_sdist = {name[len(root) + 1:] for name in archive.getnames()}
        archive.extractall(tmp_path / "unpacked", filter="tar")
    expected = [f"{part}/{name}" for part in PACKAGES for name in files[part]]  # the top-level folders
    expected += [f"src/pocketbert/{part}/{name}" for part in PACKAGES for name in files[part]]  # the symlinks, resolved
    expected += [f"src/pocketbert/{name}" for name in files["pocketbert"]]
    expected += [f"src/pocketbert/{package}/{name}" for package in SRC_PACKAGES for name in files[package]]
    expected += ["pyproject.toml", "README.md", "constraints.txt", "scripts/setup.sh", "tests/conftest.py", "tests/test_layers.py"]
    assert not missing(in_sdist, expected), f"the sdist lacks {missing(in_sdist, expected)[:10]}"

    # the sdist's own layering test sees every part (it failed on nothing when the folders were absent)
    unpacked = tmp_path / "unpacked" / root
    layers = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_layers.py"],
                            capture_output=True, text=True, cwd=unpacked, env={**cli_env, "PYTHONPATH": str(unpacked / "src")})
    assert layers.returncode == 0 and " passed" in layers.stdout, layers.stdout[-3000:]

    wheel = build("build_wheel", unpacked, tmp_path / "wheels")  # from the sdist, as pip and build do
    with zipfile.ZipFile(wheel) as archive:
        in_wheel = set(archive.namelist())
    expected = [f"pocketbert/{part}/{name}" for part in PACKAGES for name in files[part]]
    expected += [f"pocketbert/{name}" for name in files["pocketbert"]]
    expected += [f"pocketbert/{package}/{name}" for package in SRC_PACKAGES for name in files[package]]
    expected += [f"pocketbert/models/data/{p.name}" for p in (REPO / "models" / "data").iterdir()
                 if p.suffix in (".txt", ".tsv")]
    assert not missing(in_wheel, expected), f"the wheel lacks {missing(in_wheel, expected)[:10]}"

    python = make_venv(tmp_path / "venv")
    done = subprocess.run([python, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", wheel],
                          capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    elsewhere = tmp_path / "elsewhere"  # outside the repository: nothing importable from the working directory
    elsewhere.mkdir()
    env = {key: value for key, value in cli_env.items() if key != "PYTHONPATH"}
    imported = subprocess.run([python, "-I", "-c", CHECK], capture_output=True, text=True, cwd=elsewhere, env=env)
    assert imported.returncode == 0, imported.stderr
    assert Path(imported.stdout.strip()).resolve().is_relative_to(tmp_path / "venv"), imported.stdout

    def pocketbert(*args):
        return subprocess.run([tmp_path / "venv" / "bin" / "pocketbert", *map(str, args)],
                              capture_output=True, text=True, cwd=elsewhere, env=env)

    models = pocketbert("models")
    assert models.returncode == 0, models.stderr
    assert all(name in models.stdout for name in ("mobilebert", "squeezebert", "distilbert", "bert"))
    created = pocketbert("create", "bert", "tiny", "--layers", "1", "--task", "text-classification")
    assert created.returncode == 0, created.stderr
    exported = pocketbert("export", "tiny", "--format", "onnx", "--seq-len", "16", "-o", "tiny-onnx")
    assert exported.returncode == 0, exported.stderr
    assert (elsewhere / "tiny-onnx" / "model.onnx").is_file() and (elsewhere / "tiny-onnx" / "manifest.json").is_file()
