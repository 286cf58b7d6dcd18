"""Where a checkpoint is: a local directory, or a hub id found through huggingface_hub's cache.

The lowest layer of checkpoint I/O: models, tokenizers and configs all start from a
directory, so this module imports nothing else of ``pocketbert.models`` beyond the config
file name.
"""

from __future__ import annotations

from pathlib import Path

from pocketbert.errors import CheckpointError, first_line
from pocketbert.models.config_base import CONFIG_NAME

# what a hub snapshot needs: config, weights in either format, tokenizer files
HUB_PATTERNS = [
    CONFIG_NAME,
    "*.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model-*.bin",
    "pytorch_model.bin.index.json",
    "vocab.txt",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
]


def resolve(name_or_path: str | Path) -> Path:
    """A local checkpoint directory, or a hub id looked up through huggingface_hub's cache
    (honours HF_HUB_OFFLINE and HF_HOME / HF_HUB_CACHE)."""
    path = Path(name_or_path).expanduser()
    if path.is_symlink() and not path.exists():  # exists() is False for a loop or a dangling link
        raise CheckpointError(f"{path}: a symbolic link to nothing (dangling, or a loop)")
    if path.exists():
        if not path.is_dir():
            raise CheckpointError(f"{path}: not a directory (a checkpoint is a directory with config.json)")
        return path
    name = str(name_or_path)
    from huggingface_hub import snapshot_download  # third-party, slow to import: only for hub ids
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(name)
    except HFValidationError:
        raise CheckpointError(f"{name}: no such directory") from None
    try:
        return Path(snapshot_download(repo_id=name, allow_patterns=HUB_PATTERNS))
    except Exception as exc:  # huggingface_hub raises a family of offline/HTTP/not-found errors
        reason = first_line(exc)
        raise CheckpointError(
            f"{name}: no such directory, and not available from the Hugging Face hub or its cache ({reason})"
        ) from None
