"""Put a .tflite export where android_demo loads it from: app/src/main/assets/."""

from __future__ import annotations

import shutil
from pathlib import Path

from pocketbert.atomic import atomic_file
from pocketbert.errors import PocketbertError
from pocketbert.formats import runner_for_file
from pocketbert.contracts.artifact import MANIFEST_NAME, Artifact
from pocketbert.models.configs import CONFIG_NAME, load_config
from pocketbert.models.tasks import get_task

LABELS_NAME = "labels.txt"


def write_android_assets(artifact_dir: str | Path, assets_dir: str | Path) -> list[str]:
    """Copy model.tflite, vocab.txt, manifest.json and config.json, and write labels.txt
    (classifier labels in id order; empty for other tasks) so the app needs nothing else.
    Returns the file names written."""
    artifact = Artifact.open(artifact_dir)
    if artifact.manifest.format != "tflite":
        raise PocketbertError(
            f"{artifact.directory}: a {artifact.manifest.format} export; the Android demo runs .tflite "
            "(pocketbert export MODEL --format tflite)"
        )
    model = artifact.model_path()  # checks the sha256 first: nothing is written for a bad artifact
    # a sha256 only proves the file matches its own manifest: LiteRT must load it, with the
    # inputs and outputs the manifest (and so the app) names
    runner = runner_for_file(model, artifact.manifest)
    # the app runs the seq_N signatures the manifest's buckets name: the file must have them
    listed, found = tuple(artifact.spec().buckets), tuple(getattr(runner, "sequence_buckets", ()))
    if listed != found:
        raise PocketbertError(f"{model}: its manifest lists sequence buckets {list(listed)}, the file has "
                              f"{list(found)} (a file of another export?)")
    vocab = artifact.directory / "vocab.txt"
    if not vocab.is_file():
        raise PocketbertError(f"{artifact.directory}: no vocab.txt (export from a checkpoint that has a tokenizer)")
    assets = Path(assets_dir)
    assets.mkdir(parents=True, exist_ok=True)
    sources = {"model.tflite": model, "vocab.txt": vocab, MANIFEST_NAME: artifact.directory / MANIFEST_NAME,
               CONFIG_NAME: artifact.directory / CONFIG_NAME}
    for name, source in sources.items():
        with atomic_file(assets / name) as tmp:
            shutil.copyfile(source, tmp)
    labels = []
    if get_task(artifact.task).named_labels:
        config = load_config(artifact.directory)
        id2label = config.id2label or {}
        labels = [id2label.get(i, f"LABEL_{i}") for i in range(config.num_labels)]
    with atomic_file(assets / LABELS_NAME) as tmp:
        tmp.write_text("".join(f"{label}\n" for label in labels), encoding="utf-8")
    return [*sources, LABELS_NAME]
