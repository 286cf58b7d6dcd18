"""PyTorch -> TFLite (LiteRT) through litert-torch: builtin ops only, named signature.

Static shapes (batch 1, seq 128 by default: delegates want them), int32 inputs. The
module is converted with keyword sample inputs and a dict output, so the signature's
inputs and outputs carry the model's names (input_ids ... -> logits) instead of the
args_0 / output_0 a plain conversion gives. No TensorFlow is imported anywhere.

After conversion the file is opened with ai-edge-litert's Interpreter twice: without
delegates for the op histogram (and the builtin-ops check), and with the default XNNPACK
delegate to count the nodes it takes.

The vocabulary and a description of the signature go inside the file as named buffers of
the model's ``metadata`` table, written with ai-edge-litert's flatbuffer schema. The
richer TFLITE_METADATA format needs tflite-support, which is unmaintained and pins
numpy < 2, so vocab.txt also sits beside the file.
"""

from __future__ import annotations

import contextlib
import json
import io
from collections import Counter
from pathlib import Path

import torch
from torch import nn

from pocketbert.atomic import termination_deferred
from pocketbert.errors import PocketbertError, first_line
from pocketbert.contracts.buckets import bucket_signature
from pocketbert.formats.tflite.layer_norm import integer_layer_norms
from pocketbert.formats.tflite.litert import INSTALL_HINT, interpreter_module
from pocketbert.quiet import captured_stderr, quiet_libraries
from pocketbert.contracts.spec import ExportSpec, random_inputs
from pocketbert.models.modeling import PreTrainedModel
from pocketbert.models.tokenizer import vocabulary_text

MODEL_FILE = "model.tflite"


class NamedOutputs(nn.Module):
    """Keyword inputs and a dict output: litert-torch names the signature after both."""

    def __init__(self, model: PreTrainedModel):
        super().__init__()
        self.model = model

    def forward(self, **inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        return dict(self.model(**inputs))


def inspect_tflite(path: Path) -> dict:
    """Op histogram, builtin-only check and XNNPACK coverage of a .tflite file."""
    interpreter = interpreter_module()
    plain = interpreter.Interpreter(
        str(path), experimental_op_resolver_type=interpreter.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    )
    plain.allocate_tensors()
    ops = Counter(op["op_name"] for op in plain._get_ops_details())
    non_builtin = sorted(name for name in ops if name in ("CUSTOM", "DELEGATE") or name.startswith("Flex"))
    with captured_stderr():
        delegated = interpreter.Interpreter(str(path), num_threads=1)
        delegated.allocate_tensors()
    taken, partitions = delegated_nodes(delegated._get_ops_details())
    left = Counter(op["op_name"] for op in plain._get_ops_details() if op["index"] not in taken)
    xnnpack = {"nodes": len(taken), "of": sum(ops.values()), "partitions": partitions, "not_delegated": dict(left)}
    return {
        "op_histogram": dict(sorted(ops.items(), key=lambda kv: (-kv[1], kv[0]))),
        "builtin_ops_only": not non_builtin,
        "non_builtin_ops": non_builtin,
        "xnnpack": xnnpack,
        "signatures": plain.get_signature_list(),
    }


def delegated_nodes(ops: list[dict]) -> tuple[set[int], int]:
    """Indices of the nodes the delegate took, and its partition count.

    The interpreter lists the original nodes plus one DELEGATE node per partition, whose
    inputs/outputs are the partition's boundary tensors: walking producers back from its
    outputs to its inputs finds exactly the nodes it replaced."""
    delegates = [op for op in ops if op["op_name"] == "DELEGATE"]
    producers = {int(t): op for op in ops if op["op_name"] != "DELEGATE" for t in op["outputs"]}
    taken: set[int] = set()
    for delegate in delegates:
        boundary = {int(t) for t in delegate["inputs"]}
        stack = [int(t) for t in delegate["outputs"]]
        while stack:
            tensor = stack.pop()
            op = producers.get(tensor)
            if tensor in boundary or op is None or op["index"] in taken:
                continue
            taken.add(op["index"])
            stack.extend(int(t) for t in op["inputs"] if t >= 0)
    return taken, len(delegates)


INPUT_DESCRIPTIONS = {
    "input_ids": "WordPiece ids of [CLS] text [SEP] (pair: [CLS] a [SEP] b [SEP]), right-padded with [PAD]",
    "attention_mask": "1 for real tokens, 0 for padding",
    "token_type_ids": "0 for the first segment, 1 for the second",
}


def embed_metadata(path: Path, entries: dict[str, bytes]) -> None:
    """Add named buffers to the model's own ``metadata`` table (the TFLite flatbuffer
    schema from ai-edge-litert; no TensorFlow or tflite-support needed). An app reads them
    by name from the flatbuffer."""
    import flatbuffers
    import numpy as np
    from ai_edge_litert import schema_py_generated as schema

    data = path.read_bytes()
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(data, 0))
    model.metadata = [m for m in (model.metadata or []) if m.name.decode() not in entries]
    for name, payload in entries.items():
        buffer = schema.BufferT()
        buffer.data = np.frombuffer(payload, dtype=np.uint8)
        model.buffers.append(buffer)
        entry = schema.MetadataT()
        entry.name, entry.buffer = name.encode(), len(model.buffers) - 1
        model.metadata.append(entry)
    builder = flatbuffers.Builder(len(data) + sum(map(len, entries.values())) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    path.write_bytes(builder.Output())


def read_metadata(path: Path) -> dict[str, bytes]:
    """The named metadata buffers of a .tflite file."""
    from ai_edge_litert import schema_py_generated as schema

    model = schema.Model.GetRootAsModel(path.read_bytes(), 0)
    out = {}
    for i in range(model.MetadataLength()):
        entry = model.Metadata(i)
        out[entry.Name().decode()] = model.Buffers(entry.Buffer()).DataAsNumpy().tobytes()
    return out


def metadata_entries(model: PreTrainedModel, spec: ExportSpec) -> dict[str, bytes]:
    """The vocabulary and a description of the signature, for apps that get only the file."""
    entries = {}
    source = getattr(model, "checkpoint_dir", None)
    vocab = None if source is None else vocabulary_text(source)
    if vocab is not None:
        entries["pocketbert.vocab.txt"] = vocab.encode("utf-8")
    description = {
        "architecture": model.config.model_type,
        "task": model.task,
        "inputs": [{**i, "description": INPUT_DESCRIPTIONS[i["name"]]} for i in spec.manifest_inputs("int32")],
        "outputs": spec.manifest_outputs(),
        "id2label": {str(k): v for k, v in (model.config.id2label or {}).items()},
        "do_lower_case": True,
        # a bucketed file: its signatures' lengths (seq_N); an app pads to the smallest that fits
        "sequence_buckets": list(spec.buckets),
    }
    entries["pocketbert.signature.json"] = json.dumps(description, indent=1).encode()
    return entries


def _sample(model: PreTrainedModel, spec: ExportSpec, length: int) -> dict[str, torch.Tensor]:
    example = random_inputs(spec, model.config.vocab_size, {**spec.sizes(), "sequence": length}, seed=0)
    return {name: torch.from_numpy(example[name]) for name in spec.input_names}


def export_tflite(model: PreTrainedModel, spec: ExportSpec, directory: Path, integer_norms: bool = False) -> dict:
    """``integer_norms``: layer norm in ops the 16-bit integer kernels run (``layer_norm.py``), for
    the NPU; the default graph keeps litert-torch's own (tflite-static-int8 keeps typical
    sentences' pooled cosine mean 0.9946 on it, 0.9916 on the other: not explained yet)."""
    try:
        # its import pulls torchao and jax, which log about GPU kernels this machine lacks
        with termination_deferred(), quiet_libraries(native_stderr=True):
            import litert_torch
    except ImportError:
        raise PocketbertError(f"TFLite export needs litert-torch: {INSTALL_HINT}") from None
    if not spec.static:
        raise PocketbertError("TFLite exports are static: build the spec with static=True")
    path = directory / MODEL_FILE
    module = NamedOutputs(model).eval()
    with captured_stderr() as log, contextlib.redirect_stdout(io.StringIO()):  # converter progress lines
        try:
            with torch.no_grad(), integer_layer_norms() if integer_norms else contextlib.nullcontext():
                if spec.buckets:  # one signature per length; the converter keeps one copy of the weights
                    converter = litert_torch
                    for length in spec.buckets:
                        converter = converter.signature(bucket_signature(length), module,
                                                        sample_kwargs=_sample(model, spec, length))
                    edge = converter.convert()
                else:
                    edge = litert_torch.convert(module, sample_kwargs=_sample(model, spec, spec.sequence))
                edge.export(str(path))
        except Exception as exc:
            raise PocketbertError(f"TFLite conversion failed: {type(exc).__name__}: {first_line(exc)}") from None
    entries = metadata_entries(model, spec)
    embed_metadata(path, entries)
    details = inspect_tflite(path)
    details["metadata"] = sorted(entries)
    if not details["builtin_ops_only"]:
        raise PocketbertError(f"{path}: needs non-builtin ops {details['non_builtin_ops']}")
    from importlib import metadata

    details["converter"] = f"litert-torch {metadata.version('litert-torch')}"
    details["converter_log_lines"] = len(log)
    return details
