"""How fast the command line answers: `rnnkit --help`, `rnnkit explain`, `rnnkit train --help` against a bare
`python -c pass` and `python -c "import torch"` in the same run (each a fresh process; median wall time).

    .venv/bin/python benchmarks/startup.py --repeats 7

`rnnkit --help` and `rnnkit explain` must not import torch or Lightning (target: under 1 s, i.e. close to the
bare interpreter); `rnnkit train --help` needs the task's config classes, so it pays for torch.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from timing import median_ms  # noqa: E402

COMMANDS = {
    "python -c pass (baseline)": [sys.executable, "-c", "pass"],
    "python -c 'import torch' (baseline)": [sys.executable, "-c", "import torch"],
    "rnnkit --help": [sys.executable, "-m", "rnnkit", "--help"],
    "rnnkit --version": [sys.executable, "-m", "rnnkit", "--version"],
    "rnnkit explain": [sys.executable, "-m", "rnnkit", "explain"],
    "rnnkit train --help": [sys.executable, "-m", "rnnkit", "train", "--help"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def runner(argv):
        return lambda: subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, check=True)

    times = median_ms({name: runner(argv) for name, argv in COMMANDS.items()}, args.repeats, warmup=1)
    base = times["python -c pass (baseline)"]
    print("| command | median (ms) | / python -c pass |\n|---|---:|---:|")
    for name, ms in times.items():
        print(f"| `{name}` | {ms:.0f} | {ms / base:.1f} |")


if __name__ == "__main__":
    main()
