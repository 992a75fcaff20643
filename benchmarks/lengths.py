"""Padded batches on CPU: forward+backward of bidirectional RNN layers with equal vs mixed lengths.

rnnkit.nn (`lengths=`) and torch.nn (pack_padded_sequence / pad_packed_sequence) on the same inputs, as ratios
to torch.nn.LSTM with equal lengths in the same run (median of the timed runs, callables alternating):

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/lengths.py --repeats 5

What it shows (docs/benchmarks.md): on CPU, torch's packed path and its GRU are far slower than its fused
LSTM, which is where fused kernels for every cell and for lengths= (the issue on fused recurrent kernels) pay.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from timing import median_ms  # noqa: E402

from rnnkit import nn as rnn  # noqa: E402


def case(library: str, cell: str, x: torch.Tensor, lengths: torch.Tensor, hidden: int):
    layer = {("rnnkit", "lstm"): rnn.LSTM, ("rnnkit", "gru"): rnn.GRU,
             ("torch", "lstm"): torch.nn.LSTM, ("torch", "gru"): torch.nn.GRU}[library, cell]  # fmt: skip
    model = layer(x.shape[-1], hidden, batch_first=True, bidirectional=True)
    T = x.shape[1]

    def run():
        model.zero_grad()
        if library == "rnnkit":
            out, _ = model(x, lengths=lengths)
        else:
            packed = torch.nn.utils.rnn.pack_padded_sequence(x, lengths, True, enforce_sorted=False)
            out, _ = model(packed)
            out, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=T)
        out.sum().backward()

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=128)
    parser.add_argument("--hidden", type=int, default=64)
    args = parser.parse_args()
    torch.manual_seed(0)
    B, T, H = args.batch, args.steps, args.hidden
    x = torch.randn(B, T, 64)
    mixed = torch.randint(T // 2, T + 1, (B,))
    mixed[0] = T
    lengths = {"equal": torch.full((B,), T), "mixed": mixed}
    runs = {(lib, cell, kind): case(lib, cell, x, lengths[kind], H)
            for cell in ("lstm", "gru") for kind in lengths for lib in ("torch", "rnnkit")}  # fmt: skip
    times = median_ms(runs, args.repeats, warmup=1)
    base = times["torch", "lstm", "equal"]
    threads = torch.get_num_threads()
    print(f"B={B}, T={T}, input 64, H={H}, bidirectional, forward+backward, {threads} thread(s)")
    print("| cell | lengths | torch.nn (ms) | rnnkit.nn (ms) | torch / torch LSTM equal | rnnkit / torch |")
    print("|---|---|---:|---:|---:|---:|")
    for cell in ("lstm", "gru"):
        for kind in lengths:
            t, r = times["torch", cell, kind], times["rnnkit", cell, kind]
            print(f"| {cell} | {kind} | {t:.0f} | {r:.0f} | {t / base:.2f} | {r / t:.2f} |")


if __name__ == "__main__":
    main()
