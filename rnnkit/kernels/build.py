"""Compile rnnkit's C++ CPU kernels on first use and load them as torch custom ops (torch.ops.rnnkit.*).

Each source (rnnkit/kernels/csrc/<cell>.cpp, with the shared csrc/*.h: a cell's kernel, or the `masks` and
`linear` ops every layer shares) is one small library, built once per machine with
torch.utils.cpp_extension (ninja and a C++ compiler, against the torch already installed, so no build step
can pull another torch) into

    $RNNKIT_CACHE_DIR or ~/.cache/rnnkit (XDG_CACHE_HOME honoured) / kernels / <cell>-<tag>

so a process that runs only LSTMs compiles only the LSTM. The tag hashes the sources, the torch and Python
versions and the CPU's vector extension (AVX512, AVX2 or none: the pointwise passes use ATen's Vectorized<T>,
Sleef's exp and tanh). With torch's OpenMP the kernels are built with -fopenmp, so at::parallel_for (a
header template) splits the row passes across torch's threads (the loaded libgomp is torch's own). A
one-line notice goes to stderr while it compiles (about a minute); later processes load the cached library
in milliseconds. A machine where the build cannot run (no compiler, no ninja, a failed build) gets one
warning naming the reason (one per reason, not per library), and every layer runs the pure-torch twins
instead (kernels/scan.py, masks.bernoulli_twin, nn/cells.input_projection): slower, never different.
"""

from __future__ import annotations

import functools
import hashlib
import os
import platform
import sys
import warnings
from pathlib import Path

__all__ = ["cache_dir", "load_library"]

SOURCES = Path(__file__).with_name("csrc")
NAME = "rnnkit_kernels"
_WARNED: set[str] = set()   # the build failures already warned of
VECTOR_FLAGS = {   # torch.backends.cpu.get_cpu_capability() -> compiler flags for ATen's Vectorized<T>
    "AVX512": ["-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512dq", "-mfma", "-DCPU_CAPABILITY=AVX512",
               "-DCPU_CAPABILITY_AVX512"],
    "AVX2": ["-mavx2", "-mfma", "-DCPU_CAPABILITY=AVX2", "-DCPU_CAPABILITY_AVX2"],
}


def cache_dir() -> Path:
    """Where compiled kernels are kept: $RNNKIT_CACHE_DIR, else $XDG_CACHE_HOME/rnnkit or ~/.cache/rnnkit."""
    if os.environ.get("RNNKIT_CACHE_DIR"):
        return Path(os.environ["RNNKIT_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "rnnkit"


def _flags() -> list[str]:
    import torch

    capability = torch.backends.cpu.get_cpu_capability()
    # at::parallel_for is a header template: without -fopenmp it runs every row pass on one thread
    threads = ["-fopenmp"] if torch.backends.openmp.is_available() else []
    return ["-O3", "-std=c++17", "-fno-math-errno", *threads, *VECTOR_FLAGS.get(capability, [])]


def _tag(sources: list[Path], flags: list[str]) -> str:
    import torch

    digest = hashlib.sha256()
    for part in (torch.__version__, sys.version, platform.machine(), " ".join(flags)):
        digest.update(part.encode())
    for source in sources:
        digest.update(source.name.encode() + source.read_bytes())
    return digest.hexdigest()[:16]


@functools.cache
def load_library(cell: str) -> bool:
    """Build (first use) and load csrc/<cell>.cpp; True when its ops are in torch.ops.rnnkit, else False
    with one warning."""
    source = SOURCES / f"{cell}.cpp"
    if not source.exists():
        raise ValueError(f"no kernel source for cell {cell!r}: expected {source}")
    try:
        import torch.utils.cpp_extension as cpp

        flags = _flags()
        name = f"{NAME}_{cell}"
        directory = cache_dir() / "kernels" / f"{cell}-{_tag([source, *sorted(SOURCES.glob('*.h'))], flags)}"
        if not (directory / f"{name}.so").exists():
            cpp.verify_ninja_availability()
            directory.mkdir(parents=True, exist_ok=True)
            print(f"rnnkit: compiling the C++ {cell} kernel (once per machine, about a minute) into "
                  f"{directory}", file=sys.stderr, flush=True)
        cpp.load(name, [str(source)], extra_cflags=flags, extra_include_paths=[str(SOURCES)],
                 extra_ldflags=[flag for flag in flags if flag == "-fopenmp"],
                 build_directory=str(directory), is_python_module=False, verbose=False)
        return True
    except Exception as e:   # no compiler, no ninja, a failed build: the scan still gives the same numbers
        lines = str(e).strip().splitlines() or [type(e).__name__]
        reason = next((line.strip() for line in lines if "error:" in line), lines[-1])[:300]  # first error
        if reason not in _WARNED:   # one warning per reason: no compiler fails every library the same way
            _WARNED.add(reason)
            warnings.warn(f"rnnkit: the C++ {cell} kernel could not be built ({reason}); running the "
                          "pure-torch twins (same results, slower)", RuntimeWarning, stacklevel=2)
        return False
