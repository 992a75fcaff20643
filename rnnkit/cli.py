"""The `rnnkit` command: the only place that reads argv. Each subcommand lives in its own function."""

from __future__ import annotations

import argparse
import logging
import sys
import warnings


def _demo(args: argparse.Namespace) -> int:
    if args.numpy:
        import dataclasses

        from rnnkit.reference.char_model import DemoConfig, run_demo

        if args.output_dir is not None:
            raise ValueError("--output-dir belongs to the rnnkit.nn demo; the --numpy run writes no files")
        sizes = {"steps": args.steps, "hidden_size": args.hidden_size, "batch_size": args.batch_size,
                 "seq_len": args.bptt}
        run_demo(dataclasses.replace(DemoConfig(seed=args.seed), **{k: v for k, v in sizes.items() if v}))
        return 0
    from rnnkit.demo import demo_config, run_demo

    config = demo_config(args.steps, args.seed, args.hidden_size, args.batch_size, args.bptt, args.output_dir)
    run_demo(config, prompt=args.prompt, sample_length=args.sample_length)
    return 0


def _explain(args: argparse.Namespace) -> int:
    from rnnkit.reference.explain import explain

    print(explain(args.weights, args.cell, args.nonlinearity, args.set or [], args.softmax, args.precision,
                  args.seed))
    return 0


# ---- train / evaluate (training engine) ------------------------------------------------------------

# Shortcut flags for the most used config keys; every key can also be set with --set section.key=value.
_TRAIN_FLAGS = [
    ("--max-steps", "trainer.max_steps", int, "stop after this many optimiser steps"),
    ("--max-epochs", "trainer.max_epochs", int, "passes over the training text"),
    ("--devices", "trainer.devices", str, "processes/devices per node; > 1 trains data-parallel (DDP)"),
    ("--accelerator", "trainer.accelerator", str, "cpu, gpu, mps or auto"),
    ("--num-nodes", "trainer.num_nodes", int, "machines for multi-node DDP"),
    ("--precision", "trainer.precision", str, "32-true, bf16-mixed, 16-mixed, 64-true"),
    ("--seed", "trainer.seed", int, "random seed (same seed, same run)"),
    ("--output-dir", "trainer.output_dir", str, "parent folder of run directories"),
    ("--run-name", "trainer.run_name", str, "name of the run directory (default: task-timestamp)"),
    ("--checkpoint-every", "trainer.checkpoint_every_n_steps", int, "resume checkpoint every N steps"),
    ("--batch-size", "data.batch_size", int, "rows of the token stream per process (B)"),
    ("--bptt", "data.bptt", int, "time steps per batch: the truncation length of BPTT (T)"),
    ("--cell", "model.cell", str, "rnn, lstm or gru"),
    ("--hidden-size", "model.hidden_size", int, "width of each recurrent layer (H)"),
    ("--lr", "optim.lr", float, "learning rate"),
]


def _train(args: argparse.Namespace) -> int:
    from rnnkit.train.commands import train_command

    overrides = [f"{key}={getattr(args, flag[2:].replace('-', '_'))}" for flag, key, _, _ in _TRAIN_FLAGS
                 if getattr(args, flag[2:].replace("-", "_")) is not None]
    if args.no_progress_bar:
        overrides.append("trainer.progress_bar=false")
    return train_command(args.config, args.data, overrides + (args.set or []), args.resume,
                         sys.argv if args.argv is None else args.argv)


def _evaluate(args: argparse.Namespace) -> int:
    from rnnkit.train.commands import evaluate_command

    return evaluate_command(args.checkpoint, args.data, args.split, args.batch_size, args.bptt,
                            args.accelerator, args.json)


def _config_keys_help() -> str:
    from rnnkit.train.config import field_help
    from rnnkit.train.language_modeling import LanguageModelRunConfig

    keys = "\n  ".join(field_help(LanguageModelRunConfig))
    return f"config keys (default values) for --set KEY=VALUE:\n  {keys}"


def _add_train_parsers(sub) -> None:
    train = sub.add_parser(
        "train",
        help="train a language model (PyTorch Lightning) and write a run directory",
        description="Train a recurrent language model on a text file with PyTorch Lightning. The "
        "configuration is a YAML preset (--config) with overrides from the flags below and --set; it is "
        "checked strictly (unknown keys and wrong types are errors). The run directory holds config.yaml, "
        "command.txt, metrics.csv, plots/loss.png, checkpoints/last.safetensors (exact resume) and "
        "model.safetensors (best on validation; read by `rnnkit evaluate` and `rnnkit generate`).",
        epilog=_config_keys_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    train.add_argument("--config", metavar="YAML",
                       help="preset, e.g. configs/shakespeare_char.yaml (default: built-in defaults)")
    train.add_argument("--data", metavar="PATH",
                       help="text file, folder of .txt files, or folder with train.txt and valid.txt; "
                       "with data.dataset=tang_poems the Tang poems folder (sets data.path)")
    train.add_argument("--resume", metavar="RUN_DIR",
                       help="continue the run in RUN_DIR exactly where its last checkpoint left it (its "
                       "config.yaml is used; --set may extend e.g. trainer.max_steps)")
    train.add_argument("--set", action="append", metavar="KEY=VALUE",
                       help="override one config key, e.g. --set model.hidden_size=512 (repeatable; keys "
                       "below)")
    for flag, key, kind, text in _TRAIN_FLAGS:
        train.add_argument(flag, type=kind, default=None, help=f"{text} (sets {key})")
    train.add_argument("--no-progress-bar", action="store_true", help="hide the progress bar")
    train.set_defaults(func=_train, argv=None)

    evaluate = sub.add_parser(
        "evaluate",
        help="cross-entropy, bits per token and perplexity of a trained language model on text",
        description="Evaluate a model file written by `rnnkit train` (model.safetensors) on a text file: "
        "mean cross-entropy in nats, bits per token (bits per character for a char model) and perplexity.",
    )
    evaluate.add_argument("--checkpoint", required=True, metavar="FILE", help="model file, e.g. "
                          "runs/NAME/model.safetensors")
    evaluate.add_argument("--data", required=True, metavar="PATH",
                          help="text file or folder, read as in training")
    evaluate.add_argument("--split", choices=["valid", "train", "all"], default="valid",
                          help="which part of the text: the held-out last part as in training (default), the "
                          "training part, or all of it")
    evaluate.add_argument("--batch-size", type=int, default=0,
                          help="rows of the stream (default: as in training)")
    evaluate.add_argument("--bptt", type=int, default=0,
                          help="time steps per batch (default: as in training)")
    evaluate.add_argument("--accelerator", default="auto", help="cpu, gpu, mps or auto (default: auto)")
    evaluate.add_argument("--json", action="store_true", help="print the metrics as one JSON object")
    evaluate.set_defaults(func=_evaluate)


# ---- generate (text data + generation) -------------------------------------------------------------


def _generate(args: argparse.Namespace) -> int:
    from rnnkit.generate import generate, generate_poem
    from rnnkit.train.language_modeling import load_language_model, training_data

    model, vocab, meta = load_language_model(args.checkpoint)
    sampling = dict(temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, seed=args.seed)

    def stream(piece: str) -> None:
        print(piece, end="", flush=True)

    data = training_data(meta)  # None: a hand-saved model file, judged by its vocabulary alone
    poem_model = data is not None and data.dataset == "tang_poems"
    if (args.poem or args.acrostic) and data is not None and not poem_model:
        raise ValueError(
            f"{args.checkpoint} was trained on plain text (data.dataset {data.dataset!r}), not on poems: "
            "--poem/--acrostic need a model trained with data.dataset=tang_poems (configs/tang_poems.yaml)"
        )
    if args.poem or args.acrostic or poem_model:  # a poem model always writes poems
        if args.beam is not None or args.prompt:
            raise ValueError("poems are decoded under constraints from the poem start: no --beam, "
                             "no --prompt")
        chars, lines = _poem_form(args, data if poem_model else None)
        generate_poem(model, vocab, chars=chars, lines=lines, acrostic=args.acrostic,
                      greedy=args.greedy, stream=stream, **sampling)
    else:
        print(args.prompt, end="", flush=True)
        generate(model, vocab, args.prompt, args.max_new_tokens, greedy=args.greedy, beam_size=args.beam,
                 stream=stream, **sampling)
    print()
    return 0


def _poem_form(args: argparse.Namespace, data) -> tuple[int, int]:
    """(chars, lines) from --chars/--lines/--acrostic, defaulting to the form the model was trained on;
    a form the model never saw (its data.poem_chars / data.poem_lines, 0 = both) is an error."""
    trained = {"chars": data.poem_chars if data else 0, "lines": data.poem_lines if data else 0}
    lines = len("".join(args.acrostic.split())) if args.acrostic else args.lines  # the acrostic sets lines
    asked = {"chars": args.chars or trained["chars"] or 5, "lines": lines or trained["lines"] or 4}
    for key, value in asked.items():
        if trained[key] and value != trained[key]:
            raise ValueError(
                f"this model was trained on poems with data.poem_{key}={trained[key]} only, got {key} {value}"
            )
    return asked["chars"], asked["lines"]


def _add_generate_parser(sub) -> None:
    gen = sub.add_parser(
        "generate",
        help="generate text (or a Chinese classical poem) from a trained language model",
        description="Continue a prompt with a model file written by `rnnkit train`, printing each token as "
        "it is chosen: sampling with temperature, top-k and top-p (nucleus), greedy decoding, or beam "
        "search. "
        "A model trained on Tang poems (data.dataset tang_poems, configs/tang_poems.yaml) always writes a "
        "well-formed poem of 4 or 8 lines of 5 or 7 characters, in the script it was trained on (--poem is "
        "then implied; on a plain-text model it is an error); with --acrostic, line k starts with the k-th "
        "given character (4 -> quatrain, 8 -> regulated verse).",
    )
    gen.add_argument("checkpoint", metavar="CHECKPOINT", help="model file, e.g. runs/NAME/model.safetensors")
    gen.add_argument("--prompt", default="", help="text to continue (default: start after a line break)")
    gen.add_argument("--max-new-tokens", type=int, default=200, metavar="N",
                     help="tokens to generate (default: 200)")
    gen.add_argument("--temperature", type=float, default=1.0,
                     help="divide the logits by this (> 0; lower is more conservative; default: 1.0)")
    gen.add_argument("--top-k", type=int, default=None, metavar="K", help="sample only among the K likeliest")
    gen.add_argument("--top-p", type=float, default=None, metavar="P",
                     help="sample only among the likeliest tokens holding probability mass P (nucleus)")
    gen.add_argument("--greedy", action="store_true", help="always take the likeliest token")
    gen.add_argument("--beam", type=int, default=None, metavar="N", help="beam search with N hypotheses")
    gen.add_argument("--seed", type=int, default=None, help="seed of the sampler (same seed, same text)")
    gen.add_argument("--poem", action="store_true",
                     help="generate a Chinese classical poem (the default for a poem model)")
    gen.add_argument("--chars", type=int, choices=[5, 7], default=None,
                     help="--poem: characters per line (default: the model's data.poem_chars, else 5)")
    gen.add_argument("--lines", type=int, choices=[4, 8], default=None,
                     help="--poem: 4 (quatrain) or 8 (regulated verse) lines (default: the model's "
                     "data.poem_lines, else 4)")
    gen.add_argument("--acrostic", metavar="CHARS", default=None,
                     help="--poem: 藏头诗, line k starts with the k-th of these 4 or 8 characters "
                     "(e.g. 春夏秋冬)")
    gen.set_defaults(func=_generate)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rnnkit", description="Recurrent neural networks, from the equations to trained models."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser(
        "demo",
        help="train a small character LSTM (rnnkit.nn) on Python's bundled docs and generate text",
        description="Train a small character-level LSTM built from rnnkit.nn with the training engine "
        "(PyTorch Lightning) on the text of pydoc_data.topics, which ships with Python, for about a minute "
        "on 2 CPU cores: the loss falls in a table, a sample is generated from the saved model, and the run "
        "directory (config.yaml, metrics.csv, plots/loss.png, model.safetensors) is kept for `rnnkit "
        "generate` and `rnnkit evaluate`. With --numpy: the same job by a character LSTM written in NumPy "
        "(hand-written BPTT, Adam), which writes no files.",
    )
    demo.add_argument("--numpy", action="store_true",
                      help="train the NumPy reference model instead (rnnkit/reference/char_model.py)")
    demo.add_argument("--steps", type=int, default=None,
                      help="training steps (default: 800, or 600 with --numpy; about a minute each)")
    demo.add_argument("--seed", type=int, default=0, help="random seed of training and sampling (default: 0)")
    demo.add_argument("--hidden-size", type=int, default=None,
                      help="LSTM width H (default: 256, or 192 with --numpy)")
    demo.add_argument("--batch-size", type=int, default=None, help="rows of text per step B (default: 32)")
    demo.add_argument("--bptt", type=int, default=None,
                      help="characters per row per step, the truncation length of BPTT (default: 64)")
    demo.add_argument("--output-dir", default=None, help="parent of the run directory (default: runs)")
    demo.add_argument("--prompt", default="The ", help="text the sample continues (default: 'The ')")
    demo.add_argument("--sample-length", type=int, default=400, metavar="N",
                      help="characters to generate (default: 400)")
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
    _add_train_parsers(sub)
    _add_generate_parser(sub)
    return parser


def _quiet_lightning() -> None:
    """Keep the terminal for what matters: no advertising tip, no deprecation noise from Lightning."""
    logging.getLogger("pytorch_lightning.utilities.rank_zero").addFilter(
        lambda record: "litlogger" not in record.getMessage()
    )
    warnings.filterwarnings("ignore", message=r".*LeafSpec.*is deprecated")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    _quiet_lightning()
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as e:
        print(f"rnnkit {args.command}: error: {e}", file=sys.stderr)
        return 2
