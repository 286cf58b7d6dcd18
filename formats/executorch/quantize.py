"""int8 for ExecuTorch: PT2E quantization with the XNNPACK quantizer (torchao), then lowered.

    torch.export -> prepare_pt2e(XNNPACKQuantizer) -> calibrate -> convert_pt2e
                 -> torch.export -> XNNPACK .pte (export/executorch_export.lower)

Like the TorchScript recipes these quantize the PyTorch model, not a float file: given a
float .pte artifact, the checkpoint it was exported from (its manifest's ``source``) is
quantized with the artifact's shapes.

- dynamic: int8 per-channel weights of every Linear (and SqueezeBERT's Conv1d, traced as the
  same Conv2d: ``pointwise_convolutions_as_2d``), activations quantized per row at run time
  by XNNPACK; one example input runs through the weight observers. Before that, the
  calibration text smooths those layers' inputs and fits their weights by error feedback
  (formats/smoothed_layers.py): real all-MiniLM-L6-v2, 304 held-out texts, seq 128, recall@10
  0.966 -> 0.978, short-text pooled cosine min 0.994 -> 0.998.
- static: int8 weights and activations (min/max ranges, calibrated on text) for
  Linear/Conv, add and mul. The additive mask (-10000 on padded keys) and the add that
  puts it on the attention scores stay float (``float_softmax``): quantized with the
  scores, the -10000 sets their int8 range and DistilBERT falls to chance (tested). The
  outlier carriers stay float too (``float_outliers``: FFN outputs, residual adds into a
  LayerNorm, sentence pooling), and XNNPACK's histogram observer gives way to min/max: on
  the real all-MiniLM-L6-v2 (304 held-out texts, seq 128) the recipe went from pooled cosine
  mean 0.872 (refused) to 0.992 with the first, 0.994 with both. The matrix products that
  read a LayerNorm's output (the heads' Q, K, V, the FFN input: ``normalized_inputs``) take
  the dynamic scheme instead, one scale per token row at run time: tuning text (the
  sentiment reviews) went from tie-aware retention 0.93, short-text min 0.967 to 0.995 and
  0.991.
- both: weight steps as fine as float32 allows (``_finer_observers``).
- weights-only subgraphs stay float in both (see ``kept_float``).

The spike's "IndexError: tensors used as indices must be long, int, byte or bool tensors"
is a quantizer bug, not a model one. ``XNNPACKQuantizer.transform_for_annotation``
(``_convert_scalars_to_attrs``, executorch 1.5.1) lifts every Python scalar of an
aten.add/mul into a *float32* buffer whatever the node's dtype, so an int64 index such as
``torch.arange(n) + 0`` (transformers' mask and position code, which the spike exported)
becomes float and indexing fails; reported upstream as pytorch/executorch#22062, fixed by
#22065 (not in 1.5.1). None of our 24 (architecture, head) graphs, static or dynamic, has an
integer add/mul with a scalar (positions are sliced from a buffer, the mask is cast to
float first), so ours never hit it; the quantizer here still carries the upstream fix
(lifted scalars keep the node's dtype) rather than skipping the transform, which the
float scalars of add/mul need for their quantization parameters. A second quirk of 1.5.1:
its ``cat`` annotator ignores the filter function, so annotations the filter rejects are
removed after annotation.
"""

from __future__ import annotations

import re

import numpy as np
import torch

from pocketbert.formats.executorch import export as executorch_export
from pocketbert.contracts.spec import ExportSpec, TupleOutputs, example_args
from pocketbert.models.modeling import PreTrainedModel
from pocketbert.contracts.recipe import Method, Recipe


def lift_scalars_keeping_dtype(model: torch.fx.GraphModule) -> torch.fx.GraphModule:
    """The XNNPACK quantizer's scalar-to-buffer transform, with the buffer in the node's
    own dtype (int64 stays int64) instead of always float32."""
    from torchao.quantization.pt2e.utils import get_new_attr_name_with_prefix

    targets = (torch.ops.aten.add.Tensor, torch.ops.aten.mul.Tensor)
    for node in model.graph.nodes:
        if node.op != "call_function" or node.target not in targets:
            continue
        args = []
        for arg in node.args:
            if isinstance(arg, torch.fx.Node):
                args.append(arg)
                continue
            name = get_new_attr_name_with_prefix("_tensor_constant_")(model)
            value = torch.tensor(arg, dtype=node.meta["val"].dtype)
            model.register_buffer(name, value)
            with model.graph.inserting_before(node):
                attr = model.graph.create_node("get_attr", name, (), {})
                attr.meta["val"] = node.meta["val"].fake_mode.from_tensor(value, static_shapes=True)
            args.append(attr)
        node.args = tuple(args)
    model.recompile()
    return model


def quantizer_for(recipe: Recipe, graph: torch.fx.GraphModule, input_names, exclude: list[str], model=None):
    """An XNNPACKQuantizer configured by the recipe, with our scalar transform and a filter
    keeping in float what ``kept_float`` names, the modules ``exclude`` matches and (recipes with
    float_outliers) the FFN outputs of ``model``, the module the graph was exported from; those
    node names by reason, and the nodes a static recipe quantizes at run time (for the manifest)."""
    xnnpack = executorch_export.require("executorch.backends.xnnpack.quantizer.xnnpack_quantizer")

    from torchao.quantization.pt2e.quantizer.quantizer import Q_ANNOTATION_KEY

    static = recipe.method is Method.STATIC  # dynamic int8 quantizes no add: nothing to keep
    kept = kept_float(graph, input_names, recipe.float_softmax, recipe.float_outliers and static)
    names = {name for group in kept.values() for name in group}
    at_run_time = set(normalized_inputs(graph)) if static and recipe.float_outliers else set()
    patterns = float_module_patterns(recipe, model, exclude)

    def quantize_node(node: torch.fx.Node) -> bool:
        if node.name in names:
            return False
        return not any(p.search(path) for path in module_paths(node) for p in patterns)

    def calibrated(node: torch.fx.Node) -> bool:
        return node.name not in at_run_time and quantize_node(node)

    def quantized_at_run_time(node: torch.fx.Node) -> bool:
        return node.name in at_run_time and quantize_node(node)

    def config_of(dynamic: bool):
        config = xnnpack.get_symmetric_quantization_config(is_per_channel=recipe.per_channel, is_dynamic=dynamic)
        return _finer_observers(config, minmax_activations=not dynamic and recipe.calibration == "minmax")

    run_time = config_of(dynamic=True)

    class Quantizer(xnnpack.XNNPACKQuantizer):
        def transform_for_annotation(self, model: torch.fx.GraphModule) -> torch.fx.GraphModule:
            return lift_scalars_keeping_dtype(model)

        def annotate(self, model: torch.fx.GraphModule) -> torch.fx.GraphModule:
            self._annotate_all_patterns(model, run_time, quantized_at_run_time)
            self._annotate_all_patterns(model, self.global_config, calibrated)
            # the cat annotator ignores the filter (executorch 1.5.1): drop what it set
            for node in model.graph.nodes:
                if node.op == "call_function" and not (calibrated(node) or quantized_at_run_time(node)):
                    node.meta.pop(Q_ANNOTATION_KEY, None)
            xnnpack.propagate_annotation(model)
            return model

    return Quantizer().set_global(config_of(dynamic=not static)), kept, sorted(at_run_time)


WEIGHT_EPS = float(np.finfo(np.float32).eps)  # the smallest per-channel weight step (torch's observers' default)


def _finer_observers(config, minmax_activations: bool):
    """XNNPACK's config with two observers changed. Its weight observer floors each channel's
    step at 2^-12, so a channel whose largest weight is under 0.031 keeps fewer than 8 bits:
    the MobileBERT form of all-MiniLM-L6-v2 (models/convert.py divides its FFN input weights
    by 64) kept recall@10 0.906 in dynamic int8 against 0.966 with the weights unscaled; the
    kernels take any float32 step. With ``minmax_activations`` static activations get min/max
    ranges instead of its histogram observer, whose error-minimising range clips the few
    outlier channels a trained BERT's activations carry, the ones it needs."""
    import dataclasses

    from torchao.quantization.pt2e import MinMaxObserver

    def with_observer(spec, observer=None, **changes):
        current = spec.observer_or_fake_quant_ctr
        keywords = {**getattr(getattr(current, "p", current), "keywords", {}), **changes}  # with_args wraps a partial
        kind = observer or getattr(current, "p", current).func
        return dataclasses.replace(spec, observer_or_fake_quant_ctr=kind.with_args(**keywords))

    changed = {"weight": with_observer(config.weight, eps=WEIGHT_EPS)}
    if minmax_activations:
        activations = with_observer(config.input_activation, MinMaxObserver)  # the same eps
        changed |= {"input_activation": activations, "output_activation": activations}
    return dataclasses.replace(config, **changed)


def outlier_modules(model: PreTrainedModel) -> list[str]:
    """The modules whose outputs carry a trained BERT's outlier channels: the FFN outputs
    (Linears, SqueezeBERT's 1x1 convolutions: XNNPACK quantizes both) and the sentence
    pooling (one 8-bit range for a 3-token and a 128-token sum of the same channels)."""
    from pocketbert.models.registry import get_architecture
    from pocketbert.models.sentence_embedding import SentencePooling

    pooling = [path for path, module in model.named_modules() if isinstance(module, SentencePooling)]
    return get_architecture(model.config.model_type).ffn_output_modules(model) + pooling


def float_module_patterns(recipe: Recipe, model: PreTrainedModel | None, exclude: list[str]) -> list[re.Pattern]:
    """Module-path patterns of what stays float: the user's ``exclude`` and, for recipes with
    float_outliers, ``model``'s outlier modules."""
    patterns = [re.compile(p) for p in exclude]
    if recipe.float_outliers and model is not None:
        patterns += [re.compile(f"^{re.escape(path)}$") for path in outlier_modules(model)]
    return patterns


def module_paths(node: torch.fx.Node) -> list[str]:
    """Module paths (``distilbert.transformer.layer.0.attention.q_lin`` ...) of a node, as
    in the model's state dict (the export wrapper's ``model.`` prefix removed)."""
    stack = node.meta.get("nn_module_stack") or {}
    return [path.removeprefix("model.") for path, _ in stack.values()]


_LAYOUT = (torch.ops.aten.permute.default, torch.ops.aten.transpose.int, torch.ops.aten.view.default,
           torch.ops.aten.reshape.default, torch.ops.aten.contiguous.default, torch.ops.aten.squeeze.dim,
           torch.ops.aten.unsqueeze.default)  # move values, change none
_NORMS = (torch.ops.aten.layer_norm.default, torch.ops.aten.native_layer_norm.default)
_MATRIX_PRODUCTS = (torch.ops.aten.linear.default, torch.ops.aten.conv1d.default, torch.ops.aten.conv2d.default)
_ATTENTION_PRODUCTS = (torch.ops.aten.matmul.default, torch.ops.aten.bmm.default)


def _readers(node: torch.fx.Node) -> set:
    """The targets of the nodes reading ``node``'s output once layout ops are looked through
    (SqueezeBERT's norms and convolutions sit behind permutes)."""
    found, pending = set(), list(node.users)
    while pending:
        user = pending.pop()
        if user.target in _LAYOUT:
            pending += list(user.users)
        else:
            found.add(user.target)
    return found


def _feeds_a_norm(node: torch.fx.Node) -> bool:
    return bool(_readers(node) & set(_NORMS))


def normalized_inputs(graph: torch.fx.GraphModule) -> list[str]:
    """The matrix products reading a LayerNorm's output, the attention heads' Q, K, V (read by
    the score and context products) and the FFN input (read by GELU): where a trained BERT's
    outlier channels reach an int8 input. One calibrated 8-bit range per tensor holds them
    badly; one per token row, at run time, keeps them (the dynamic recipe's scheme)."""
    wanted = set(_ATTENTION_PRODUCTS) | {torch.ops.aten.gelu.default}
    return [n.name for n in graph.graph.nodes
            if n.op == "call_function" and n.target in _MATRIX_PRODUCTS and _readers(n) and _readers(n) <= wanted]


def kept_float(graph: torch.fx.GraphModule, input_names, float_softmax: bool,
               float_outliers: bool = False) -> dict[str, list[str]]:
    """Nodes the quantizer must leave alone, by reason:

    - weight_only: computed from weights alone (MobileBERT's MLM head concatenates two
      weight matrices). Quantized, the static recipe put activation quantizers on weights
      and XNNPACK refused the matmul they feed; left float, export folds them into one weight.
    - mask (with ``float_softmax``): the additive mask (nodes that depend on
      attention_mask but not on input_ids) and the adds putting it on the attention scores.
    - residual (with ``float_outliers``): the residual adds into a LayerNorm, where the
      outlier channels peak (~220 against an RMS under 1 in all-MiniLM-L6-v2): one int8
      range for them rounds every other channel to a few codes.
    """
    placeholders = {n.name: n for n in graph.graph.nodes if n.op == "placeholder"}
    inputs = dict(zip(input_names, placeholders.values()))

    def downstream(start: torch.fx.Node) -> set[torch.fx.Node]:
        seen, stack = set(), [start]
        while stack:
            for user in stack.pop().users:
                if user not in seen:
                    seen.add(user)
                    stack.append(user)
        return seen

    reached = {name: downstream(node) for name, node in inputs.items()}
    computed = [n for n in graph.graph.nodes if n.op == "call_function"]
    kept = {"weight_only": [n.name for n in computed if not any(n in r for r in reached.values())], "mask": []}
    if float_softmax:
        mask = reached["attention_mask"] - reached["input_ids"]
        softmax = (torch.ops.aten.softmax.int, torch.ops.aten._softmax.default)
        mask |= {n for n in computed if n.target == torch.ops.aten.add.Tensor and any(u.target in softmax for u in n.users)}
        kept["mask"] = [n.name for n in computed if n in mask]
    if float_outliers:
        kept["residual"] = [n.name for n in computed if n.target == torch.ops.aten.add.Tensor and _feeds_a_norm(n)]
    return kept


def quantize_executorch(
    recipe: Recipe,
    model: PreTrainedModel,
    spec: ExportSpec,
    directory,
    calibration: list[dict[str, np.ndarray]] | None,
    exclude: list[str],
) -> dict:
    """Quantize ``model`` with the recipe and write model.pte into ``directory``. A bucketed
    spec is quantized bucket by bucket (calibration cut to each length) into one method
    each; equal int8 weights are stored once."""
    import dataclasses

    from pocketbert.contracts.buckets import bucket_signature

    model, fitted = _smoothed_and_fitted(recipe, model, spec, calibration, exclude)
    if not spec.buckets:
        quantized, converted, kept, at_run_time = _quantized_program(recipe, model, spec, calibration, exclude)
    else:
        quantized = {}
        for n in spec.buckets:
            cut = None if calibration is None else [{k: v[..., :n] for k, v in row.items()} for row in calibration]
            quantized[bucket_signature(n)], converted, kept, at_run_time = _quantized_program(
                recipe, model, dataclasses.replace(spec, sequence=n), cut, exclude)
    layers = quantized_layers(converted)
    if not layers["int8"]:  # an "int8" file as large as the float one is a wrong answer, not a result
        from pocketbert.errors import PocketbertError

        raise PocketbertError(f"{recipe.name} quantized none of this model's {layers['float']} Linear/conv layers "
                              f"(all excluded, or none XNNPACK's quantizer takes)")
    details = executorch_export.lower(quantized, directory / executorch_export.MODEL_FILE)
    details["quantized_layers"] = layers
    details["kept_float"] = kept
    if fitted is not None:
        details["smoothed_activations"], details["fitted_weights"] = fitted.smoothed, fitted.fitted
    if at_run_time and recipe.method is Method.STATIC:
        details["quantized_at_run_time"] = at_run_time
    return details


def _smoothed_and_fitted(recipe: Recipe, model: PreTrainedModel, spec: ExportSpec, calibration, exclude: list[str]):
    """(``model`` with the recipe's smoothing and error feedback applied to the layers XNNPACK
    quantizes at run time, what was changed), or (``model``, None) for a recipe with neither.
    A bucketed file's methods share these weights: they are fitted once, on full lengths."""
    from pocketbert.formats.smoothed_layers import smooth_and_fit

    alpha, error_feedback = recipe.params.smoothing_alpha, recipe.params.error_feedback
    if recipe.method is not Method.DYNAMIC or calibration is None or not (alpha or error_feedback):
        return model, None
    patterns = float_module_patterns(recipe, model, exclude)
    uses: dict[int, int] = {}
    for _, parameter in model.named_parameters(remove_duplicate=False):
        uses[id(parameter)] = uses.get(id(parameter), 0) + 1
    layers = [path for path, module in model.named_modules()
              if (isinstance(module, torch.nn.Linear) or (_pointwise(module) and module.groups == 1))  # a full [N, K]
              and uses[id(module.weight)] == 1  # a tied decoder's weight is the embedding table too
              and not any(p.search(scope) for scope in _scopes(path) for p in patterns)]
    examples = [{name: torch.from_numpy(np.asarray(row[name], dtype=np.int64)) for name in spec.input_names}
                for row in calibration]
    return smooth_and_fit(model, layers, examples, alpha, error_feedback)


def _scopes(path: str) -> list[str]:
    """A module's path and its ancestors' (``a``, ``a.b``, ``a.b.c``), as a node's module stack
    lists them for the exclusion patterns."""
    parts = path.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


def _quantized_program(recipe: Recipe, model: PreTrainedModel, spec: ExportSpec, calibration, exclude: list[str]):
    """(the PT2E-quantized ExportedProgram at the spec's shape, its converted graph, what was
    kept float, what a static recipe quantizes at run time)."""
    from pocketbert.errors import PocketbertError, first_line
    from pocketbert.quiet import quiet_libraries

    pt2e = executorch_export.require("torchao.quantization.pt2e.quantize_pt2e")
    vocab = model.config.vocab_size
    rows_at_run_time = recipe.method is Method.DYNAMIC or recipe.float_outliers  # XNNPACK's dynamic scheme, in part
    traced = pointwise_convolutions_as_2d(model) if rows_at_run_time else model
    program = executorch_export.export_program(TupleOutputs(traced).eval(), spec, vocab)
    graph = program.module()
    quantizer, kept, at_run_time = quantizer_for(recipe, graph, spec.input_names, exclude, model)
    examples = [example_args(spec, vocab)] if calibration is None or recipe.method is Method.DYNAMIC else [
        tuple(torch.from_numpy(np.asarray(row[name], dtype=np.int64)) for name in spec.input_names)
        for row in calibration
    ]
    try:
        with quiet_libraries(), torch.no_grad():
            prepared = pt2e.prepare_pt2e(graph, quantizer)
            for args in examples:  # calibration (static) or the weight observers (dynamic: one example)
                prepared(*args)
            converted = pt2e.convert_pt2e(prepared)
    except Exception as exc:
        raise PocketbertError(f"PT2E quantization failed: {type(exc).__name__}: {first_line(exc)}") from None
    return executorch_export.export_program(converted, spec, vocab), converted, kept, at_run_time


class _PointwiseAs2d(torch.nn.Module):
    """A kernel-1 Conv1d on [B, C, W] computed as the same Conv2d on [B, C, 1, W]: XNNPACK's
    quantizer quantizes 2-D convolutions dynamically but skips 1-D ones (executorch 1.5.1),
    so SqueezeBERT's dynamic int8 file came out all float, as large as the float one."""

    def __init__(self, conv: torch.nn.Conv1d):
        super().__init__()
        self.conv = torch.nn.Conv2d(conv.in_channels, conv.out_channels, kernel_size=1, groups=conv.groups,
                                    bias=conv.bias is not None)
        with torch.no_grad():
            self.conv.weight.copy_(conv.weight.unsqueeze(2))  # [O, I / groups, 1] -> [O, I / groups, 1, 1]
            if conv.bias is not None:
                self.conv.bias.copy_(conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x.unsqueeze(2)).squeeze(2)  # [B, C, W] -> [B, C, 1, W] -> [B, O, 1, W] -> [B, O, W]


def _pointwise(module: torch.nn.Module) -> bool:
    """A kernel-1, stride-1 Conv1d: a matrix product over channels (SqueezeBERT's layers)."""
    return (isinstance(module, torch.nn.Conv1d) and module.kernel_size == (1,) and module.stride == (1,)
            and module.padding == (0,) and module.dilation == (1,))


def pointwise_convolutions_as_2d(model: PreTrainedModel) -> PreTrainedModel:
    """A copy of ``model`` with every kernel-1, stride-1 Conv1d as ``_PointwiseAs2d``, at the
    same module path (the outlier and --exclude patterns still match it)."""
    import copy

    if not any(_pointwise(m) for m in model.modules()):
        return model
    changed = copy.deepcopy(model)
    for parent in list(changed.modules()):
        for name, child in list(parent.named_children()):
            if _pointwise(child):
                setattr(parent, name, _PointwiseAs2d(child))
    return changed


def quantized_layers(graph: torch.fx.GraphModule) -> dict[str, int]:
    """Linear/conv nodes of the converted graph by whether their weight comes dequantized
    from int8 (what the recipe quantized) or stays float."""
    layers = (torch.ops.aten.linear.default, torch.ops.aten.conv1d.default, torch.ops.aten.conv2d.default)
    counts = {"int8": 0, "float": 0}
    for node in graph.graph.nodes:
        if node.op == "call_function" and node.target in layers:
            weight = node.args[1]
            counts["int8" if "dequantize" in str(getattr(weight, "target", "")) else "float"] += 1
    return counts
