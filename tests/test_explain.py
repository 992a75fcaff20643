"""`rnnkit explain`: the tutorial example checked by hand, every cell against torch.nn (float64), bad input.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from rnnkit import reference
from rnnkit.cli import main
from rnnkit.reference.explain import default_example, parse_weights, trace

TUTORIAL_X = [[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]]
W_XH = [[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]]
W_HH = [[0.7, 0.8, 0.9], [0.1, 0.2, 0.3], [0.4, 0.5, 0.6]]
W_HY = [[0.7, 0.8, 0.9], [0.1, 0.2, 0.3]]


def run_cli(capsys, *argv):
    """rnnkit.cli.main(argv) -> (exit code, stdout, stderr)."""
    code = main(["explain", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def printed(out: str, name: str) -> np.ndarray:
    """The value the trace prints for quantity `name` (e.g. "h_2"): the last '= [...]' line of its block."""
    lines = out.splitlines()
    start = next(k for k, line in enumerate(lines) if line.strip().startswith(f"{name} = "))
    last = None
    for line in lines[start + 1 :]:
        if not line.startswith("   "):
            break
        if line.strip().startswith("= ["):
            last = line.strip()[2:]
    return np.array(json.loads(last))


# ----------------------------------------------------------------------------------- the tutorial, by hand


def test_tutorial_numbers_by_hand():
    steps = trace(parse_weights(default_example("rnn")))
    # a_1 = W_xh x_1 (h_0 = 0, no biases)
    a1 = [0.1 * 0.1 + 0.2 * 0.2, 0.3 * 0.1 + 0.4 * 0.2, 0.5 * 0.1 + 0.6 * 0.2]
    assert a1 == pytest.approx([0.05, 0.11, 0.17], abs=1e-15)
    np.testing.assert_allclose(steps[0]["a"], [0.05, 0.11, 0.17], atol=1e-15)
    # h_1 = tanh(a_1): tanh(0.05) = 0.049958374958, tanh(0.11) = 0.109558470214, tanh(0.17) = 0.168381045871
    # (series check: tanh(u) = u - u^3/3 + 2u^5/15 - ..., e.g. 0.05 - 0.0000416667 + 0.0000000417)
    h1 = [0.049958374958, 0.109558470214, 0.168381045871]
    np.testing.assert_allclose(steps[0]["h"], h1, atol=1e-11)
    # y_1 = W_hy h_1
    y1 = [0.7 * h1[0] + 0.8 * h1[1] + 0.9 * h1[2], 0.1 * h1[0] + 0.2 * h1[1] + 0.3 * h1[2]]
    assert y1 == pytest.approx([0.274160579926, 0.077421845300], abs=1e-11)
    np.testing.assert_allclose(steps[0]["y"], y1, atol=1e-11)
    # a_2 = W_xh x_2 + W_hh h_1, with W_xh x_2 = [0.1*0.3 + 0.2*0.4, 0.3*0.3 + 0.4*0.4, 0.5*0.3 + 0.6*0.4]
    a2 = [
        0.11 + 0.7 * h1[0] + 0.8 * h1[1] + 0.9 * h1[2],
        0.25 + 0.1 * h1[0] + 0.2 * h1[1] + 0.3 * h1[2],
        0.39 + 0.4 * h1[0] + 0.5 * h1[1] + 0.6 * h1[2],
    ]
    assert a2 == pytest.approx([0.384160579926, 0.327421845300, 0.565791212613], abs=1e-11)
    np.testing.assert_allclose(steps[1]["a"], a2, atol=1e-11)
    # h_2 = tanh(a_2)
    h2 = [0.366315230114, 0.316202291345, 0.512261623648]
    assert [math.tanh(v) for v in a2] == pytest.approx(h2, abs=1e-11)
    np.testing.assert_allclose(steps[1]["h"], h2, atol=1e-11)
    np.testing.assert_allclose(steps[1]["y"], [0.970417955439, 0.253550468375], atol=1e-11)


def test_tutorial_printout(capsys):
    code, out, err = run_cli(capsys)
    assert code == 0 and err == ""
    assert "a_1 = W_xh x_1 + W_hh h_0\n" in out
    assert "= [0.1*0.1 + 0.2*0.2, 0.3*0.1 + 0.4*0.2, 0.5*0.1 + 0.6*0.2]\n" in out
    assert "= [0.05, 0.11, 0.17]\n" in out
    assert "h_1 = tanh(a_1)\n" in out and "= tanh([0.05, 0.11, 0.17])\n" in out
    assert "= [0.05, 0.1096, 0.1684]\n" in out
    assert "y_1 = W_hy h_1\n" in out and "= [0.2742, 0.0774]\n" in out
    assert "= [0.3842, 0.3274, 0.5658]\n" in out  # a_2
    assert "= [0.3663, 0.3162, 0.5123]\n" in out  # h_2
    _, out6, _ = run_cli(capsys, "--precision", "6")
    assert "= [0.049958, 0.109558, 0.168381]\n" in out6
    _, out1, _ = run_cli(capsys, "--precision", "1")
    assert "= [0.1, 0.1, 0.2]\n" in out1  # h_1 rounded to one decimal


def test_tutorial_against_reference_engine_and_torch(capsys):
    x = np.array(TUTORIAL_X)  # (T, I)
    ours = reference.RNN(2, 3, bias=False)
    ours.load_state_dict({"weight_ih_l0": W_XH, "weight_hh_l0": W_HH})
    ref_out, _ = ours.forward(x[:, None, :])  # (T, 1, H)
    rnn = torch.nn.RNN(2, 3, bias=False, dtype=torch.float64)
    with torch.no_grad():
        rnn.weight_ih_l0.copy_(torch.tensor(W_XH, dtype=torch.float64))
        rnn.weight_hh_l0.copy_(torch.tensor(W_HH, dtype=torch.float64))
        torch_out, _ = rnn(torch.tensor(x)[:, None, :])
    torch_out = torch_out[:, 0].numpy()
    steps = trace(parse_weights(default_example("rnn")))
    _, out, _ = run_cli(capsys, "--precision", "12")
    for t, step in enumerate(steps):
        np.testing.assert_allclose(step["h"], ref_out[t, 0], rtol=0, atol=1e-14)
        np.testing.assert_allclose(step["h"], torch_out[t], rtol=0, atol=1e-14)
        np.testing.assert_allclose(step["y"], np.array(W_HY) @ torch_out[t], rtol=0, atol=1e-14)
        np.testing.assert_allclose(printed(out, f"h_{t + 1}"), torch_out[t], rtol=0, atol=1e-12)


# ----------------------------------------------------------------------------------- random weights vs torch


def torch_params(module):
    return {k.removesuffix("_l0"): v.detach().numpy() for k, v in module.state_dict().items()}


def per_gate_spec(cell, p, H):
    """Split torch's stacked weights per gate, the way a user would write them by hand."""
    gates = {"rnn": "h", "lstm": "ifgo", "gru": "rzn"}[cell]
    spec = {}
    for k, g in enumerate(gates):
        rows = slice(k * H, (k + 1) * H)
        spec[f"W_x{g}"] = p["weight_ih"][rows].tolist()
        spec[f"W_h{g}"] = p["weight_hh"][rows].tolist()
        if cell == "gru" and g == "n":
            spec["b_xn"], spec["b_hn"] = p["bias_ih"][rows].tolist(), p["bias_hh"][rows].tolist()
        else:
            spec[f"b_{g}"] = (p["bias_ih"][rows] + p["bias_hh"][rows]).tolist()
    return spec


CELLS = [("rnn", "tanh"), ("rnn", "relu"), ("lstm", None), ("gru", None)]
LAYOUTS = ["per_gate", "stacked", "state_dict"]


@pytest.mark.parametrize("cell,nonlinearity", CELLS)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_random_weights_through_cli_match_torch(capsys, tmp_path, cell, nonlinearity, layout):
    T, I, H, O = 4, 3, 3, 2
    torch.manual_seed(10 * CELLS.index((cell, nonlinearity)) + LAYOUTS.index(layout))
    if cell == "rnn":
        module = torch.nn.RNN(I, H, nonlinearity=nonlinearity, dtype=torch.float64)
    else:
        module = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell](I, H, dtype=torch.float64)
    x, h0, c0 = (torch.randn(n, dtype=torch.float64) for n in ((T, I), (H,), (H,)))
    W_hy, b_y = torch.randn(O, H, dtype=torch.float64), torch.randn(O, dtype=torch.float64)
    with torch.no_grad():
        hx = (h0[None, None], c0[None, None]) if cell == "lstm" else h0[None, None]
        out, _ = module(x[:, None, :], hx)
    h_torch = out[:, 0].numpy()  # (T, H)

    p = torch_params(module)
    if layout == "per_gate":
        spec = per_gate_spec(cell, p, H)
    elif layout == "stacked":
        spec = {k: v.tolist() for k, v in p.items()}
    else:
        spec = {k: v.tolist() for k, v in module.state_dict().items()}  # weight_ih_l0, ...
    spec.update(cell=cell, x=x.tolist(), h0=h0.tolist(), W_hy=W_hy.tolist(), b_y=b_y.tolist())
    if nonlinearity:
        spec["nonlinearity"] = nonlinearity
    if cell == "lstm":
        spec["c0"] = c0.tolist()
    path = tmp_path / "weights.json"
    path.write_text(json.dumps(spec))

    code, printout, err = run_cli(capsys, "--weights", str(path), "--precision", "12", "--softmax")
    assert code == 0, err
    steps = trace(parse_weights(json.loads(path.read_text())), softmax=True)
    h_prev, c_prev = h0, c0
    for t in range(T):
        np.testing.assert_allclose(steps[t]["h"], h_torch[t], rtol=0, atol=1e-13)
        np.testing.assert_allclose(printed(printout, f"h_{t + 1}"), h_torch[t], rtol=0, atol=1e-11)
        y = W_hy.numpy() @ h_torch[t] + b_y.numpy()
        np.testing.assert_allclose(steps[t]["y"], y, rtol=0, atol=1e-13)
        np.testing.assert_allclose(printed(printout, f"y_{t + 1}"), y, rtol=0, atol=1e-11)
        np.testing.assert_allclose(steps[t]["p"], torch.softmax(torch.tensor(y), 0).numpy(), atol=1e-14)
        if cell != "rnn":  # every gate, recomputed with torch ops from torch's stacked weights
            gates = torch_gates(cell, p, x[t], h_prev, c_prev)
            for name, value in gates.items():
                label = f"{name}_{t + 1}"
                np.testing.assert_allclose(steps[t][name], value, rtol=0, atol=1e-13, err_msg=label)
                np.testing.assert_allclose(printed(printout, label), value, rtol=0, atol=1e-11, err_msg=label)
            c_prev = torch.tensor(gates["c"]) if cell == "lstm" else None
        h_prev = torch.tensor(h_torch[t])


def torch_gates(cell, p, x, h, c):
    """One step's gates from torch's stacked (G*H, .) weights, in torch ops, as torch.nn's docs write them."""
    W_ih, W_hh, b_ih, b_hh = (torch.tensor(p[k]) for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
    xp, hp = W_ih @ x + b_ih, W_hh @ h + b_hh
    if cell == "lstm":
        i, f, g, o = (xp + hp).chunk(4)
        i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
        c = f * c + i * g
        return {k: v.numpy() for k, v in dict(i=i, f=f, g=g, o=o, c=c, h=o * torch.tanh(c)).items()}
    x_r, x_z, x_n = xp.chunk(3)
    h_r, h_z, h_n = hp.chunk(3)
    r, z = torch.sigmoid(x_r + h_r), torch.sigmoid(x_z + h_z)
    n = torch.tanh(x_n + r * h_n)
    return {k: v.numpy() for k, v in dict(r=r, z=z, n=n, hn=h_n, h=(1 - z) * n + z * h).items()}


def test_default_lstm_and_gru_examples_run(capsys):
    for cell, names in (("lstm", ["i_1", "f_1", "g_1", "o_1", "c_1", "h_3", "y_3"]),
                        ("gru", ["r_1", "z_1", "n_1", "h_3", "y_3"])):
        code, out, err = run_cli(capsys, "--cell", cell, "--seed", "3")
        assert code == 0, err
        for name in names:
            assert printed(out, name).size > 0
    code, out, _ = run_cli(capsys, "--set", "x=[[1, -1]]", "--set", "h0=[0.5, 0, 0]",
                           "--nonlinearity", "relu")
    assert code == 0 and "h_1 = relu(a_1)" in out and "t = 2" not in out
    # a_1 = W_xh [1, -1] + W_hh [0.5, 0, 0] = [0.1 - 0.2 + 0.35, 0.3 - 0.4 + 0.05, 0.5 - 0.6 + 0.2]
    np.testing.assert_allclose(printed(out, "a_1"), [0.25, -0.05, 0.1], atol=1e-12)
    np.testing.assert_allclose(printed(out, "h_1"), [0.25, 0, 0.1], atol=1e-12)


# ----------------------------------------------------------------------------------- bad input


def write(tmp_path, text):
    path = tmp_path / "w.json"
    path.write_text(text)
    return str(path)


def base(**changes):
    spec = {"x": TUTORIAL_X, "W_xh": W_XH, "W_hh": W_HH, "W_hy": W_HY}
    spec.update(changes)
    return json.dumps({k: v for k, v in spec.items() if v is not None})


@pytest.mark.parametrize(
    "text,args,message",
    [
        ('{"x": [[0.1, 0.2]], "W_xh": ', [], "not valid JSON (Expecting value at line 1"),
        ("[1, 2]", [], "expected a JSON object"),
        (base(W_xh=[[0.1, 0.2, 0.3]] * 3), [],
         "W_xh: expected shape (3, 2) (H=3 hidden x I=2 inputs), got (3, 3)"),
        (base(W_hh=[[0.1, 0.2]] * 2), [],
         "W_xh: expected shape (2, 2) (H=2 hidden x I=2 inputs), got (3, 2)"),
        (base(x=[0.1, 0.2]), [], "x: expected shape (?, ?)"),
        (base(x=[[0.1, 0.2], [0.3]]), [], "x: expected a numeric array"),
        (base(x=[[0.1, "a"]]), [], "x: expected a numeric array"),
        (base(W_hh=None), [], "missing keys ['W_hh'] for cell rnn"),
        (base(x=None), [], "missing keys ['x']"),
        (base(h0=[0, 0]), [], "h0: expected shape (3,) (H=3 hidden), got (2,)"),
        (base(b_y=[1, 2, 3]), [], "b_y: expected shape (2,) (O=2 outputs), got (3,)"),
        (base(W_hy=[[1, 2]]), [], "W_hy: expected shape (?, 3) (O outputs x H=3 hidden), got (1, 2)"),
        (base(x=[[0.1, float("nan")]]), [], "x must be finite, got nan at index (0, 1)"),
        (base(W_xy=[[1]]), [], "unexpected keys ['W_xy'] for cell rnn"),
        (base(c0=[0, 0, 0]), [], "unexpected keys ['c0'] for cell rnn"),
        (base(weight_ih=W_XH), [], "per gate or stacked, not both"),
        (base(cell="gru"), ["--cell", "lstm"],
         "cell: the weights say 'gru' but the command line says 'lstm'"),
        (base(cell="elman"), [], "cell: expected one of ['rnn', 'lstm', 'gru'], got 'elman'"),
        (base(W_hy=None), ["--softmax"], "softmax needs an output layer"),
        (base(), ["--precision", "-1"], "precision: expected an integer number of digits in [0, 17], got -1"),
        (base(), ["--set", "h0"], "expected KEY=JSON"),
        (base(), ["--set", "h0=[0,"], "h0: not valid JSON"),
        (base(x=[]), [], "x: expected shape (?, ?)"),
    ],
)
def test_bad_input_is_a_clear_error(capsys, tmp_path, text, args, message):
    code, out, err = run_cli(capsys, "--weights", write(tmp_path, text), *args)
    assert code == 2 and out == ""
    assert err.startswith("rnnkit explain: error: ") and message in err, err


def test_bad_input_without_a_file(capsys, tmp_path):
    code, _, err = run_cli(capsys, "--weights", str(tmp_path / "missing.json"))
    assert code == 2 and "weights file not found" in err
    code, _, err = run_cli(capsys, "--cell", "lstm", "--nonlinearity", "relu")
    assert code == 2 and "only the rnn cell takes one, got 'relu' for lstm" in err
    spec = json.loads(base(cell="lstm", W_xh=None, W_hh=None))
    with pytest.raises(ValueError, match=r"missing keys \['W_xi', 'W_xf', 'W_xg', 'W_xo', 'W_hi'"):
        parse_weights(spec)
    zeros = np.zeros((9, 2)).tolist(), np.zeros((9, 3)).tolist()  # 3 gates' rows: an LSTM needs 4
    stacked = {"x": TUTORIAL_X, "weight_ih": zeros[0], "weight_hh": zeros[1]}
    with pytest.raises(ValueError, match=r"weight_ih: expected shape \(12, 2\) \(4 gates \* H=3 hidden"):
        parse_weights(stacked, cell="lstm")
