"""The `rnnkit` command: the only place that reads argv. Each subcommand lives in its own function."""

from __future__ import annotations

import argparse
import sys


def _demo(args: argparse.Namespace) -> int:
    from rnnkit.reference.char_model import DemoConfig, run_demo

    run_demo(DemoConfig(steps=args.steps, seed=args.seed))
    return 0


def _explain(args: argparse.Namespace) -> int:
    from rnnkit.reference.explain import explain

    print(explain(args.weights, args.cell, args.nonlinearity, args.set or [], args.softmax, args.precision,
                  args.seed))
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

    explain = sub.add_parser(
        "explain",
        help="print a step-by-step trace of a small RNN/LSTM/GRU forward pass, with the arithmetic shown",
        description="Trace a small recurrent forward pass step by step: pre-activations, every gate, h_t, "
        "c_t and y_t = W_hy h_t + b_y, with the arithmetic written out. With no arguments: the classic "
        "tutorial example (3 steps, 2 inputs, 3 hidden, 2 outputs, h_0 = 0, no biases). The weights file "
        "format is documented in rnnkit/reference/explain.py.",
    )
    explain.add_argument("--cell", choices=["rnn", "lstm", "gru"], default=None,
                         help="cell kind (default: rnn)")
    explain.add_argument("--nonlinearity", choices=["tanh", "relu"], default=None,
                         help="rnn nonlinearity (default: tanh)")
    explain.add_argument("--weights", metavar="FILE", default=None,
                         help="JSON object with x (T, I), the cell's weights (per gate, e.g. W_xh W_hh b_h, "
                         "or torch-stacked weight_ih weight_hh bias_ih bias_hh), optional h0, c0, W_hy, b_y")
    explain.add_argument("--set", action="append", metavar="KEY=JSON",
                         help="set or override one key of the weights, e.g. --set 'x=[[1, 2]]' (repeatable)")
    explain.add_argument("--softmax", action="store_true", help="also show p_t = softmax(y_t)")
    explain.add_argument("--precision", type=int, default=4, metavar="N", help="decimals shown (default: 4)")
    explain.add_argument("--seed", type=int, default=0,
                         help="seed of the made-up LSTM/GRU weights used without --weights (default: 0)")
    explain.set_defaults(func=_explain)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as e:
        print(f"rnnkit {args.command}: error: {e}", file=sys.stderr)
        return 2
