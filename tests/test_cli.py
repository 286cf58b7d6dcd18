"""The pocketbert command: real subprocesses, one-line errors, exit code 2 on bad input."""

from __future__ import annotations

import json

import pytest
from helpers import assert_one_line_error, pocketbert

from pocketbert.models import registry

pytestmark = pytest.mark.integration


def test_models_lists_every_architecture_at_paper_size(cli_env):
    done = pocketbert("models", "--json", env=cli_env)
    assert done.returncode == 0, done.stderr
    rows = {row["architecture"]: row for row in json.loads(done.stdout)}
    assert set(rows) == set(registry.ARCHITECTURES)
    for row in rows.values():
        assert row["matches_paper"], row
        assert row["tasks"] == list(registry.get_architecture(row["architecture"]).tasks)


def test_create_then_info(tmp_path, cli_env):
    out = tmp_path / "tiny"
    done = pocketbert("create", "squeezebert", out, "--layers", "1", "--task", "question-answering", "--seed", "3", env=cli_env)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.iterdir()) == [
        "config.json", "model.safetensors", "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt",
    ]
    info = pocketbert("info", out, "--json", env=cli_env)
    assert info.returncode == 0, info.stderr
    described = json.loads(info.stdout)
    assert described["class"] == "SqueezeBertForQuestionAnswering"
    assert described["layers"] == 1
    assert described["inputs"] == ["input_ids", "attention_mask", "token_type_ids"]
    assert described["outputs"] == ["start_logits", "end_logits"]
    again = pocketbert("create", "squeezebert", out, "--layers", "1", env=cli_env)
    assert_one_line_error(again, str(out), "--force")
    forced = pocketbert("create", "squeezebert", out, "--layers", "1", "--force", env=cli_env)
    assert forced.returncode == 0, forced.stderr


def test_loading_a_head_the_checkpoint_lacks_warns_in_one_line(tmp_path, cli_env):
    out = tmp_path / "bare"
    assert pocketbert("create", "bert", out, "--layers", "1", "--task", "feature-extraction", env=cli_env).returncode == 0
    done = pocketbert("info", out, "--task", "text-classification", env=cli_env)
    assert done.returncode == 0, done.stderr
    warnings = [line for line in done.stderr.splitlines() if line.startswith("pocketbert: warning:")]
    assert len(warnings) == 1 and "newly initialised: classifier.bias" in warnings[0]


@pytest.mark.parametrize(
    "damage,fragments",
    [
        ("no-config", ["config.json", "no config.json"]),
        ("unknown-type", ["unknown model_type 'albert'"]),
        ("corrupt", ["model.safetensors", "not a readable safetensors file"]),
        ("no-dir", ["no such directory"]),
    ],
)
def test_bad_checkpoints_exit_2_with_one_line(tmp_path, cli_env, damage, fragments):
    out = tmp_path / "m"
    assert pocketbert("create", "distilbert", out, "--layers", "1", env=cli_env).returncode == 0
    if damage == "no-config":
        (out / "config.json").unlink()
    elif damage == "unknown-type":
        (out / "config.json").write_text(json.dumps({"model_type": "albert"}))
    elif damage == "corrupt":
        (out / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{garbage")
    elif damage == "no-dir":
        out = tmp_path / "missing"
    assert_one_line_error(pocketbert("info", out, env=cli_env), *fragments)


def test_unknown_architecture_and_task_exit_2(tmp_path, cli_env):
    done = pocketbert("create", "albert", tmp_path / "x", env=cli_env)
    assert done.returncode == 2 and "invalid choice: 'albert'" in done.stderr
    done = pocketbert("create", "bert", tmp_path / "y", "--task", "multiple-choice", "--layers", "1", env=cli_env)
    assert_one_line_error(done, "bert has no task 'multiple-choice'")
    assert not (tmp_path / "y").exists()
