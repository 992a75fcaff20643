"""The `rnnkit` command: the only place that reads argv. Each subcommand lives in its own function."""

from __future__ import annotations

import argparse
import sys


def _demo(args: argparse.Namespace) -> int:
    from rnnkit.reference.char_model import DemoConfig, run_demo

    run_demo(DemoConfig(steps=args.steps, seed=args.seed))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rnnkit", description="Recurrent neural networks, from the equations to trained models."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser(
        "demo",
        help="train a small character-level LSTM with the NumPy reference engine on Python's bundled docs",
        description="Train a character-level LSTM written in NumPy (hand-written BPTT, Adam) on the text of "
        "pydoc_data.topics, which ships with Python, printing the loss as it falls and a sample.",
    )
    demo.add_argument("--steps", type=int, default=600, help="training steps (default: 600, about a minute)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    demo.set_defaults(func=_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as e:
        print(f"rnnkit {args.command}: error: {e}", file=sys.stderr)
        return 2
