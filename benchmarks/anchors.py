"""Our files against the anchors' files of the same weights: a comparison anyone can rerun.

A latency of ours means little alone; what a user would otherwise ship is the yardstick.
The anchors are HF Optimum's ONNX export and its dynamic int8 (the preset for the host's
ISA: ``--avx512_vnni``, ``--avx512``, ``--avx2`` or ``--arm64``), and Google's
path: litert-torch converting transformers' own model, then ai-edge-quantizer's dynamic
int8 recipe. Everything is built from ONE checkpoint (``pocketbert create --seed 0``), so
a ratio compares exporters, not weights; each pair is first run on one padded input to
show both files compute the same logits, then timed by ``pocketbert bench --compare`` in
interleaved rounds (each file in a fresh process), since on a shared machine the ratio of
one round's pair is steadier than either latency.

Optimum pins its own transformers, so it runs from its own venv (``scripts/anchors.sh``
makes it); Google's steps run in the project's .venv as ``scripts/anchor_google.py``, a
script outside the package because its anchor is transformers' own model. Every file is
rebuilt on each run, since a change to pocketbert
changes our files (--reuse keeps an earlier run's, to redo only the measurements); every
tool's log sits beside its output.

A step an anchor's tool refuses is reported in the table with the tool's own last line,
and the run still succeeds; a failure of ours, of the logits check or of bench does not.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median


def optimum_int8_config() -> str:
    """The `optimum-cli onnxruntime quantize` preset a user of this host would pick, the one
    named for its int8 instructions: an anchor tuned for another CPU would flatter us."""
    import platform

    from pocketbert.benchmarks.report import cpu_isa

    if platform.machine().lower() in ("aarch64", "arm64"):
        return "arm64"
    isa = cpu_isa()
    return "avx512_vnni" if "AVX-512 VNNI" in isa else "avx512" if "AVX-512" in isa else "avx2"


# (key, our file, the anchor's file, what the anchor is)
PAIRS = (
    ("onnx fp32", "ours-onnx", "optimum-onnx", "optimum-cli export onnx"),
    ("onnx int8", "ours-onnx-int8", "optimum-onnx-int8",
     f"optimum-cli onnxruntime quantize --{optimum_int8_config()} (dynamic, per-tensor)"),
    ("tflite fp32", "ours-tflite", "litert-torch", "litert-torch on transformers' AutoModelForSequenceClassification"),
    ("tflite int8", "ours-tflite-int8", "litert-torch-int8", "ai-edge-quantizer dynamic_wi8_afp32 on that .tflite"),
)
SEQ_LEN = 128  # scripts/anchor_google.py converts at the same length
# litert-torch and ai-edge-quantizer on transformers' model: a script outside the package,
# which never imports transformers (the tests' oracle)
GOOGLE_STEPS = Path(__file__).resolve().parents[1] / "scripts" / "anchor_google.py"
# two fp32 files compute "the same function" when their logits differ by at most this much
# of the largest logit, or 1e-4 (pocketbert's export tolerance), whichever is larger
FP32_SAME = 1e-3


class StepFailed(Exception):
    """A tool refused a step; the message is its own one-line reason."""


@dataclass
class Files:
    """Per architecture: the file each key names, or why it could not be made."""
    paths: dict[str, Path] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


def one_line_reason(log: str) -> str:
    """The line a tool's failure is best described by: its last exception or error line,
    else its last line."""
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    for line in reversed(lines):
        if "Error" in line or "Exception" in line or line.lower().startswith(("error", "fatal")):
            return line[:300]
    return lines[-1][:300] if lines else "no output"


def run_tool(command: list, log: Path) -> None:
    """Run one tool, its output to ``log``; StepFailed with its reason when it fails."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as out:
        out.write("$ " + " ".join(map(str, command)) + "\n")
        out.flush()
        done = subprocess.run([str(c) for c in command], stdout=out, stderr=subprocess.STDOUT, check=False)
    if done.returncode != 0:
        raise StepFailed(f"exit {done.returncode}: {one_line_reason(log.read_text(errors='replace'))}")


def step(files: Files, key: str, target: Path, make, needs: tuple[str, ...] = ()) -> None:
    """Make ``target`` once (reused when it exists), recording its time or failure under ``key``.

    ``make(tmp)`` writes into a temporary directory renamed into place only on success, so a
    failed or interrupted step leaves nothing that a later run would take for done."""
    missing = [k for k in needs if k not in files.paths]
    if missing:
        files.failed[key] = f"needs {missing[0]}, which failed"
        return
    if target.exists():
        files.paths[key] = target
        return
    tmp = target.parent.with_name(target.parent.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    print(f"-- {key}: {target}", flush=True)
    start = time.monotonic()
    try:
        make(tmp)
    except StepFailed as failure:
        files.failed[key] = str(failure)
        print(f"   FAILED: {failure}", flush=True)
        return
    files.seconds[key] = time.monotonic() - start
    if not (tmp / target.name).exists():
        files.failed[key] = f"the tool succeeded but wrote no {target.name}"
        return
    shutil.rmtree(target.parent, ignore_errors=True)
    tmp.rename(target.parent)
    files.paths[key] = target
    print(f"   done in {files.seconds[key]:.0f} s", flush=True)


def build(arch: str, work: Path, layers: int | None, optimum: Path) -> Files:
    """The checkpoint, our four files and the anchors' four, each step logged beside its output."""
    from pocketbert.models.tasks import TEXT_CLASSIFICATION

    pb = [str(Path(sys.executable).parent / "pocketbert")]
    google = [sys.executable, str(GOOGLE_STEPS)]
    files = Files()
    ckpt = work / "checkpoint" / "config.json"
    layer_args = ["--layers", str(layers)] if layers else []
    step(files, "checkpoint", ckpt, lambda tmp: run_tool(
        [*pb, "create", arch, tmp, "--task", TEXT_CLASSIFICATION.name, "--seed", "0", "--force", *layer_args],
        tmp.with_suffix(".log")))
    c = work / "checkpoint"
    ours = {
        "ours-onnx": ("model.onnx", ["export", c, "--format", "onnx"], "checkpoint"),
        "ours-onnx-int8": ("model.onnx", ["quantize", work / "ours-onnx", "--recipe", "onnx-dynamic-int8"], "ours-onnx"),
        "ours-tflite": ("model.tflite", ["export", c, "--format", "tflite", "--seq-len", str(SEQ_LEN)], "checkpoint"),
        "ours-tflite-int8": ("model.tflite", ["quantize", work / "ours-tflite", "--recipe", "tflite-dynamic-int8"],
                             "ours-tflite"),
    }
    for key, (name, args, need) in ours.items():
        step(files, key, work / key / name,
             lambda tmp, args=args: run_tool([*pb, *args, "-o", tmp, "--force"], tmp.with_suffix(".log")), (need,))
    cli = optimum / "bin" / "optimum-cli"
    step(files, "optimum-onnx", work / "optimum-onnx" / "model.onnx", lambda tmp: run_tool(
        [cli, "export", "onnx", "--model", c, "--task", TEXT_CLASSIFICATION.name, tmp], tmp.with_suffix(".log")),
        ("checkpoint",))
    step(files, "optimum-onnx-int8", work / "optimum-onnx-int8" / "model_quantized.onnx", lambda tmp: run_tool(
        [cli, "onnxruntime", "quantize", "--onnx_model", work / "optimum-onnx", f"--{optimum_int8_config()}", "-o", tmp],
        tmp.with_suffix(".log")), ("optimum-onnx",))
    step(files, "litert-torch", work / "litert-torch" / "model.tflite", lambda tmp: run_tool(
        [*google, "convert", c, tmp / "model.tflite"], tmp.with_suffix(".log")), ("checkpoint",))
    step(files, "litert-torch-int8", work / "litert-torch-int8" / "model.tflite", lambda tmp: run_tool(
        [*google, "quantize", work / "litert-torch" / "model.tflite", tmp / "model.tflite"],
        tmp.with_suffix(".log")), ("litert-torch",))
    return files


def logits_check(checkpoint: Path, ours: Path, anchor: Path) -> dict:
    """Max abs logits difference of the two files on one input (real tokens then padding, so
    the mask path counts), and of each against the PyTorch model of the checkpoint; with the
    largest PyTorch logit, since a random head's logits are small (MobileBERT's ~1e-2)."""
    import numpy as np

    from pocketbert.formats import open_runner
    from pocketbert.models.configs import load_config
    from pocketbert.contracts.foreign import CANONICAL, input_roles
    from pocketbert.contracts.spec import full_length_inputs

    ids = full_length_inputs(CANONICAL, load_config(checkpoint).vocab_size, (1, SEQ_LEN), seed=17)
    for name in CANONICAL:
        ids[name][..., 100:] = 0  # 100 tokens, 28 of padding

    def logits(path: Path):
        runner = open_runner(path, threads=1, foreign=True)
        outputs = runner({name: ids[role] for name, role in input_roles(runner.input_names, str(path)).items()})
        return np.asarray(outputs.get("logits", next(iter(outputs.values()))), dtype=np.float64)

    mine, theirs, torch_ = logits(ours), logits(anchor), logits(checkpoint)
    return {"ours_vs_anchor": float(np.abs(mine - theirs).max()), "ours_vs_torch": float(np.abs(mine - torch_).max()),
            "anchor_vs_torch": float(np.abs(theirs - torch_).max()),
            "logits_scale": float(np.abs(torch_).max())}  # random heads give small logits: what a diff is against


def bench(ours: Path, anchor: Path, out: Path, args) -> dict:
    """``pocketbert bench --compare`` of the pair; the JSON report it writes."""
    pb = Path(sys.executable).parent / "pocketbert"
    command = [pb, "bench", "--compare", ours, anchor, "--threads", str(args.threads), "--rounds", str(args.rounds),
               "--seq-len", str(SEQ_LEN), "--num-runs", str(args.num_runs), "--min-secs", str(args.min_secs),
               "--json", out.with_suffix(".json"), "--markdown", out.with_suffix(".md")]
    run_tool(command, out.with_suffix(".log"))
    return json.loads(out.with_suffix(".json").read_text())


def ratio_row(report: dict, ours: str, anchor: str) -> dict:
    """Ours/anchor from a bench --compare report: the per-round ratio (our round median over
    the anchor's, same round), its median, min and max; each side's median; noise reasons.

    Computed here rather than read from bench's ``ratio``, which divides by the FIRST input
    given (ours), so that the table's ratio is unambiguously ours/anchor (< 1: ours faster)."""
    rows = {row["input"]: row for comparison in report["comparisons"] for row in comparison["rows"]}
    mine, theirs = rows[ours], rows[anchor]
    ratios = [o / a for o, a in zip(mine["round_medians_ms"], theirs["round_medians_ms"]) if o and a]
    noise = list(dict.fromkeys([*mine.get("noise", []), *theirs.get("noise", [])]))
    return {"ours_ms": mine["median_ms"], "anchor_ms": theirs["median_ms"], "rounds": len(ratios),
            "ratio": median(ratios) if ratios else None, "ratio_min": min(ratios) if ratios else None,
            "ratio_max": max(ratios) if ratios else None, "noise": noise}


def _num(value, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _diff(value) -> str:
    return "-" if value is None else f"{value:.1e}"


def noise_summary(reasons: list[str]) -> list[str]:
    """bench's noise reasons of both files and every round, one per kind, with the worst
    figure ("other processes used 1.4 cores meanwhile" x3 -> "... up to 1.4 cores")."""
    worst: dict[tuple, str] = {}
    rest = []
    for reason in reasons:
        match = re.fullmatch(r"(.*?)(\d+(?:\.\d+)?)( cores| ?%)(.*)", reason)
        if match is None:
            rest.append(reason)
            continue
        key = (match[1], match[3], match[4])
        if key not in worst or float(match[2]) > float(worst[key]):
            worst[key] = match[2]
    shown = [f"{before}up to {value}{unit}{after}" for (before, unit, after), value in worst.items()]
    return shown + list(dict.fromkeys(rest))


def markdown(results: list[dict], context: dict) -> str:
    """The combined table: one row per architecture and pair; a pair that could not run says why."""
    lines = [
        "# Anchors: our files against the anchors' files of the same weights",
        "",
        (f"Ratio = **ours / anchor** latency (< 1: ours is faster), the median of the per-round ratios of "
         f"{context['rounds']} interleaved rounds (min-max beside it); {context['threads']} thread(s), "
         f"batch 1, seq {SEQ_LEN} (every token real), each file in a fresh process per round, "
         f">= {context['num_runs']} runs and >= {context['min_secs']} s each. Logits: max abs difference on one "
         "padded input (100 tokens + 28 padding), ours vs anchor and each vs the PyTorch model, and the "
         "largest PyTorch logit they are relative to (random weights give small logits)."),
        "",
        ("| architecture | pair | anchor | ours ms | anchor ms | ours/anchor | min-max | logits: ours-anchor "
         "| ours-torch | anchor-torch | largest logit | flag |"),
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        if r.get("skipped"):
            lines.append(f"| {r['arch']} | {r['pair']} | {r['anchor']} | - | - | not measured | - | - | - | - | - | "
                         f"{r['skipped'].replace('|', '/')} |")
            continue
        d = r.get("logits", {})
        flag = ["noisy: " + "; ".join(noise_summary(r["noise"]))] if r.get("noise") else []
        if r["pair"].endswith("fp32") and d and d["ours_vs_anchor"] > max(1e-4, FP32_SAME * d.get("logits_scale", 1.0)):
            flag.append("logits differ: not the same function")
        lines.append(
            f"| {r['arch']} | {r['pair']} | {r['anchor']} | {_num(r.get('ours_ms'), 1)} | {_num(r.get('anchor_ms'), 1)} "
            f"| **{_num(r.get('ratio'))}** | {_num(r.get('ratio_min'))}-{_num(r.get('ratio_max'))} "
            f"| {_diff(d.get('ours_vs_anchor'))} | {_diff(d.get('ours_vs_torch'))} | {_diff(d.get('anchor_vs_torch'))} "
            f"| {_diff(d.get('logits_scale'))} | {' / '.join(flag) or 'ok'} |")
    lines += ["", "Host: " + context.get("host", "?"), "", "Tools: " + context.get("tools", "?"), "",
              f"Command: `{context['command']}`; total {context['seconds'] / 60:.1f} min."]
    built = context.get("build_seconds") or {}
    if any(built.values()):
        lines += ["", "Build times this run (s; files kept from an earlier run are not rebuilt): " + "; ".join(
            f"{arch}: " + ", ".join(f"{key} {s}" for key, s in steps.items()) for arch, steps in built.items() if steps)]
    return "\n".join(lines + [""])


def tool_versions(optimum: Path) -> str:
    from importlib import metadata

    def ours(name):
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "absent"

    names = ("optimum", "optimum-onnx", "transformers", "torch", "onnxruntime")
    code = f"import importlib.metadata as m\nfor n in {names!r}:\n    print(n + ' ' + m.version(n))"
    try:
        theirs = subprocess.run([optimum / "bin" / "python", "-c", code], capture_output=True, text=True,
                                check=True).stdout.split("\n")
    except (OSError, subprocess.CalledProcessError):
        theirs = ["(optimum venv unreadable)"]
    here = ", ".join(f"{n} {ours(n)}" for n in ("transformers", "torch", "litert-torch", "ai-edge-quantizer",
                                                  "ai-edge-litert", "onnxruntime"))
    return f"Optimum venv: {', '.join(t for t in theirs if t)}; project venv: {here}"


def host_line() -> str:
    try:
        from pocketbert.benchmarks.report import host_info

        host = host_info()
        return f"{host['cpu']}, {host['cores']} cores ({', '.join(host['isa'])})"
    except Exception as error:  # noqa: BLE001 - the table is still worth writing
        return f"unknown ({error})"


def run(args) -> int:
    start = time.monotonic()
    out = Path(args.out_dir)
    archs = args.archs or (["distilbert"] if args.quick else _architectures())
    layers = args.layers or (2 if args.quick else None)
    results, problems, build_seconds = [], [], {}
    for arch in archs:
        work = out / (f"{arch}-{layers}layers" if layers else arch)
        if not args.reuse:
            shutil.rmtree(work, ignore_errors=True)
        files = build(arch, work, layers, Path(args.optimum_venv))
        for key in ("checkpoint", "ours-onnx", "ours-onnx-int8", "ours-tflite", "ours-tflite-int8"):
            if key in files.failed:
                problems.append(f"{arch} {key}: {files.failed[key]}")
        for pair, mine, theirs, what in PAIRS:
            row = {"arch": arch, "pair": pair, "anchor": what, "ours": str(files.paths.get(mine)),
                   "anchor_file": str(files.paths.get(theirs))}
            results.append(row)
            if mine in files.failed or theirs in files.failed:
                row["skipped"] = (f"ours: {files.failed[mine]}" if mine in files.failed
                                  else f"{theirs}: {files.failed[theirs]}")
                continue
            print(f"== {arch} {pair}: logits, then {args.rounds} interleaved rounds", flush=True)
            try:
                row["logits"] = logits_check(work / "checkpoint", files.paths[mine], files.paths[theirs])
                d = row["logits"]
                print(f"   max abs logits diff ours-anchor {d['ours_vs_anchor']:.2e} (ours-torch {d['ours_vs_torch']:.2e}, "
                      f"anchor-torch {d['anchor_vs_torch']:.2e}; logits up to {d['logits_scale']:.2e})", flush=True)
                t = time.monotonic()
                report = bench(files.paths[mine], files.paths[theirs], work / f"bench-{pair.replace(' ', '-')}", args)
                row.update(ratio_row(report, str(files.paths[mine]), str(files.paths[theirs])))
                row["bench_seconds"] = time.monotonic() - t
                print(f"   ours/anchor {_num(row['ratio'])} ({_num(row['ratio_min'])}-{_num(row['ratio_max'])}), "
                      f"{row['ours_ms']:.1f} vs {row['anchor_ms']:.1f} ms{' NOISY' if row['noise'] else ''}", flush=True)
            except Exception as error:  # noqa: BLE001 - bench or a runner failing on files that were made: not the anchor's refusal
                row["skipped"] = f"measurement failed: {type(error).__name__}: {error}"
                problems.append(f"{arch} {pair}: {row['skipped']}")
        build_seconds[arch] = {key: round(seconds) for key, seconds in files.seconds.items()}
    context = {"rounds": args.rounds, "threads": args.threads, "num_runs": args.num_runs, "min_secs": args.min_secs,
               "command": os.environ.get("ANCHORS_COMMAND", "python -m pocketbert.benchmarks.anchors " + " ".join(sys.argv[1:])),
               "seconds": time.monotonic() - start, "build_seconds": build_seconds, "host": host_line(),
               "tools": tool_versions(Path(args.optimum_venv))}
    table = markdown(results, context)
    (out / "anchors.md").write_text(table)
    (out / "anchors.json").write_text(json.dumps({"context": context, "results": results}, indent=2, default=str))
    print(table)
    print(f"wrote {out / 'anchors.md'} and {out / 'anchors.json'}")
    for problem in problems:
        print(f"FAILED (ours or the measurement, not an anchor): {problem}", file=sys.stderr)
    return 1 if problems else 0


def _architectures() -> list[str]:
    from pocketbert.models.registry import ARCHITECTURES

    return list(ARCHITECTURES)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m pocketbert.benchmarks.anchors", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="build every file, check logits, bench each pair, write OUT_DIR/anchors.md")
    r.add_argument("out_dir", nargs="?", default="out/anchors")
    r.add_argument("--optimum-venv", required=True, help="the venv with optimum-cli (scripts/anchors.sh makes it)")
    r.add_argument("--quick", action="store_true", help="smoke test: distilbert with 2 layers, 2 rounds, few runs")
    r.add_argument("--archs", nargs="+", help="default: every architecture (pocketbert models --names)")
    r.add_argument("--layers", type=int, help="default: the paper's (2 with --quick)")
    r.add_argument("--rounds", type=int)
    r.add_argument("--threads", type=int, default=1)
    r.add_argument("--num-runs", type=int)
    r.add_argument("--min-secs", type=float)
    r.add_argument("--reuse", action="store_true",
                   help="keep the files an earlier run built (stale if pocketbert changed since) and measure again")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if not GOOGLE_STEPS.is_file():
        print(f"anchors: {GOOGLE_STEPS} is missing (run from a checkout of the repository)", file=sys.stderr)
        return 2
    quick = args.quick
    args.rounds = args.rounds or (2 if quick else 3)
    args.num_runs = args.num_runs or (5 if quick else 20)
    args.min_secs = args.min_secs if args.min_secs is not None else (0.3 if quick else 2.0)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
