"""The `rnnkit` command: the only place that reads argv. Each subcommand lives in its own function."""

from __future__ import annotations

import argparse
import sys
import warnings


def _demo(args: argparse.Namespace) -> int:
    sizes = {"--steps": args.steps, "--hidden-size": args.hidden_size, "--batch-size": args.batch_size,
             "--bptt": args.bptt}
    for flag, value in sizes.items():  # checked here, before the seconds that importing torch takes
        if value is not None and value < 1:
            raise ValueError(f"{flag} must be >= 1, got {value}")
    if args.sample_length < 0:
        raise ValueError(f"--sample-length must be >= 0, got {args.sample_length}")
    if args.seed < 0:
        raise ValueError(f"--seed must be >= 0, got {args.seed}")
    if args.numpy:
        import dataclasses

        from rnnkit.reference.char_model import DemoConfig, run_demo

        if args.output_dir is not None:
            raise ValueError("--output-dir belongs to the rnnkit.nn demo; the --numpy run writes no files")
        given = {"steps": args.steps, "hidden_size": args.hidden_size, "batch_size": args.batch_size,
                 "seq_len": args.bptt}
        config = DemoConfig(seed=args.seed, prompt=args.prompt, sample_length=args.sample_length)
        run_demo(dataclasses.replace(config, **{k: v for k, v in given.items() if v is not None}))
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


def _configs(args: argparse.Namespace) -> int:
    from rnnkit.presets import PRESETS, list_presets

    presets = list_presets()
    width = max((len(name) for name, _ in presets), default=0)
    for name, text in presets:
        print(f"{name:<{width}}  {text}")
    print(f"(in {PRESETS}; use one with rnnkit train --config NAME)", file=sys.stderr)
    return 0


def _plot(args: argparse.Namespace) -> int:
    from pathlib import Path

    from rnnkit.train.plots import metrics_file, plot_loss_curves, plot_runs, run_plot_info

    runs = [Path(r) for r in args.runs]
    if len(runs) == 1:
        out = Path(args.out) if args.out else runs[0] / "plots" / "loss.png"
        if plot_loss_curves(metrics_file(runs[0]), out, info=run_plot_info(runs[0])) is None:
            raise ValueError(f"nothing to plot: {runs[0] / 'metrics.csv'} holds no metrics yet")
    else:
        out = plot_runs(runs, args.out or "runs.png")
    print(out)
    return 0


def _serve(args: argparse.Namespace) -> int:
    if not 0 <= args.port <= 65535:
        raise ValueError(f"--port must be in [0, 65535], got {args.port}")
    from rnnkit.serve import serve

    serve(args.host, args.port, args.model, args.verbose)
    return 0


# `rnnkit explain --help` on --weights; rnnkit/reference/explain.py says the same, with the equations.
_EXPLAIN_WEIGHTS_FORMAT = """\
the --weights file: one JSON object; shapes with T time steps, I inputs, H hidden units, O outputs
  "x"             (T, I)        the input sequence, one row per time step          required
  "cell"          "rnn" | "lstm" | "gru"                                          optional (see below)
  "nonlinearity"  "tanh" | "relu"                                                 optional, rnn only
  "h0", "c0"      (H,)          initial hidden / cell state (c0: lstm only)        default zeros
  "W_hy", "b_y"   (O, H), (O,)  the output layer y_t = W_hy h_t + b_y              optional
and the cell's weights, either per gate (biases optional):
  rnn    W_xh (H, I)  W_hh (H, H)  b_h (H,)
  lstm   W_xi W_xf W_xg W_xo (H, I)  W_hi W_hf W_hg W_ho (H, H)  b_i b_f b_g b_o (H,)
  gru    W_xr W_xz W_xn (H, I)  W_hr W_hz W_hn (H, H)  b_r b_z b_xn b_hn (H,)
or stacked as in a torch state_dict (gate order i,f,g,o / r,z,n; a "_l0" suffix is accepted):
  weight_ih (G*H, I)  weight_hh (G*H, H)  bias_ih (G*H,)  bias_hh (G*H,)    G = 1 rnn, 4 lstm, 3 gru
The cell: --cell or the file's "cell" (they must agree), else read off the weights: the per-gate names, or
the rows of weight_hh (H: rnn, 4H: lstm, 3H: gru); weights that fit no cell or several are an error.

example: {"x": [[1, 0], [0, 1]], "W_xh": [[0.5, -0.5]], "W_hh": [[0.9]], "W_hy": [[2.0]]}
"""


# ---- train / evaluate / predict: dispatched on the task -------------------------------------------------

# Shortcut flags every task has; each task adds its own (TaskSpec.train_flags); every key of the run config
# can also be set with --set section.key=value.
_TRAIN_FLAGS = [
    ("--max-steps", "trainer.max_steps", int, "optimiser steps to train (the budget; -1: --max-epochs is)"),
    ("--max-epochs", "trainer.max_epochs", int, "passes over the training data, when max_steps is -1"),
    ("--devices", "trainer.devices", str, "processes/devices per node; > 1 trains data-parallel (DDP)"),
    ("--accelerator", "trainer.accelerator", str, "cpu, gpu, mps or auto"),
    ("--num-nodes", "trainer.num_nodes", int, "machines for multi-node DDP"),
    ("--precision", "trainer.precision", str, "32-true, bf16-mixed, 16-mixed, 64-true"),
    ("--seed", "trainer.seed", int, "random seed (same seed, same run)"),
    ("--output-dir", "trainer.output_dir", str, "parent folder of run directories"),
    ("--run-name", "trainer.run_name", str, "name of the run directory (default: task-timestamp)"),
    ("--checkpoint-every", "trainer.checkpoint_every_n_steps", int, "resume checkpoint every N steps"),
    ("--lr", "optim.lr", float, "learning rate"),
]


def _dest(flag: str) -> str:
    return flag[2:].replace("-", "_")


def _read_config_mapping(args: argparse.Namespace) -> dict:
    """The YAML mapping the run starts from: the resumed run's config.yaml, the preset, or {}."""
    from pathlib import Path

    from rnnkit.train.config import read_yaml_mapping

    if args.resume is not None and args.config is not None:
        raise ValueError("--resume continues a run with its own config.yaml; --config cannot change it "
                         "(drop --config; --set may raise the budget, e.g. --set trainer.max_steps=N)")
    if args.resume is not None:
        path = Path(args.resume) / "config.yaml"
        if not path.is_file():
            raise FileNotFoundError(f"cannot resume: {path} not found (give the run directory)")
    elif args.config is not None:
        from rnnkit.presets import find_preset

        path = find_preset(args.config)
    else:
        return {}
    return read_yaml_mapping(path)


def _task_of_args(args: argparse.Namespace) -> str:
    """The task a command is about: the config's `task:` (train), or the model file's (evaluate, predict and
    its task aliases, which take a model of their own task only)."""
    from rnnkit.tasks import DEFAULT_TASK, task_of_config

    if args.command == "train":
        return task_of_config(_read_config_mapping(args))
    alias_of = _PREDICT_ALIASES.get(args.command)
    if getattr(args, "model", None):
        from rnnkit.tasks import task_of_model

        task = task_of_model(args.model)
        if alias_of is not None and task != alias_of:
            raise ValueError(f"{args.model} holds a model for task {task!r}; `rnnkit {args.command}` takes a "
                             f"{alias_of!r} model (for this one: rnnkit predict)")
        return task
    return alias_of or DEFAULT_TASK


def _train(args: argparse.Namespace) -> int:
    from pathlib import Path

    from rnnkit.tasks import get_task
    from rnnkit.train.config import apply_overrides, from_dict
    from rnnkit.train.run import train_run

    data = _read_config_mapping(args)
    spec = get_task(args.task)
    source = Path(args.resume) / "config.yaml" if args.resume else args.config
    try:
        config = from_dict(spec.config_class, spec.upgrade_config(data))
    except ValueError as e:
        if source is None:
            raise
        raise ValueError(f"{source}: {e}") from e
    flags = _TRAIN_FLAGS + list(spec.train_flags)
    overrides = [f"data.path={args.data}"] if args.data is not None else []
    overrides += [f"{key}={getattr(args, _dest(flag))}" for flag, key, _, _ in flags
                  if getattr(args, _dest(flag)) is not None]
    if args.no_progress_bar:
        overrides.append("trainer.progress_bar=false")
    config = apply_overrides(config, overrides + (args.set or []))
    result = train_run(spec.build, config, args.resume, sys.argv if args.argv is None else args.argv)
    from pytorch_lightning.utilities import rank_zero_only

    if getattr(rank_zero_only, "rank", 0) == 0:
        shown = ", ".join(f"{k}={v:.4f}" for k, v in sorted(result.metrics.items()))
        print(f"run directory: {result.run_dir}  (step {result.global_step}; {shown})")
        if result.ended:
            print(f"rnnkit train: ended: {result.ended}", file=sys.stderr)
        if result.end and result.end["reason"].startswith("SIG"):
            print(f"rnnkit train: continue with: rnnkit train --resume {result.run_dir}", file=sys.stderr)
    return 0


_MODEL_HELP = "a model file (e.g. runs/NAME/model.safetensors) or a run directory (runs/NAME)"


def _evaluate(args: argparse.Namespace) -> int:
    from rnnkit.tasks import get_task, resolve_model_path

    args.model = resolve_model_path(args.model)
    return get_task(args.task).evaluate(args)


def _predict(args: argparse.Namespace) -> int:
    from rnnkit.tasks import get_task, resolve_model_path

    args.model = resolve_model_path(args.model)
    return get_task(args.task).predict(args)


def _config_keys_help(spec) -> str:
    from rnnkit.train.config import field_help

    keys = "\n  ".join(field_help(spec.config_class))
    return f"config keys of task {spec.name} (default values) for --set KEY=VALUE:\n  {keys}"


def _add_train_parsers(sub, spec) -> None:
    train = sub.add_parser(
        "train",
        help=_TASK_HELP["train"],
        description=f"Train a model with PyTorch Lightning; this help is for task {spec.name}: "
        f"{spec.summary}. The configuration is a YAML preset (--config; its `task:` key picks the task) "
        "with overrides from the "
        "flags below and --set; it is checked strictly (unknown keys and wrong types are errors). The run "
        "directory holds config.yaml, command.txt, metrics.csv, plots/loss.png, checkpoints/last.safetensors "
        "(exact resume) and model.safetensors (best on validation; read by `rnnkit evaluate` and "
        "`rnnkit predict`).",
        epilog=_config_keys_help(spec),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    train.add_argument("--config", metavar="NAME|YAML",
                       help="a shipped preset's name (rnnkit configs lists them), e.g. shakespeare_char, or "
                       "a path to a YAML file (default: built-in defaults)")
    train.add_argument("--data", metavar="PATH", help="the training data (sets data.path)")
    train.add_argument("--resume", metavar="RUN_DIR",
                       help="continue the run in RUN_DIR exactly where its last checkpoint left it (its "
                       "config.yaml is used; --set may extend e.g. trainer.max_steps)")
    train.add_argument("--set", action="append", metavar="KEY=VALUE",
                       help="override one config key, e.g. --set model.encoder.hidden_size=512 (repeatable; "
                       "keys below)")
    for flag, key, kind, text in _TRAIN_FLAGS + list(spec.train_flags):
        train.add_argument(flag, type=kind, default=None, help=f"{text} (sets {key})")
    train.add_argument("--no-progress-bar", action="store_true", help="hide the progress bar")
    train.set_defaults(func=_train, argv=None, task=spec.name)

    evaluate = sub.add_parser(
        "evaluate",
        help=_TASK_HELP["evaluate"],
        description=f"Evaluate a model file written by `rnnkit train` (model.safetensors); flags of task "
        f"{spec.name}. A language model reports mean cross-entropy in nats, bits per token and perplexity.",
    )
    evaluate.add_argument("model", metavar="MODEL", help=_MODEL_HELP)
    spec.add_evaluate_arguments(evaluate)
    evaluate.add_argument("--accelerator", default="auto", help="cpu, gpu, mps or auto (default: auto)")
    evaluate.add_argument("--json", action="store_true", help="print the metrics as one JSON object")
    evaluate.set_defaults(func=_evaluate, task=spec.name)

    _add_predict_parser(
        sub, spec, "predict", ["generate"],
        "Run a model file written by `rnnkit train` on new input; flags of task "
        f"{spec.name}. A language model continues a prompt, printing each token as it is chosen: sampling "
        "with temperature, top-k and top-p (nucleus), greedy decoding, or beam search. A model trained on "
        "Tang poems (data.dataset tang_poems, preset tang_poems) always writes a well-formed poem of 4 "
        "or 8 lines of 5 or 7 characters, in the script it was trained on (--poem is then implied; on a "
        "plain-text model it is an error); with --acrostic, line k starts with the k-th given character "
        "(4 -> quatrain, 8 -> regulated verse).",
    )
    for command, task in _PREDICT_ALIASES.items():
        if task == spec.name:
            _add_predict_parser(sub, spec, command, [], f"`rnnkit predict` for a {task} model: the same "
                                "arguments and output; a model file of another task is an error.")


def _add_predict_parser(sub, spec, name: str, aliases: list[str], description: str) -> None:
    """`rnnkit predict` (or a task's alias of it, e.g. `rnnkit translate`): MODEL, then the task's flags."""
    predict = sub.add_parser(name, aliases=aliases, help=_TASK_HELP[name], description=description)
    predict.add_argument("model", metavar="MODEL", help=_MODEL_HELP)
    spec.add_predict_arguments(predict)
    predict.set_defaults(func=_predict, task=spec.name)


# A task's own name for `rnnkit predict` (command -> task): `rnnkit translate MODEL "sentence"`.
_PREDICT_ALIASES = {"translate": "translate"}
_TASK_COMMANDS = ("train", "evaluate", "predict", "generate", *_PREDICT_ALIASES)
_TASK_HELP = {
    "train": "train a model (PyTorch Lightning) and write a run directory",
    "evaluate": "the metrics of a trained model on data (the task's own: e.g. cross-entropy, perplexity)",
    "predict": "predict with a trained model: generate text (or a Chinese classical poem) from a language "
    "model",
    "translate": "translate sentences with a translate model (rnnkit predict for that task: --beam, "
    "--attention-map)",
}


def _add_task_stubs(sub) -> None:
    """train / evaluate / predict with only what names their task: enough to list them in `rnnkit --help`
    and to find the task, without importing it (torch, Lightning); `main` then builds the task's parser."""
    for name, text in _TASK_HELP.items():
        aliases = ["generate"] if name == "predict" else []
        stub = sub.add_parser(name, help=text, add_help=False, aliases=aliases)
        if name == "train":
            stub.add_argument("--config")
            stub.add_argument("--resume")
        else:
            stub.add_argument("model", nargs="?")


def build_parser(task: str | None = None) -> argparse.ArgumentParser:
    """The command line; with `task`, train / evaluate / predict carry that task's flags, without it they are
    stubs (so that `rnnkit --help` and `rnnkit explain` never import torch or Lightning)."""
    import rnnkit

    parser = argparse.ArgumentParser(
        prog="rnnkit", description="Recurrent neural networks, from the equations to trained models."
    )
    parser.add_argument("--version", action="version", version=f"rnnkit {rnnkit.__version__}")
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
                      help="characters to generate after the prompt (default: 400)")
    demo.set_defaults(func=_demo)

    explain = sub.add_parser(
        "explain",
        help="print a step-by-step trace of a small RNN/LSTM/GRU forward pass, with the arithmetic shown",
        description="Trace a small recurrent forward pass step by step: pre-activations, every gate, h_t, "
        "c_t and y_t = W_hy h_t + b_y, with the arithmetic written out. With no arguments: the classic "
        "tutorial example (3 steps, 2 inputs, 3 hidden, 2 outputs, h_0 = 0, no biases).",
        epilog=_EXPLAIN_WEIGHTS_FORMAT,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    explain.add_argument("--cell", choices=["rnn", "lstm", "gru"], default=None,
                         help="cell kind (default: the weights file's \"cell\", else read off its weights; "
                         "without --weights: rnn)")
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

    configs = sub.add_parser(
        "configs",
        help="list the presets shipped with rnnkit (for rnnkit train --config NAME)",
        description="List the YAML presets that ship inside the package, one line each; `rnnkit train "
        "--config NAME` finds them by name from any folder (a path to a YAML file works too).",
    )
    configs.set_defaults(func=_configs)

    plot = sub.add_parser(
        "plot",
        help="redraw a run's curves, or overlay several runs",
        description="Draw the curves of training runs from their metrics.csv (works on a run stopped by "
        "Ctrl-C too): with one run directory, its plots/loss.png (smoothed training curve, validation, the "
        "best model's step, the task's reference levels); with several, one figure overlaying them.",
    )
    plot.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run directories written by `rnnkit train`")
    plot.add_argument("--out", metavar="PNG", default=None,
                      help="where the figure goes (default: RUN_DIR/plots/loss.png for one run, runs.png for "
                      "several)")
    plot.set_defaults(func=_plot)

    serve = sub.add_parser(
        "serve",
        help="a local web page: step through the equations, watch gradients vanish, look inside a model",
        description="Serve the rnnkit playground on this machine (Python's http.server; the page and its "
        "scripts ship with the package, nothing is fetched from elsewhere): step an RNN/LSTM/GRU through "
        "time with every gate and the arithmetic shown, then the backward pass; the gradient norms "
        "through time of RNN, GRU and LSTM with sliders; a trained language model's hidden units along a "
        "text and its generations with each token's probability. English and Chinese. The address is "
        "printed; nothing is opened. Ctrl-C stops it.",
    )
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to bind (default: 127.0.0.1, this machine only)")
    serve.add_argument("--port", type=int, default=8000, help="port (default: 8000; 0 picks a free one)")
    serve.add_argument("--model", metavar="MODEL", default=None,
                       help="a language model to look inside: " + _MODEL_HELP)
    serve.add_argument("--verbose", action="store_true", help="log every request on stderr")
    serve.set_defaults(func=_serve)
    if task is None:
        _add_task_stubs(sub)
    else:
        from rnnkit.tasks import get_task

        _add_train_parsers(sub, get_task(task))
    return parser


def _quiet_lightning() -> None:
    """No deprecation noise from Lightning's internals (its banner: rnnkit.train.progress.quiet_lightning)."""
    warnings.filterwarnings("ignore", message=r".*LeafSpec.*is deprecated")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args, _ = build_parser().parse_known_args(argv)
    try:
        if args.command in _TASK_COMMANDS:
            _quiet_lightning()
            args = build_parser(_task_of_args(args)).parse_args(argv)  # with the task's own flags
        else:
            args = build_parser().parse_args(argv)
        return args.func(args)
    except BrokenPipeError:  # `rnnkit generate ... | head`: the reader has all it wanted
        _silence_stdout()
        return 0
    except (ValueError, OSError) as e:  # OSError: FileNotFoundError, NotADirectoryError, ...
        print(f"rnnkit {args.command}: error: {e}", file=sys.stderr)
        return 2


def _silence_stdout() -> None:
    """Point stdout at /dev/null so that Python's final flush does not fail again on the closed pipe."""
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
