"""Analytic FLOPs of the four architectures, and the GEMM peak of the machine measuring them.

The benchmark report puts achieved GFLOP/s (``Measurement.with_flops``) next to a roofline:
``model_flops`` says how much work one inference is, ``gemm_peak_gflops`` how fast this host
multiplies matrices.

Counting convention (the one the papers use, and the one ``torch.utils.flop_counter``
uses): FLOPs = 2 x multiply-accumulates of every matrix product, i.e. every Linear
(``2 * tokens * d_in * d_out``), every 1x1 Conv1d (the same divided by its ``groups``) and
the two attention products QK^T and PV (``2 * S * S * width`` each, per sequence).
Bias adds, activations, softmax, norms (LayerNorm, MobileBERT's NoNorm), residual adds,
scaling, masking and embedding lookups are not counted. Everything is derived from the
config, so the number tracks the modules in ``pocketbert.models`` for every variant
(layers, widths, groups, bottlenecks, stacked FFNs, trigram projection); the tests check it
op for op against ``FlopCounterMode`` on the real modules.

``by_part`` splits the total into:

* ``embeddings``: MobileBERT's embedding projection (trigram 3E -> H, or E -> H); 0 for the
  others (lookups are free).
* ``attention_projections``: query, key, value and the projection after attention (BERT's
  ``attention.output.dense``, DistilBERT's ``out_lin``, SqueezeBERT's ``post_attention``
  conv, MobileBERT's ``attention.output.dense`` at bottleneck width).
* ``attention_scores``: QK^T and PV, ``4 * S^2 * width`` per sequence and layer, the only
  term quadratic in the sequence length.
* ``feed_forward``: the intermediate and output layers, and MobileBERT's extra stacked FFNs.
* ``bottlenecks``: MobileBERT's H -> intra-block squeeze (``bottleneck.input``), the shared
  query/key squeeze (``bottleneck.attention``) and the expansion back to H
  (``output.bottleneck``); 0 for the others.
* ``head``: whatever the task model computes after the encoder (see ``model_flops``).

With a task whose head reads the first token alone (``reads_first_token_only``: sequence
classification, multiple choice, next-sentence prediction) the last layer computes its query,
its projection after attention and its feed-forward for that one row (``blocks.encoder_steps``),
so the encoder costs less than the papers' figure: BERT-base 0.93 of it at seq 128,
DistilBERT 0.86, SqueezeBERT 0.93, MobileBERT 0.97.

Each architecture counts its own embeddings and layers (``count_encoder_flops`` of its
registry entry, in its model file, beside the modules it counts) and carries the figures
its papers quote (``paper_gflops``, collected in ``PAPER_GFLOPS``); the model files say
how the counts compare. At sequence length 128: BERT-base 22.35 G (papers: 22.5 G),
SqueezeBERT 7.40 G (7.42 G), DistilBERT 11.17 G (half of BERT-base), MobileBERT 5.39 G
(the SqueezeBERT paper: 5.36 G; the MobileBERT paper's 5.7 G is ~5% high).
"""

from __future__ import annotations

import statistics
import time

import torch

from pocketbert.errors import PocketbertError
from pocketbert.models import registry
from pocketbert.models.architecture import Architecture
from pocketbert.models.config_base import ModelConfig
from pocketbert.models.tasks import TEXT_CLASSIFICATION, get_task

PARTS = (
    "embeddings",
    "attention_projections",
    "attention_scores",
    "feed_forward",
    "bottlenecks",
    "head",
)

# Backbone GFLOPs at sequence length 128, batch 1, as the papers quote them (see the model files).
PAPER_GFLOPS: dict[str, dict[str, float]] = {
    name: arch.paper_gflops for name, arch in registry.ARCHITECTURES.items() if arch.paper_gflops
}


class _Count:
    """Accumulates FLOPs per part."""

    def __init__(self) -> None:
        self.parts = dict.fromkeys(PARTS, 0)

    def linear(self, part: str, rows: int, d_in: int, d_out: int, groups: int = 1) -> None:
        """``rows`` vectors through a d_in -> d_out Linear (or 1x1 Conv1d with ``groups``)."""
        self.parts[part] += 2 * rows * (d_in // groups) * d_out

    def attention(self, sequences: int, seq_len: int, width: int, queries: int | None = None) -> None:
        """QK^T and PV over all heads: each is sequences * queries * S * width MACs."""
        queries = seq_len if queries is None else queries
        self.parts["attention_scores"] += 2 * 2 * sequences * queries * seq_len * width


def _head(c: _Count, arch: Architecture, config: ModelConfig, task: str, tokens: int, batch: int) -> None:
    """What the task model computes after the encoder: the pooler when its backbone runs it,
    then the Linear layers its registry entry lists (from its own head class)."""
    head_class = arch.model_class(task)
    if arch.backbone.runs_pooler_dense(config, head_class.uses_pooler):
        c.linear("head", batch, config.hidden_size, config.hidden_size)  # pooler.dense on the first token
    rows = {"tokens": tokens, "sequences": batch}
    for layer in get_task(task).head_linears(config, head_class):
        c.linear("head", rows[layer.rows], layer.d_in, layer.d_out)


def model_flops(config: ModelConfig, seq_len: int, batch: int = 1, task: str | None = None) -> dict:
    """FLOPs of one forward pass over ``batch`` sequences of ``seq_len`` tokens.

    Returns ``{"total": float, "by_part": {part: float}}`` with the parts of ``PARTS``
    (described in the module docstring) summing to ``total``. FLOPs are 2 x the
    multiply-accumulates of every Linear, 1x1 (grouped) Conv1d and attention matmul
    (QK^T, PV); element-wise ops, softmax, norms and embedding lookups are not counted, as
    in the papers. Padding is not discounted: every sequence costs ``seq_len`` tokens.

    ``task`` selects the head:

    * ``None``: the encoder alone (embeddings + layers, no pooler): what papers quote.
    * a registry task: exactly what that pocketbert task model computes, e.g.
      ``"feature-extraction"`` adds the backbone's pooler (BERT, SqueezeBERT, MobileBERT
      with classifier_activation), ``"text-classification"`` the pooler (DistilBERT: its
      pre_classifier) and the classifier, ``"fill-mask"`` the MLM transform and the decoder
      over the vocabulary at every position (no pooler, except SqueezeBERT, whose backbone
      always pools). For ``"multiple-choice"`` pass ``batch`` = batch x choices (the
      sequences the backbone encodes).
    """
    if config.model_type not in registry.ARCHITECTURES:
        raise PocketbertError(f"no FLOPs count for model_type {config.model_type!r}")
    if seq_len < 1 or batch < 1:
        raise PocketbertError(f"seq_len and batch must be >= 1, got {seq_len} and {batch}")
    arch = registry.get_architecture(config.model_type)
    first_token_only = task is not None and arch.model_class(task).reads_first_token_only
    c = _Count()
    arch.count_encoder_flops(c, config, batch, seq_len, first_token_only)  # embeddings and layers
    if task is not None:
        _head(c, arch, config, task, batch * seq_len, batch)
    by_part = {name: float(value) for name, value in c.parts.items()}
    return {"total": float(sum(c.parts.values())), "by_part": by_part}


def gemm_peak_gflops(threads: int, size: int = 1024, seconds: float = 1.0) -> dict[str, float]:
    """fp32 ``size`` x ``size`` matmul throughput on this host, in GFLOP/s, per GEMM engine
    the runtimes use (torch's MKL/oneDNN and onnxruntime's MLAS), and their best as "peak":
    the ceiling achieved rates are compared to.

    Both engines are measured because they differ by 2x on some CPUs (on this AMD EPYC,
    MKL takes its AVX2 path: 111 GFLOP/s on one core, MLAS 255). Each: ``threads`` threads,
    one untimed warm-up, then single matmuls until ``seconds`` have passed (at least 3);
    ``2 * size**3 / median time``.
    """
    if threads < 1 or size < 1:
        raise PocketbertError(f"threads and size must be >= 1, got {threads} and {size}")
    rates = {"torch": _rate(_torch_matmul(threads, size), size, seconds)}
    try:
        rates["onnxruntime"] = _rate(_onnxruntime_matmul(threads, size), size, seconds)
    except ImportError:  # pragma: no cover - onnxruntime is a dependency; keep torch's figure
        pass
    return {**rates, "peak": max(rates.values())}


def int8_gemm_peak_gops(threads: int, size: int = 1024, seconds: float = 1.0) -> dict[str, float]:
    """int8 ``size`` x ``size`` matmul throughput (giga integer ops/s, 2 per multiply-add)
    of the int8 kernels the int8 files run on, and their best as "peak": the ceiling of an
    int8 file, as ``gemm_peak_gflops`` is of a float one.

    Measured: torch's quantized linear (fbgemm on x86, QNNPACK on ARM: what the TorchScript
    int8 recipes run) on quint8 activations, and onnxruntime's MatMulInteger (MLAS's u8 x s8
    kernels, the op of the ONNX dynamic recipes) with constant int8 weights, each without
    the activation's quantization (a model pays that beside the GEMM). The int8 rate depends
    on the ISA more than fp32's does (VNNI's and ARM's dot-product instructions do in one what
    AVX2 needs three for), so ``host.isa`` says which kernels ran.
    """
    if threads < 1 or size < 1:
        raise PocketbertError(f"threads and size must be >= 1, got {threads} and {size}")
    rates = {"torch": _rate(_torch_int8_matmul(threads, size), size, seconds)}
    try:
        rates["onnxruntime"] = _rate(_onnxruntime_int8_matmul(threads, size), size, seconds)
    except ImportError:  # pragma: no cover - onnxruntime is a dependency
        pass
    return {**rates, "peak": max(rates.values())}


def _rate(matmul, size: int, seconds: float) -> float:
    matmul()  # warm-up: thread pool, packing buffers
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < 3 or time.perf_counter() - start < seconds:
        begin = time.perf_counter()
        matmul()
        times.append(time.perf_counter() - begin)
    return 2.0 * size**3 / statistics.median(times) / 1e9


def _with_torch_threads(threads: int, call):
    """``call`` at ``threads`` torch threads, the caller's count restored afterwards."""

    def run() -> None:
        previous = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            with torch.inference_mode():
                call()
        finally:
            torch.set_num_threads(previous)

    return run


def _torch_matmul(threads: int, size: int):
    g = torch.Generator().manual_seed(0)
    a, b, out = torch.randn(size, size, generator=g), torch.randn(size, size, generator=g), torch.empty(size, size)
    return _with_torch_threads(threads, lambda: torch.mm(a, b, out=out))


def _torch_int8_matmul(threads: int, size: int):
    import warnings

    engines = torch.backends.quantized.supported_engines
    engine = next(e for e in ("x86", "fbgemm", "qnnpack") if e in engines)
    g = torch.Generator().manual_seed(0)
    with warnings.catch_warnings():  # quantized tensors are deprecated, still what the recipes run
        warnings.simplefilter("ignore")
        previous, torch.backends.quantized.engine = torch.backends.quantized.engine, engine
        try:
            weight = torch.quantize_per_tensor(torch.randn(size, size, generator=g), 0.05, 0, torch.qint8)
            packed = torch.ops.quantized.linear_prepack(weight, None)
            x = torch.quantize_per_tensor(torch.rand(size, size, generator=g), 0.01, 0, torch.quint8)
        finally:
            torch.backends.quantized.engine = previous
    return _with_torch_threads(threads, lambda: torch.ops.quantized.linear(x, packed, 0.1, 0))


def _onnxruntime_session(graph, threads: int):
    import onnxruntime as ort
    from onnx import helper

    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def _onnxruntime_matmul(threads: int, size: int):
    import numpy as np
    from onnx import TensorProto, helper

    value = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [size, size]) for n in "abc"]
    graph = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["c"])], "gemm", value[:2], value[2:])
    session = _onnxruntime_session(graph, threads)
    rng = np.random.default_rng(0)
    feed = {n: rng.standard_normal((size, size), dtype=np.float32) for n in "ab"}
    return lambda: session.run(None, feed)


def _onnxruntime_int8_matmul(threads: int, size: int):
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weights = numpy_helper.from_array(rng.integers(-127, 128, (size, size), dtype=np.int8), "b")
    a = helper.make_tensor_value_info("a", TensorProto.UINT8, [size, size])
    c = helper.make_tensor_value_info("c", TensorProto.INT32, [size, size])
    graph = helper.make_graph([helper.make_node("MatMulInteger", ["a", "b"], ["c"])], "gemm", [a], [c],
                              initializer=[weights])
    session = _onnxruntime_session(graph, threads)
    feed = {"a": rng.integers(0, 256, (size, size), dtype=np.uint8)}
    return lambda: session.run(None, feed)


def main() -> None:  # pragma: no cover - a table for people, the tests cover the functions
    """Print the paper-size counts at sequence length 128 and this host's GEMM peak."""
    for name, arch in registry.ARCHITECTURES.items():
        config = arch.default_config()
        backbone = model_flops(config, 128)["total"] / 1e9
        classify = model_flops(config, 128, task=TEXT_CLASSIFICATION.name)["total"] / 1e9
        print(f"{name:12s} backbone {backbone:6.2f} GFLOPs   {TEXT_CLASSIFICATION.name} {classify:6.2f} GFLOPs")
    for threads in sorted({1, torch.get_num_threads()}):
        rates = gemm_peak_gflops(threads)
        print(f"gemm, {threads} thread(s): " + ", ".join(f"{k} {v:.1f}" for k, v in rates.items()) + " GFLOP/s")
        rates = int8_gemm_peak_gops(threads)
        print(f"int8 gemm, {threads} thread(s): " + ", ".join(f"{k} {v:.1f}" for k, v in rates.items()) + " GOP/s")


if __name__ == "__main__":  # pragma: no cover
    main()
