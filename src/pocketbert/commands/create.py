"""``pocketbert create``, ``models`` and ``info``: checkpoints and what exists."""

from __future__ import annotations

import argparse
import json

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
    from pocketbert import api

    print(api.create(args.arch, args.out_dir, args.task, args.layers, args.seed, args.vocab, args.force))
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
    from pocketbert import api

    if args.names:
        print("\n".join(architecture_names()))
        return 0
    result = api.architectures()
    print(json.dumps(result.records(), indent=2) if args.json else result)
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
    from pocketbert import api

    result = api.info(args.model, task=args.task)
    print(json.dumps(result.as_dict(), indent=2) if args.json else result)
    return 0
