"""``pocketbert create``, ``models`` and ``info``: checkpoints and what exists."""

from __future__ import annotations

import argparse
import json
import time

from pocketbert.commands.common import architecture_names, at_least, input_path, output_path, task_names



# ---- pocketbert create ----------------------------------------------------------------------
def add_create(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "create",
        help="write a randomly initialised paper-size checkpoint directory",
        description="Write config.json + model.safetensors of the paper-size architecture with "
        "random weights (deterministic per --seed). The default model of benchmarks and demos, "
        "since nothing can be downloaded here.",
    )
    p.add_argument("arch", choices=architecture_names(), metavar="ARCH", help="one of: %(choices)s")
    p.add_argument("out_dir", metavar="OUT_DIR", type=output_path)
    p.add_argument("--task", choices=task_names(), metavar="TASK", help="head to add (default: fill-mask)")
    p.add_argument("--layers", type=at_least(1), help="number of layers (default: the paper's)")
    p.add_argument("--seed", type=at_least(0), default=0)
    p.add_argument("--vocab", metavar="VOCAB_TXT", help="use this vocab.txt as is (default: the project's trained vocabulary)")
    p.add_argument("--force", action="store_true", help="replace OUT_DIR if it exists")
    p.set_defaults(run=run_create)


def run_create(args: argparse.Namespace) -> int:
    from pocketbert.models import create_checkpoint

    start = time.perf_counter()
    model = create_checkpoint(
        args.arch, args.out_dir, args.task, args.layers, args.seed, args.force, vocab_file=args.vocab
    )
    print(
        f"wrote {args.out_dir}: {type(model).__name__}, {model.config.num_hidden_layers} layers, "
        f"{model.num_parameters() / 1e6:.2f}M parameters, seed {args.seed} "
        f"({time.perf_counter() - start:.1f} s)"
    )
    return 0


# ---- pocketbert models ----------------------------------------------------------------------
def add_models(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "models",
        help="list architectures, their tasks and parameter counts against the papers",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--names", action="store_true", help="print only the architecture names, one per line")
    p.set_defaults(run=run_models)


def run_models(args: argparse.Namespace) -> int:
    from pocketbert.models.summary import architecture_summaries

    if args.names:
        print("\n".join(architecture_names()))
        return 0
    rows = architecture_summaries()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'architecture':<12} {'params (M)':>10} {'paper (M)':>12}  {'ok':<3} {'paper':<30} tasks")
    for r in rows:
        low, high = r["paper_params_millions"]
        print(
            f"{r['architecture']:<12} {r['params_millions']:>10.2f} {f'{low}-{high}':>12}  "
            f"{'yes' if r['matches_paper'] else 'NO':<3} {r['paper']:<30} {', '.join(r['tasks'])}"
        )
    return 0


# ---- pocketbert info -------------------------------------------------------------------------
def add_info(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "info",
        help="load a checkpoint (directory or hub id) and describe it",
        description="Load MODEL strictly (every weight checked against the architecture) and print "
        "its class, inputs, outputs and size. Exit code 2 if it does not load.",
    )
    p.add_argument("model", metavar="MODEL", type=input_path, help="checkpoint directory or Hugging Face hub id")
    p.add_argument("--task", choices=task_names(), metavar="TASK", help="head to load (default: from config.json)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=run_info)


def run_info(args: argparse.Namespace) -> int:
    from pocketbert.models import load_model
    from pocketbert.models.tokenizer import load_tokenizer

    model = load_model(args.model, task=args.task)
    tokenizer = load_tokenizer(model.checkpoint_dir)  # run and export refuse what it refuses: so does info
    info = {
        "class": type(model).__name__,
        "model_type": model.config.model_type,
        "task": model.task,
        "layers": model.config.num_hidden_layers,
        "parameters": model.num_parameters(),
        "inputs": list(model.input_names),
        "outputs": list(model.output_names),
        "vocabulary": len(tokenizer),
        "checkpoint": str(model.checkpoint_dir),
    }
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        for key, value in info.items():
            print(f"{key:<11} {', '.join(value) if isinstance(value, list) else value}")
    return 0
