"""A machine where the C++ libraries cannot be built (here: no ninja, an empty kernel cache) trains and
evaluates every variant on the pure-torch twins, with one warning naming the reason, and the same numbers as
backend "scan". Run in a fresh process, so no library is loaded already."""

import json
import subprocess
import sys

SCRIPT = r"""
import json, warnings
import torch
import torch.utils.cpp_extension as cpp

def no_ninja():
    raise RuntimeError("Ninja is required to load C++ extensions")

cpp.verify_ninja_availability = no_ninja
from rnnkit import kernels
from rnnkit import nn as rnn

torch.manual_seed(0)
layer = rnn.LSTM(3, 4, num_layers=2, bidirectional=True, layer_norm=True, zoneout=0.2, recurrent_dropout=0.1)
x = torch.randn(5, 2, 3)
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    y = layer(x)[0]
    y.sum().backward()
    masks = layer.last_masks
    with kernels.use("scan"):
        twin = layer(x, masks=masks)[0]
    layer.eval()
    layer(x)
print(json.dumps({"warnings": [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)],
                  "equal": torch.equal(y, twin), "finite": bool(torch.isfinite(y).all()),
                  "grads": all(p.grad is not None for p in layer.parameters()),
                  "available": kernels.fused_available("LSTM")}))
"""


def test_no_compiler_runs_the_twins_with_one_warning(tmp_path):
    env = {"RNNKIT_CACHE_DIR": str(tmp_path), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin",
           "HOME": str(tmp_path)}
    run = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert len(result["warnings"]) == 1, result["warnings"]
    assert "could not be built (Ninja is required" in result["warnings"][0]
    assert result["equal"] and result["finite"] and result["grads"]
    assert result["available"] is False
    assert not list(tmp_path.glob("kernels/*/*.so"))      # nothing half-built left as if it were a library
