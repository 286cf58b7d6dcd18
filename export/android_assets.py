"""Put a .tflite export where android_demo loads it from: app/src/main/assets/.

The destination contract. ASSETS_DIR is an app's assets directory: it may hold the app's own
files, which are never touched. The asset set (model.tflite, vocab.txt, manifest.json,
config.json, labels.txt) is written as one unit: staged inside ASSETS_DIR, checked, then
swapped in under a lock (atomic.atomic_files), so a failure or a signal leaves the directory
exactly as it was, and the app never sees a new model beside an old vocabulary. Asset files of
an earlier run are replaced only with ``force``, as ``export`` replaces its output. Refused
whatever ``force`` says: a file; the export itself or a directory inside it; another export
directory (manifest.json without the labels.txt every asset set has: its manifest, config and
vocabulary would be replaced); a checkpoint (config.json beside weights).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from pocketbert.atomic import atomic_files, check_free_space, refuse_existing_files
from pocketbert.errors import PocketbertError
from pocketbert.formats import runner_for_file
from pocketbert.contracts.artifact import MANIFEST_NAME, Artifact, is_artifact
from pocketbert.models.configs import CONFIG_NAME, load_config
from pocketbert.models.tasks import get_task
from pocketbert.models.weights import is_checkpoint
from pocketbert.models.wordpiece import VOCAB_NAME

MODEL_NAME, LABELS_NAME = "model.tflite", "labels.txt"  # the names the app loads
ASSET_NAMES = (MODEL_NAME, VOCAB_NAME, MANIFEST_NAME, CONFIG_NAME, LABELS_NAME)
APP_ASSETS = "android_demo/app/src/main/assets"


def refuse_destination(assets: Path, artifact: Artifact, force: bool) -> None:
    """Refuse, before any work, an ASSETS_DIR that is not an app's assets directory (see the
    module docstring), or whose asset files would need ``force``."""
    resolved, source = assets.resolve(), artifact.directory.resolve()
    if resolved == source or source in resolved.parents:
        raise PocketbertError(f"{assets}: the export {artifact.directory} itself or a directory inside it; "
                              f"the assets go into an app's assets directory (e.g. {APP_ASSETS})")
    if is_artifact(assets) and not (assets / LABELS_NAME).exists():
        raise PocketbertError(f"{assets}: an export directory ({MANIFEST_NAME}, no {LABELS_NAME}), not an app's "
                              f"assets directory: its manifest, config and vocabulary would be replaced")
    if is_checkpoint(assets):
        raise PocketbertError(f"{assets}: a checkpoint ({CONFIG_NAME} and weights), not an app's assets directory")
    refuse_existing_files(assets, ASSET_NAMES, force)


def write_android_assets(artifact_dir: str | Path, assets_dir: str | Path, force: bool = False) -> list[str]:
    """Copy model.tflite, vocab.txt, manifest.json and config.json, and write labels.txt
    (classifier labels in id order; empty for other tasks) so the app needs nothing else.
    Returns the file names written."""
    artifact = Artifact.open(artifact_dir)
    if artifact.manifest.format != "tflite":
        raise PocketbertError(
            f"{artifact.directory}: a {artifact.manifest.format} export; the Android demo runs .tflite "
            "(pocketbert export MODEL --format tflite)"
        )
    assets = Path(assets_dir)
    refuse_destination(assets, artifact, force)
    model = artifact.model_path()  # checks the sha256 first: nothing is written for a bad artifact
    # a sha256 only proves the file matches its own manifest: LiteRT must load it, with the
    # inputs and outputs the manifest (and so the app) names
    runner = runner_for_file(model, artifact.manifest)
    # the app runs the seq_N signatures the manifest's buckets name: the file must have them
    listed, found = tuple(artifact.spec().buckets), tuple(getattr(runner, "sequence_buckets", ()))
    if listed != found:
        raise PocketbertError(f"{model}: its manifest lists sequence buckets {list(listed)}, the file has "
                              f"{list(found)} (a file of another export?)")
    vocab = artifact.directory / VOCAB_NAME
    if not vocab.is_file():
        raise PocketbertError(f"{artifact.directory}: no {VOCAB_NAME} (export from a checkpoint that has a tokenizer)")
    sources = {MODEL_NAME: model, VOCAB_NAME: vocab, MANIFEST_NAME: artifact.directory / MANIFEST_NAME,
               CONFIG_NAME: artifact.directory / CONFIG_NAME}
    check_free_space(assets, sum(path.stat().st_size for path in sources.values()) + 1_000_000,
                     "the Android asset set")
    labels = []
    if get_task(artifact.task).named_labels:
        config = load_config(artifact.directory)
        id2label = config.id2label or {}
        labels = [id2label.get(i, f"LABEL_{i}") for i in range(config.num_labels)]
    with atomic_files(assets, ASSET_NAMES, force=force) as stage:
        for name, source in sources.items():
            shutil.copyfile(source, stage / name)
        (stage / LABELS_NAME).write_text("".join(f"{label}\n" for label in labels), encoding="utf-8")
    return list(ASSET_NAMES)
