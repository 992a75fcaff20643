"""Speed of the NumPy reference LSTM against torch.nn.LSTM on CPU, in float32, as a markdown table.

Both engines run the same weights on the same inputs in the same process with the same thread count.
"forward+backward" is one forward, then the gradients of loss = sum(output * r), for a fixed random r, with
respect to every weight and the input (ours: `backward(r)`; torch: autograd). "forward" times our `forward`
(which always keeps the cache for backward) against torch's forward under `torch.no_grad()` (inference). Each
time is the median of `--repeats` timed runs after `--warmup` untimed ones; ours and torch alternate run by
run, so a burst of load from other processes hits both. Before timing, the gradients of both are checked to
agree.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python benchmarks/reference_lstm.py

Unset those two variables in that command only: forcing an OpenBLAS core type or L2 size slows current NumPy.
"""

from __future__ import annotations

import argparse
import ctypes
import datetime
import os
import platform
import sys
from dataclasses import dataclass

import numpy as np
import torch
from timing import median_ms  # benchmarks/timing.py (scripts run from their folder)

from rnnkit import reference

DEFAULT_CONFIGS = ("100x64x256x256", "1000x1x64x64")


@dataclass(frozen=True)
class Config:
    """One benchmark shape: T time steps, B batch, I input size, H hidden size."""

    T: int
    B: int
    I: int
    H: int

    @classmethod
    def parse(cls, text: str) -> Config:
        parts = text.lower().split("x")
        if len(parts) != 4 or not all(p.isdigit() and int(p) > 0 for p in parts):
            raise ValueError(f"config must be TxBxIxH of positive integers (100x64x256x256), got {text!r}")
        return cls(*(int(p) for p in parts))

    def __str__(self):
        return f"T={self.T}, B={self.B}, I=H={self.H}" if self.I == self.H else (
            f"T={self.T}, B={self.B}, I={self.I}, H={self.H}"
        )


# ------------------------------------------------------------------------------------------------ environment


def _openblas():
    """The OpenBLAS library NumPy loaded, and the symbol prefix/suffix it was built with (or None)."""
    with open("/proc/self/maps") as f:
        paths = {line.split()[-1] for line in f if "openblas" in line.lower() and "/" in line}
    for path in sorted(paths):
        lib = ctypes.CDLL(path)
        for prefix in ("scipy_openblas", "openblas"):
            for suffix in ("64_", ""):
                if hasattr(lib, f"{prefix}_get_corename{suffix}"):
                    return lib, prefix, suffix
    return None


def blas_kernel() -> str:
    """Which BLAS kernel NumPy uses: from threadpoolctl, else from OpenBLAS itself, else np.show_config()."""
    try:
        from threadpoolctl import threadpool_info

        blas = [i for i in threadpool_info() if i.get("user_api") == "blas"]
        return "; ".join(
            f"{i['internal_api']} {i.get('version')} {i.get('architecture')} ({i['num_threads']} threads)"
            for i in blas
        )
    except ImportError:
        pass
    found = _openblas()
    if found is not None:
        lib, prefix, suffix = found
        corename = getattr(lib, f"{prefix}_get_corename{suffix}")
        corename.restype = ctypes.c_char_p
        threads = getattr(lib, f"{prefix}_get_num_threads{suffix}")()
        return f"OpenBLAS core {corename().decode()} ({threads} threads)"
    np.show_config()
    return "see np.show_config() above"


def set_blas_threads(n: int) -> None:
    found = _openblas()
    if found is not None:
        lib, prefix, suffix = found
        getattr(lib, f"{prefix}_set_num_threads{suffix}")(n)


def cpu_model() -> str:
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def describe(threads: int) -> list[str]:
    env = {k: os.environ.get(k) for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    return [
        f"- date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}",
        f"- command: {' '.join([os.path.relpath(sys.executable), *sys.argv])}",
        f"- machine: nproc={os.cpu_count()}, CPU: {cpu_model()}",
        f"- python {platform.python_version()}, numpy {np.__version__}, torch {torch.__version__}",
        f"- BLAS kernel (numpy): {blas_kernel()}",
        f"- OpenBLAS environment: {env}",
        f"- threads: torch {torch.get_num_threads()}, numpy BLAS {threads}",
    ]


# ------------------------------------------------------------------------------------------------ timing


def bench_config(cfg: Config, repeats: int, warmup: int) -> list[tuple[str, float, float]]:
    rng = np.random.default_rng(0)
    ours = reference.LSTM(cfg.I, cfg.H, seed=0, dtype=np.float32)
    theirs = torch.nn.LSTM(cfg.I, cfg.H)
    theirs.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in ours.state_dict().items()})
    x = rng.standard_normal((cfg.T, cfg.B, cfg.I), dtype=np.float32)
    r = rng.standard_normal((cfg.T, cfg.B, cfg.H), dtype=np.float32)  # loss = sum(output * r)
    x_t, r_t = torch.from_numpy(x).requires_grad_(), torch.from_numpy(r)

    def ours_fwd():
        return ours.forward(x)

    def ours_fwd_bwd():
        ours.forward(x)
        return ours.backward(r)

    def torch_fwd():
        with torch.no_grad():
            return theirs(x_t)

    def torch_fwd_bwd():
        theirs.zero_grad(set_to_none=True)
        x_t.grad = None
        out, _ = theirs(x_t)
        (out * r_t).sum().backward()

    # Time only what agrees: both engines must compute the same output and gradients (float32 tolerance).
    grads = ours_fwd_bwd()
    torch_fwd_bwd()
    for name, p in [*theirs.named_parameters(), ("input", x_t)]:
        np.testing.assert_allclose(grads[name], p.grad.numpy(), rtol=1e-3, atol=1e-3, err_msg=name)

    fwd = median_ms({"ours": ours_fwd, "torch": torch_fwd}, repeats, warmup)
    both = median_ms({"ours": ours_fwd_bwd, "torch": torch_fwd_bwd}, repeats, warmup)
    return [
        (f"{cfg}, forward+backward", both["ours"], both["torch"]),
        (f"{cfg}, forward", fwd["ours"], fwd["torch"]),
    ]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--configs", nargs="+", default=list(DEFAULT_CONFIGS), metavar="TxBxIxH",
                        help=f"shapes to time (default: {' '.join(DEFAULT_CONFIGS)})")
    parser.add_argument("--repeats", type=int, default=15, help="timed runs per cell (median reported)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed runs before timing")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(),
                        help="threads for both torch and NumPy's BLAS (default: torch's default)")
    args = parser.parse_args(argv)
    for name in ("repeats", "threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1, got {getattr(args, name)}")
    try:
        configs = [Config.parse(c) for c in args.configs]
    except ValueError as e:
        parser.error(str(e))

    torch.set_num_threads(args.threads)
    set_blas_threads(args.threads)
    print("\n".join(describe(args.threads)))
    print(f"- median of {args.repeats} runs after {args.warmup} warm-up runs\n")
    print("| config | ours ms | torch ms | ratio |")
    print("|---|---:|---:|---:|")
    for cfg in configs:
        for label, ours_ms, torch_ms in bench_config(cfg, args.repeats, args.warmup):
            print(f"| {label} | {ours_ms:.1f} | {torch_ms:.1f} | {ours_ms / torch_ms:.2f} |", flush=True)


if __name__ == "__main__":
    main()
