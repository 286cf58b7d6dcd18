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

Paper numbers at sequence length 128 (backbone, task=None), see ``PAPER_GFLOPS``:

* BERT-base: 22.35 G here vs 22.5 G quoted by the MobileBERT and SqueezeBERT papers (-0.7%).
* SqueezeBERT: 7.40 G vs 7.42 G in its paper (-0.3%).
* DistilBERT: 11.17 G, exactly half of BERT-base's encoder (6 of its 12 layers); the paper
  quotes no FLOPs, only "60% faster".
* MobileBERT: 5.39 G (5.34 G encoder + 0.05 G trigram projection). The MobileBERT paper
  quotes 5.7 G, 5.6% more than the architecture can give under this convention; the
  SqueezeBERT paper counts the same model at 5.36 G, which this matches (+0.5%). The same
  count gives MobileBERT-TINY (2 FFNs, bottlenecked attention) 3.07 G against its paper's
  3.1 G, so the MobileBERT paper's 5.7 G is the outlier: no choice of what to include makes
  it (the projection adds 0.05 G, pooler and classifier < 0.001 G, the MLM head 4.07 G;
  counting query/key/value all from the 512-wide stream instead of the shared bottleneck
  gives 5.59 G; the element-wise work this convention skips is ~0.04 G). The paper gives
  no breakdown, so treat its 5.7 G as ~5% high; the roofline uses the count here.
"""

from __future__ import annotations

import statistics
import time

import torch

from pocketbert.errors import PocketbertError
from pocketbert.models.configs import ModelConfig

PARTS = (
    "embeddings",
    "attention_projections",
    "attention_scores",
    "feed_forward",
    "bottlenecks",
    "head",
)

# Backbone GFLOPs at sequence length 128, batch 1, as the papers quote them (see above).
PAPER_GFLOPS: dict[str, dict[str, float]] = {
    "bert": {"mobilebert_paper": 22.5, "squeezebert_paper": 22.5},
    "mobilebert": {"mobilebert_paper": 5.7, "squeezebert_paper": 5.36},
    "squeezebert": {"squeezebert_paper": 7.42},
}


class _Count:
    """Accumulates FLOPs per part."""

    def __init__(self) -> None:
        self.parts = dict.fromkeys(PARTS, 0)

    def linear(self, part: str, rows: int, d_in: int, d_out: int, groups: int = 1) -> None:
        """``rows`` vectors through a d_in -> d_out Linear (or 1x1 Conv1d with ``groups``)."""
        self.parts[part] += 2 * rows * (d_in // groups) * d_out

    def attention(self, sequences: int, seq_len: int, width: int) -> None:
        """QK^T and PV over all heads: each is sequences * S * S * width MACs."""
        self.parts["attention_scores"] += 2 * 2 * sequences * seq_len * seq_len * width


def _bert_layers(c: _Count, config, tokens: int, batch: int, seq_len: int) -> None:
    h, inner, n = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    for _ in range(n):
        for _ in range(4):  # query, key, value, attention.output.dense (DistilBERT: out_lin)
            c.linear("attention_projections", tokens, h, h)
        c.attention(batch, seq_len, h)
        c.linear("feed_forward", tokens, h, inner)
        c.linear("feed_forward", tokens, inner, h)


def _squeezebert_layers(c: _Count, config, tokens: int, batch: int, seq_len: int) -> None:
    h, inner = config.hidden_size, config.intermediate_size
    for _ in range(config.num_hidden_layers):
        for groups in (config.q_groups, config.k_groups, config.v_groups, config.post_attention_groups):
            c.linear("attention_projections", tokens, h, h, groups)
        c.attention(batch, seq_len, h)
        c.linear("feed_forward", tokens, h, inner, config.intermediate_groups)
        c.linear("feed_forward", tokens, inner, h, config.output_groups)


def _mobilebert_embeddings(c: _Count, config, tokens: int) -> None:
    e, h = config.embedding_size, config.hidden_size
    if config.trigram_input or e != h:  # MobileBertEmbeddings.project
        c.linear("embeddings", tokens, e * (3 if config.trigram_input else 1), h)


def _mobilebert_layers(c: _Count, config, tokens: int, batch: int, seq_len: int) -> None:
    h, t, inner = config.hidden_size, config.true_hidden_size, config.intermediate_size
    value_in = t if config.use_bottleneck_attention else h
    for _ in range(config.num_hidden_layers):
        if config.use_bottleneck:
            c.linear("bottlenecks", tokens, h, t)  # bottleneck.input
            if config.key_query_shared_bottleneck and not config.use_bottleneck_attention:
                c.linear("bottlenecks", tokens, h, t)  # bottleneck.attention (query/key input)
        c.linear("attention_projections", tokens, t, t)  # query
        c.linear("attention_projections", tokens, t, t)  # key
        c.linear("attention_projections", tokens, value_in, t)  # value
        c.attention(batch, seq_len, t)
        c.linear("attention_projections", tokens, t, t)  # attention.output.dense
        for _ in range(config.num_feedforward_networks):  # ffn[*] then intermediate/output
            c.linear("feed_forward", tokens, t, inner)
            c.linear("feed_forward", tokens, inner, t)
        if config.use_bottleneck:
            c.linear("bottlenecks", tokens, t, h)  # output.bottleneck


def _has_pooler(config, task: str) -> bool:
    """Whether the task model runs a pooler dense (H -> H on the first token)."""
    if config.model_type == "distilbert":
        return False  # no pooler; its classifiers have their own pre_classifier
    if config.model_type == "mobilebert" and not config.classifier_activation:
        return False  # the pooler returns the first token as is
    if config.model_type == "squeezebert":
        return True  # built whatever the task (as transformers does), and always run
    return task in ("feature-extraction", "pretraining", "next-sentence-prediction",
                    "text-classification", "multiple-choice")


def _head(c: _Count, config, task: str, tokens: int, batch: int) -> None:
    h, vocab = config.hidden_size, config.vocab_size
    if _has_pooler(config, task):
        c.linear("head", batch, h, h)
    if task in ("fill-mask", "pretraining"):
        c.linear("head", tokens, h, h)  # transform.dense (DistilBERT: vocab_transform)
        c.linear("head", tokens, h, vocab)  # decoder (MobileBERT: [decoder | dense] is H wide)
    if task in ("pretraining", "next-sentence-prediction"):
        c.linear("head", batch, h, 2)  # seq_relationship
    if task in ("text-classification", "multiple-choice"):
        if config.model_type == "distilbert":
            c.linear("head", batch, h, h)  # pre_classifier
        c.linear("head", batch, h, config.num_labels if task == "text-classification" else 1)
    if task == "token-classification":
        c.linear("head", tokens, h, config.num_labels)
    if task == "question-answering":
        c.linear("head", tokens, h, 2)  # qa_outputs: start and end


_LAYERS = {
    "bert": _bert_layers,
    "distilbert": _bert_layers,  # same block; only the names and norms differ
    "mobilebert": _mobilebert_layers,
    "squeezebert": _squeezebert_layers,
}


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
    from pocketbert.models import registry

    if config.model_type not in _LAYERS:
        raise PocketbertError(f"no FLOPs count for model_type {config.model_type!r}")
    if seq_len < 1 or batch < 1:
        raise PocketbertError(f"seq_len and batch must be >= 1, got {seq_len} and {batch}")
    if task is not None:
        registry.get_architecture(config.model_type).model_class(task)  # rejects unknown tasks
    tokens = batch * seq_len
    c = _Count()
    if config.model_type == "mobilebert":
        _mobilebert_embeddings(c, config, tokens)
    _LAYERS[config.model_type](c, config, tokens, batch, seq_len)
    if task is not None:
        _head(c, config, task, tokens, batch)
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


def _rate(matmul, size: int, seconds: float) -> float:
    matmul()  # warm-up: thread pool, packing buffers
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < 3 or time.perf_counter() - start < seconds:
        begin = time.perf_counter()
        matmul()
        times.append(time.perf_counter() - begin)
    return 2.0 * size**3 / statistics.median(times) / 1e9


def _torch_matmul(threads: int, size: int):
    g = torch.Generator().manual_seed(0)
    a, b, out = torch.randn(size, size, generator=g), torch.randn(size, size, generator=g), torch.empty(size, size)

    def matmul() -> None:
        previous = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            with torch.inference_mode():
                torch.mm(a, b, out=out)
        finally:
            torch.set_num_threads(previous)

    return matmul


def _onnxruntime_matmul(threads: int, size: int):
    import numpy as np
    import onnxruntime as ort
    from onnx import TensorProto, helper

    value = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [size, size]) for n in "abc"]
    graph = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["c"])], "gemm", value[:2], value[2:])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    feed = {n: rng.standard_normal((size, size), dtype=np.float32) for n in "ab"}
    return lambda: session.run(None, feed)


def main() -> None:  # pragma: no cover - a table for people, the tests cover the functions
    """Print the paper-size counts at sequence length 128 and this host's GEMM peak."""
    from pocketbert.models import registry

    for name, arch in registry.ARCHITECTURES.items():
        config = arch.default_config()
        backbone = model_flops(config, 128)["total"] / 1e9
        classify = model_flops(config, 128, task="text-classification")["total"] / 1e9
        print(f"{name:12s} backbone {backbone:6.2f} GFLOPs   text-classification {classify:6.2f} GFLOPs")
    for threads in sorted({1, torch.get_num_threads()}):
        rates = gemm_peak_gflops(threads)
        print(f"gemm, {threads} thread(s): " + ", ".join(f"{k} {v:.1f}" for k, v in rates.items()) + " GFLOP/s")


if __name__ == "__main__":  # pragma: no cover
    main()
