"""`rnnkit explain` without --cell: the cell read off the weights (names, shapes); the format in --help."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from rnnkit.cli import main
from rnnkit.reference.explain import infer_cell, parse_weights, trace


def run_cli(capsys, *argv):
    code = main(["explain", *map(str, argv)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def torch_weights(cell: str, layout: str, I: int = 2, H: int = 3) -> dict:
    """A weights dict with no "cell" key, from a torch module: stacked, as its state_dict, or per gate."""
    torch.manual_seed(0)
    module = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell]
    module = module(I, H, dtype=torch.float64)
    state = {k: v.tolist() for k, v in module.state_dict().items()}  # weight_ih_l0, ...
    if layout == "state_dict":
        spec = state
    elif layout == "stacked":
        spec = {k.removesuffix("_l0"): v for k, v in state.items()}
    else:
        gates = {"rnn": "h", "lstm": "ifgo", "gru": "rzn"}[cell]
        W_ih, W_hh = np.array(state["weight_ih_l0"]), np.array(state["weight_hh_l0"])
        spec = {}
        for k, g in enumerate(gates):
            rows = slice(k * H, (k + 1) * H)
            spec[f"W_x{g}"], spec[f"W_h{g}"] = W_ih[rows].tolist(), W_hh[rows].tolist()
    return {"x": np.random.default_rng(1).normal(size=(3, I)).tolist(), **spec}


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("layout", ["per_gate", "stacked", "state_dict"])
def test_the_cell_is_read_off_the_weights(cell, layout, capsys, tmp_path):
    spec = torch_weights(cell, layout)
    assert infer_cell(spec) == cell
    inferred, told = trace(parse_weights(spec)), trace(parse_weights(spec, cell=cell))
    for a, b in zip(inferred, told, strict=True):
        np.testing.assert_array_equal(a["h"], b["h"])
    path = tmp_path / "w.json"
    path.write_text(json.dumps(spec))
    code, out, err = run_cli(capsys, "--weights", path)
    assert code == 0, err
    assert out.splitlines()[0].startswith({"rnn": "Elman RNN", "lstm": "LSTM", "gru": "GRU"}[cell])
    assert run_cli(capsys, "--weights", path, "--cell", cell)[1] == out


def test_h_equal_to_one_and_square_shapes_are_not_confused():
    # H = 4 hidden with 4 rows would be an LSTM of H = 1 only if weight_hh had 1 column: the columns decide
    assert infer_cell({"weight_hh": np.zeros((4, 4)).tolist()}) == "rnn"
    assert infer_cell({"weight_hh": np.zeros((4, 1)).tolist()}) == "lstm"
    assert infer_cell({"weight_hh": np.zeros((3, 1)).tolist()}) == "gru"


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"x": [[1.0]], "W_xh": [[1.0]], "W_hh": [[1.0]], "W_xi": [[1.0]]},
         "cell: cannot tell, the weights have per-gate keys of rnn (W_hh W_xh), lstm (W_xi); give --cell"),
        ({"x": [[1.0]], "weight_hh": np.zeros((6, 3)).tolist()},
         "cell: cannot tell from weight_hh of shape (6, 3): expected H = 3 rows (rnn), 4H = 12 (lstm) or "
         "3H = 9 (gru); give --cell"),
        ({"x": [[1.0]], "weight_hh": [1.0, 2.0]}, "cell: cannot tell from weight_hh, which is not a numeric"),
        ({"x": [[1.0]], "W_hy": [[1.0]]}, "cell: cannot tell, the weights hold no cell weights"),
    ],
)
def test_weights_that_fit_no_cell_or_several_are_an_error(spec, message, capsys, tmp_path):
    with pytest.raises(ValueError, match="cell: cannot tell"):
        parse_weights(spec)
    path = tmp_path / "w.json"
    path.write_text(json.dumps(spec))
    code, out, err = run_cli(capsys, "--weights", path)
    assert code == 2 and out == "" and message in err and len(err.splitlines()) == 1, err


def test_a_given_cell_still_wins_and_must_agree(capsys, tmp_path):
    spec = torch_weights("gru", "stacked")
    with pytest.raises(ValueError, match=r"weight_ih: expected shape \(12, 2\) \(4 gates"):
        parse_weights(spec, cell="lstm")  # told lstm: the shapes are checked against it, not re-inferred
    assert parse_weights({**spec, "cell": "gru"}).cell == "gru"


def test_help_documents_the_weights_format(capsys):
    with pytest.raises(SystemExit):
        main(["explain", "--help"])
    out = capsys.readouterr().out
    for text in ['"x"             (T, I)', "W_xi W_xf W_xg W_xo (H, I)", "b_r b_z b_xn b_hn (H,)",
                 "weight_ih (G*H, I)", "G = 1 rnn, 4 lstm, 3 gru", "rows of", "H: rnn, 4H: lstm, 3H: gru",
                 '"h0", "c0"', '"W_hy", "b_y"', '"_l0" suffix']:
        assert text in out, text
    example = out.split("example: ", 1)[1].strip()
    assert trace(parse_weights(json.loads(example)))[1]["h"].shape == (1,)  # the example runs as printed
