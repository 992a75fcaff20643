"""Speed of rnnkit.nn layers (LSTM or GRU, plain and every variant; MinGRU, MinLSTM) vs torch.nn, CPU, fp32.

Each row times one rnnkit.nn layer and torch.nn.LSTM (or torch.nn.GRU with --cell gru) of the same size on
the same input in the same process,
alternating run by run (so a burst of load from other processes hits both), and reports the ratio
rnnkit / torch (1.00 = as fast; above 1 = slower). Both are in training mode, so the stochastic variants draw
their masks on every call. "forward" runs under torch.no_grad(); "forward+backward" is loss = sum(output * r)
and autograd for every weight and the input. Each cell is the median over the timed runs after warm-up.

    .venv/bin/python benchmarks/layers.py            # about 2 minutes on a 2-core machine
    .venv/bin/python benchmarks/layers.py --quick    # fewer repeats, under a minute
    .venv/bin/python benchmarks/layers.py --only plain,MinGRU,MinLSTM --threads 1   # a subset, 1 thread
    .venv/bin/python benchmarks/layers.py --cell gru --only plain,layer_norm,zoneout,all_four
    .venv/bin/python benchmarks/layers.py --dtype bfloat16 --only plain,layer_norm,zoneout,all_four

Plain configurations run torch's own fused kernel (ratio ~1); weight_drop alone also does (on W_hh * M);
layer_norm, recurrent_dropout and zoneout run rnnkit's C++ kernels (rnnkit/kernels; `RNNKIT_KERNELS=scan`
times the pure-torch scan, their slow twin, instead). MinGRU and MinLSTM (rnnkit/nn/minimal.py) run the
log-space parallel scan: all T steps in a few big kernels (cumsum, logcumsumexp), no loop over time.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys

import torch
from timing import median_ms  # benchmarks/timing.py (scripts run from their folder)

from rnnkit import nn as rnn

CONFIGS = ((100, 64, 256), (200, 32, 128), (1000, 1, 64))     # (T, B, H), I = H
CELLS = {"lstm": (torch.nn.LSTM, rnn.LSTM), "gru": (torch.nn.GRU, rnn.GRU)}   # --cell: (baseline, ours)
LSTM_VARIANTS = {   # --only key: (row label, rnnkit.nn.LSTM / GRU keyword arguments)
    "plain": ("plain (fused)", {}),
    "weight_drop": ("weight_drop=0.5 (fused)", {"weight_drop": 0.5}),
    "layer_norm": ("layer_norm", {"layer_norm": True}),
    "recurrent_dropout": ("recurrent_dropout=0.25", {"recurrent_dropout": 0.25}),
    "zoneout": ("zoneout=0.1", {"zoneout": 0.1}),
    "all_four": ("all four",
                 {"layer_norm": True, "recurrent_dropout": 0.25, "zoneout": 0.1, "weight_drop": 0.5}),
}
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
MINIMAL = {"MinGRU": rnn.MinGRU, "MinLSTM": rnn.MinLSTM}   # their own weights: nothing to share with torch's
ROWS = (*LSTM_VARIANTS, *MINIMAL)
FAST = ("plain", "weight_drop", *MINIMAL)   # a few big kernels per call: 3x the timed runs


def label(key: str) -> str:
    return LSTM_VARIANTS[key][0] if key in LSTM_VARIANTS else f"{key} (parallel scan)"


def make_layer(key: str, H: int, baseline: torch.nn.Module, cell: str) -> torch.nn.Module:
    """The rnnkit.nn layer of row `key` with I = H; LSTM / GRU variants start from the baseline's weights."""
    if key in MINIMAL:
        return MINIMAL[key](H, H)
    layer = CELLS[cell][1](H, H, **LSTM_VARIANTS[key][1])
    layer.load_state_dict(baseline.state_dict(), strict=False)
    return layer


def timers(layer: torch.nn.Module, x: torch.Tensor, r: torch.Tensor):
    def forward():
        with torch.no_grad():
            layer(x)

    def forward_backward():
        layer.zero_grad(set_to_none=True)
        x.grad = None
        out, _ = layer(x)
        (out * r).sum().backward()

    return forward, forward_backward


def bench(T: int, B: int, H: int, key: str, repeats: int, warmup: int, cell: str,
          dtype: torch.dtype = torch.float32) -> tuple[float, ...]:
    torch.manual_seed(0)
    baseline = CELLS[cell][0](H, H)
    ours = make_layer(key, H, baseline, cell).to(dtype)
    baseline = baseline.to(dtype)
    x = torch.randn(T, B, H, dtype=dtype, requires_grad=True)
    r = torch.randn(T, B, H, dtype=dtype)
    if key == "plain":   # time only what agrees
        tolerance = {"rtol": 2e-2, "atol": 2e-2} if dtype == torch.bfloat16 else {}
        torch.testing.assert_close(ours(x)[0], baseline(x)[0], **tolerance)
    ours_fwd, ours_both = timers(ours, x, r)
    torch_fwd, torch_both = timers(baseline, x, r)
    fwd = median_ms({"ours": ours_fwd, "torch": torch_fwd}, repeats, warmup)
    both = median_ms({"ours": ours_both, "torch": torch_both}, repeats, warmup)
    return fwd["ours"], fwd["torch"], both["ours"], both["torch"]


def describe() -> list[str]:
    with open("/proc/cpuinfo") as f:
        models = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
    cpu = models[0] if models else platform.processor() or "unknown"
    return [
        f"- date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}",
        f"- command: {' '.join([os.path.relpath(sys.executable), *sys.argv])}",
        f"- machine: nproc={os.cpu_count()} (shared), CPU: {cpu}",
        f"- python {platform.python_version()}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, oneDNN {torch.backends.mkldnn.is_available()}",
    ]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 timed runs per cell (scan rows), 5 fused")
    parser.add_argument("--repeats", type=int, default=7, help="timed runs per cell of the scan rows")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs before timing")
    parser.add_argument("--only", default=",".join(ROWS),
                        help=f"comma-separated rows to run, from {','.join(ROWS)} (default: all)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(),
                        help="torch.set_num_threads (default: torch's default)")
    parser.add_argument("--cell", choices=sorted(CELLS), default="lstm",
                        help="the variants' cell and the baseline: torch.nn.LSTM or GRU (default: lstm)")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="float32",
                        help="both layers' dtype (bfloat16: the kernels' GEMMs in bfloat16; "
                             "default: float32)")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.warmup < 0 or args.threads < 1:
        parser.error(f"--repeats and --threads must be >= 1 and --warmup >= 0, "
                     f"got {args.repeats}, {args.threads} and {args.warmup}")
    only = [key.strip() for key in args.only.split(",") if key.strip()]
    unknown = [key for key in only if key not in ROWS]
    if not only or unknown:
        parser.error(f"--only expects names from {', '.join(ROWS)}, got {args.only!r}")
    torch.set_num_threads(args.threads)
    repeats = 3 if args.quick else args.repeats
    print("\n".join(describe()))
    print(f"- median of {repeats} timed runs ({3 * repeats} for the fused and parallel-scan rows) "
          f"after {args.warmup} warm-up run(s); baseline torch.nn.{CELLS[args.cell][0].__name__}, "
          f"{args.dtype}\n")
    print("| T, B, H | rnnkit.nn layer | fwd ms | torch fwd ms | fwd ratio | fwd+bwd ms | torch fwd+bwd ms | "
          "fwd+bwd ratio |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for T, B, H in CONFIGS:
        for key in (key for key in ROWS if key in only):
            n = 3 * repeats if key in FAST else repeats
            fwd, torch_fwd, both, torch_both = bench(T, B, H, key, n, args.warmup, args.cell,
                                                     DTYPES[args.dtype])
            print(f"| {T}, {B}, {H} | {label(key)} | {fwd:.1f} | {torch_fwd:.1f} | {fwd / torch_fwd:.2f} | "
                  f"{both:.1f} | {torch_both:.1f} | {both / torch_both:.2f} |", flush=True)


if __name__ == "__main__":
    main()
