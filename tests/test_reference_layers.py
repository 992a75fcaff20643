"""The NumPy reference layers against three oracles: torch.nn (float64), finite differences, hand math."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch
from conftest import relative_error, run_torch, torch_twin

from rnnkit.reference.gradcheck import check_layer
from rnnkit.reference.layers import GRU, LSTM, RNN

TOL = 1e-8
MODES = ("RNN_TANH", "RNN_RELU", "LSTM", "GRU")


def make_layer(mode, input_size, hidden_size, seed=0, **kwargs):
    if mode == "LSTM":
        return LSTM(input_size, hidden_size, seed=seed, **kwargs)
    if mode == "GRU":
        return GRU(input_size, hidden_size, seed=seed, **kwargs)
    return RNN(
        input_size, hidden_size, nonlinearity="tanh" if mode == "RNN_TANH" else "relu", seed=seed, **kwargs
    )


def random_case(index):
    """A configuration drawn from a fixed seed: every mode and both directions, the rest varied."""
    mode, bidirectional = MODES[index % 4], bool((index // 4) % 2)
    rng = np.random.default_rng(1000 + index)
    return dict(
        mode=mode,
        bidirectional=bidirectional,
        num_layers=int(1 + index % 3),
        batch_first=bool(index & 8),
        bias=index % 5 != 2 and bool(rng.random() < 0.85),
        given_state=bool(rng.random() < 0.5),
        variable_lengths=bool(index & 16) or bool(rng.random() < 0.3),
        grad_on=("output", "state", "both")[index % 3 if index % 5 else 2],
        T=int(rng.integers(1, 9)),
        B=int(rng.integers(1, 5)),
        I=int(rng.integers(1, 5)),
        H=int(rng.integers(1, 6)),
        seed=index,
    )


CASES = [random_case(i) for i in range(32)]


def case_id(c):
    return (
        f"{c['mode']}-L{c['num_layers']}{'-bi' if c['bidirectional'] else ''}"
        f"{'-bf' if c['batch_first'] else ''}"
        f"{'' if c['bias'] else '-nobias'}{'-hx' if c['given_state'] else ''}"
        f"{'-lengths' if c['variable_lengths'] else ''}-d{c['grad_on']}-T{c['T']}B{c['B']}"
    )


def test_the_cases_cover_every_option():
    for key in ("bidirectional", "batch_first", "bias", "given_state", "variable_lengths"):
        assert {c[key] for c in CASES} == {False, True}, key
    assert {c["mode"] for c in CASES} == set(MODES)
    assert {c["num_layers"] for c in CASES} == {1, 2, 3}
    assert {c["grad_on"] for c in CASES} == {"output", "state", "both"}
    assert any(c["variable_lengths"] and c["T"] > 1 and c["B"] > 1 for c in CASES)


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_matches_torch(case, torch_oracle):
    rng = np.random.default_rng(case["seed"])
    ref = make_layer(
        case["mode"],
        case["I"],
        case["H"],
        seed=case["seed"],
        num_layers=case["num_layers"],
        bias=case["bias"],
        batch_first=case["batch_first"],
        bidirectional=case["bidirectional"],
    )
    T, B = case["T"], case["B"]
    x = rng.normal(size=(B, T, case["I"]) if case["batch_first"] else (T, B, case["I"]))
    hx = None
    if case["given_state"]:
        shape = (case["num_layers"] * (2 if case["bidirectional"] else 1), B, case["H"])
        hx = (
            (rng.normal(size=shape), rng.normal(size=shape))
            if case["mode"] == "LSTM"
            else rng.normal(size=shape)
        )
    lengths = None
    if case["variable_lengths"]:
        lengths = rng.integers(1, T + 1, size=B)
        lengths[rng.integers(B)] = T  # pad_packed_sequence needs one full-length sequence to restore T
    errors = torch_oracle(
        ref,
        x,
        hx,
        lengths,
        grad_output=case["grad_on"] != "state",
        grad_state=case["grad_on"] != "output",
        seed=case["seed"],
    )
    worst = max(errors, key=errors.get)
    assert errors[worst] <= TOL, f"{worst}: relative error {errors[worst]:.2e}"


def test_lengths_all_full_equal_no_lengths(torch_oracle):
    ref = LSTM(3, 4, num_layers=2, bidirectional=True, seed=1)
    x = np.random.default_rng(0).normal(size=(5, 3, 3))
    out_a, (h_a, _) = ref.forward(x, lengths=[5, 5, 5])
    out_b, (h_b, _) = ref.forward(x)
    np.testing.assert_array_equal(out_a, out_b)
    np.testing.assert_array_equal(h_a, h_b)


# ------------------------------------------------------------------------------------ truncated BPTT


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("num_layers, k", [(1, 3), (2, 2), (2, 1)])
def test_truncated_bptt_matches_torch_on_the_last_k_steps(mode, num_layers, k):
    rng = np.random.default_rng(7)
    T, B, I, H = 6, 3, 2, 4
    ref = make_layer(mode, I, H, seed=3, num_layers=num_layers)
    is_lstm = mode == "LSTM"
    x = rng.normal(size=(T, B, I))
    shape = (num_layers, B, H)
    hx = (rng.normal(size=shape), rng.normal(size=shape)) if is_lstm else rng.normal(size=shape)
    out, final = ref.forward(x, hx)
    d_out = rng.normal(size=out.shape)  # the first T-k entries must be ignored
    d_finals = [rng.normal(size=shape) for _ in range(2 if is_lstm else 1)]
    grads = ref.backward(d_out, *d_finals, truncate=k)

    module = torch_twin(ref)
    hxt = tuple(torch.tensor(h) for h in hx) if is_lstm else torch.tensor(hx)
    with torch.no_grad():
        _, state = module(torch.tensor(x[: T - k]), hxt)
    state = tuple(s.detach() for s in state) if is_lstm else state.detach()
    x_tail = torch.tensor(x[T - k :], requires_grad=True)
    out_tail, final_t = module(x_tail, state)
    loss = (out_tail * torch.tensor(d_out[T - k :])).sum()
    for f, d in zip(final_t if is_lstm else (final_t,), d_finals, strict=True):
        loss = loss + (f * torch.tensor(d)).sum()
    loss.backward()

    assert relative_error(out[T - k :], out_tail) <= TOL
    for name, p in module.named_parameters():
        assert relative_error(grads[name], p.grad) <= TOL, name
    assert relative_error(grads["input"][T - k :], x_tail.grad) <= TOL
    assert not grads["input"][: T - k].any()  # nothing flows past the truncation point
    assert not grads["h0"].any()
    for sfx, dh in ref.hidden_grads.items():
        assert not dh[: T - k].any(), sfx


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("num_layers", [1, 2])
def test_truncated_bptt_with_lengths_counts_from_each_sequence_end(mode, num_layers):
    """Oracle: per sequence, torch runs its first length-k steps without grad, then the last k with grad."""
    rng = np.random.default_rng(11)
    T, I, H, k = 6, 2, 3, 2
    lengths = [6, 3, 2, 5]  # the third fits in the window whole: full BPTT, h0 included
    B = len(lengths)
    ref = make_layer(mode, I, H, seed=4, num_layers=num_layers)
    is_lstm = mode == "LSTM"
    shape = (num_layers, B, H)
    hx = (rng.normal(size=shape), rng.normal(size=shape)) if is_lstm else rng.normal(size=shape)
    x = rng.normal(size=(T, B, I))
    out, _ = ref.forward(x, hx, lengths=lengths)
    d_out = rng.normal(size=out.shape)  # entries past a sequence's end or before its window must not count
    d_finals = [rng.normal(size=shape) for _ in range(2 if is_lstm else 1)]
    grads = ref.backward(d_out, *d_finals, truncate=k)

    module = torch_twin(ref)
    loss, tails, h0s = 0.0, [], []
    for b, n in enumerate(lengths):
        h0 = [torch.tensor(h[:, b : b + 1], requires_grad=True) for h in (hx if is_lstm else (hx,))]
        state = tuple(h0) if is_lstm else h0[0]
        if n > k:
            with torch.no_grad():
                _, state = module(torch.tensor(x[: n - k, b : b + 1]), state)
        x_tail = torch.tensor(x[max(n - k, 0) : n, b : b + 1], requires_grad=True)
        out_tail, final = module(x_tail, state)
        loss = loss + (out_tail * torch.tensor(d_out[max(n - k, 0) : n, b : b + 1])).sum()
        for f, d in zip(final if is_lstm else (final,), d_finals, strict=True):
            loss = loss + (f * torch.tensor(d[:, b : b + 1])).sum()
        tails.append(x_tail)
        h0s.append(h0)
    loss.backward()

    for name, p in module.named_parameters():
        assert relative_error(grads[name], p.grad) <= TOL, name
    for b, n in enumerate(lengths):
        start = max(n - k, 0)
        assert relative_error(grads["input"][start:n, b : b + 1], tails[b].grad) <= TOL, b
        assert not grads["input"][:start, b].any() and not grads["input"][n:, b].any(), b
        for name, h0 in zip(("h0", "c0"), h0s[b], strict=False):
            expected = h0.grad if n <= k else torch.zeros_like(h0)
            assert relative_error(grads[name][:, b : b + 1], expected) <= TOL, (name, b)
    assert grads["h0"][:, 2].any()  # the whole-window sequence does get its h0 gradient


def test_truncated_bptt_reverse_direction_counts_from_t_0():
    """In reverse each sequence ends at t = 0, so the window is t = k-1 ... 0 for every length."""
    rng = np.random.default_rng(12)
    T, B, I, H, k = 5, 3, 2, 3, 2
    ref = GRU(I, H, bidirectional=True, seed=1)
    x = rng.normal(size=(T, B, I))
    out, _ = ref.forward(x, lengths=[5, 3, 1])
    grads = ref.backward(rng.normal(size=out.shape), truncate=k)
    dh = ref.hidden_grads["_l0_reverse"]
    assert not dh[k:].any() and dh[:k, :2].all()
    assert not grads["h0"][1, :2].any() and grads["h0"][1, 2].any()  # length 1 <= k: full BPTT


def test_truncate_at_least_T_is_full_bptt():
    rng = np.random.default_rng(2)
    ref = GRU(2, 3, num_layers=2, seed=0)
    x = rng.normal(size=(4, 2, 2))
    out, _ = ref.forward(x)
    d = rng.normal(size=out.shape)
    full = ref.backward(d)
    for k in (4, 10):
        truncated = ref.backward(d, truncate=k)
        for name in full:
            np.testing.assert_allclose(truncated[name], full[name], rtol=0, atol=0)


# ------------------------------------------------------------------------------------ finite differences


@pytest.mark.parametrize(
    "mode, num_layers, bidirectional, batch_first, bias",
    [
        ("RNN_TANH", 2, True, False, True),
        ("RNN_RELU", 1, True, True, True),
        ("LSTM", 2, True, False, True),
        ("LSTM", 1, False, True, False),
        ("GRU", 2, True, True, True),
        ("GRU", 1, False, False, False),
    ],
)
def test_gradcheck_finite_differences(mode, num_layers, bidirectional, batch_first, bias):
    rng = np.random.default_rng(11)
    T, B, I, H = 4, 3, 2, 3
    ref = make_layer(
        mode,
        I,
        H,
        seed=5,
        num_layers=num_layers,
        bidirectional=bidirectional,
        batch_first=batch_first,
        bias=bias,
    )
    x = rng.normal(size=(B, T, I) if batch_first else (T, B, I))
    before = {k: v.copy() for k, v in ref.params.items()}
    err = check_layer(ref, x, lengths=[4, 2, 3], seed=1)
    assert err < 1e-6
    for name, value in ref.params.items():  # the check restores every parameter exactly
        np.testing.assert_array_equal(value, before[name])


# ------------------------------------------------------------------------------------ a hand-checked number


def test_one_unit_rnn_by_hand():
    """h_t = tanh(w_ih x_t + b_ih + w_hh h_{t-1} + b_hh), w_ih = 0.5, w_hh = -1, b_ih = 0.1, b_hh = 0.2."""
    rnn = RNN(1, 1)
    rnn.load_state_dict(
        {"weight_ih_l0": [[0.5]], "weight_hh_l0": [[-1.0]], "bias_ih_l0": [0.1], "bias_hh_l0": [0.2]}
    )
    out, h_n = rnn.forward(np.array([1.0, 2.0]).reshape(2, 1, 1))
    h1 = math.tanh(0.5 * 1.0 + 0.3)  # tanh(0.8)
    h2 = math.tanh(0.5 * 2.0 + 0.3 - h1)  # tanh(1.3 - h1)
    assert abs(h1 - 0.664036770267849) < 1e-15  # hand: tanh(0.8)
    assert abs(h2 - 0.562144695283261) < 1e-15
    np.testing.assert_allclose(out.ravel(), [h1, h2], rtol=1e-15)
    np.testing.assert_allclose(h_n.ravel(), [h2], rtol=1e-15)
    # L = h2: dL/dw_hh = (1 - h2^2) h1 (h0 = 0 adds nothing); dL/dx_1 = (1 - h2^2) w_hh (1 - h1^2) w_ih
    d_out = np.array([0.0, 1.0]).reshape(2, 1, 1)
    grads = rnn.backward(d_out)
    a2, a1 = 1 - h2 * h2, 1 - h1 * h1
    np.testing.assert_allclose(grads["weight_hh_l0"].ravel(), [a2 * h1], rtol=1e-14)
    np.testing.assert_allclose(grads["weight_ih_l0"].ravel(), [a2 * 2.0 + a2 * -1.0 * a1 * 1.0], rtol=1e-14)
    np.testing.assert_allclose(grads["input"].ravel(), [a2 * -1.0 * a1 * 0.5, a2 * 0.5], rtol=1e-14)
    np.testing.assert_allclose(grads["h0"].ravel(), [a2 * -1.0 * a1 * -1.0], rtol=1e-14)


# ------------------------------------------------------------------------------------ state dicts


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
def test_loads_a_torch_state_dict(kind):
    torch.manual_seed(0)
    model = getattr(torch.nn, kind)(3, 4, num_layers=2, bidirectional=True)  # float32, torch's own init
    ref = {"RNN": RNN, "LSTM": LSTM, "GRU": GRU}[kind](3, 4, num_layers=2, bidirectional=True)
    ref.load_state_dict(model.state_dict())  # tensors as they come, float32
    model = model.double()
    x = np.random.default_rng(0).normal(size=(5, 2, 3))
    out, _ = ref.forward(x)
    with torch.no_grad():
        out_t, _ = model(torch.tensor(x))
    assert relative_error(out, out_t) <= TOL
    for name, value in model.state_dict().items():
        assert ref.params[name].dtype == np.float64
        np.testing.assert_array_equal(ref.params[name], value.numpy())


def test_state_dict_round_trip():
    a = LSTM(2, 3, num_layers=2, bidirectional=True, bias=False, seed=1)
    b = LSTM(2, 3, num_layers=2, bidirectional=True, bias=False, seed=2)
    b.load_state_dict(a.state_dict())
    x = np.random.default_rng(0).normal(size=(4, 2, 2))
    np.testing.assert_array_equal(a.forward(x)[0], b.forward(x)[0])
    assert sorted(a.state_dict()) == sorted(torch_twin(a).state_dict())
    b.params["weight_hh_l0"][0, 0] += 1.0  # loading copied the arrays: a is untouched
    assert a.params["weight_hh_l0"][0, 0] != b.params["weight_hh_l0"][0, 0]


def test_bad_state_dicts():
    ref = GRU(2, 3)
    sd = ref.state_dict()
    with pytest.raises(ValueError, match=r"missing \['bias_hh_l0'\]"):
        ref.load_state_dict({k: v for k, v in sd.items() if k != "bias_hh_l0"})
    with pytest.raises(ValueError, match=r"unexpected \['weight_ih_l1'\]"):
        ref.load_state_dict({**sd, "weight_ih_l1": sd["weight_ih_l0"]})
    with pytest.raises(ValueError, match=r"weight_hh_l0: expected shape \(9, 3\), got \(9, 4\)"):
        ref.load_state_dict({**sd, "weight_hh_l0": np.zeros((9, 4))})
    with pytest.raises(ValueError, match="missing"):
        RNN(2, 3, bias=False).load_state_dict(RNN(2, 3).state_dict())
    before = {k: v.copy() for k, v in sd.items()}
    with pytest.raises(ValueError, match="weight_hh_l0: expected shape"):  # nothing is written
        ref.load_state_dict({**{k: v + 1.0 for k, v in sd.items()}, "weight_hh_l0": np.zeros((9, 4))})
    assert all(np.array_equal(ref.params[k], before[k]) for k in sd)


def test_load_state_dict_writes_in_place_so_an_optimiser_sees_it():
    from rnnkit.reference.optim import SGD

    ref, source = LSTM(2, 3, seed=1), LSTM(2, 3, seed=2)
    arrays = dict(ref.params)
    optimizer = SGD(ref.params, lr=0.1)
    ref.load_state_dict(source.state_dict())
    assert all(ref.params[k] is arrays[k] for k in arrays)  # the same arrays, new values
    grads = {k: np.ones_like(v) for k, v in ref.params.items()}
    optimizer.step(grads)
    for k in arrays:
        np.testing.assert_allclose(ref.params[k], source.params[k] - 0.1)


# ------------------------------------------------------------------------------------ bad input


def test_bad_inputs_fail_with_the_numbers():
    rnn = RNN(3, 4, num_layers=2)
    x = np.zeros((5, 2, 3))
    with pytest.raises(ValueError, match=r"3 dimensions, got 2"):
        rnn.forward(np.zeros((5, 3)))
    with pytest.raises(ValueError, match=r"Expected 3, got 4"):
        rnn.forward(np.zeros((5, 2, 4)))
    with pytest.raises(ValueError, match=r"expected shape \(2, 2, 4\), got \(1, 2, 4\)"):
        rnn.forward(x, np.zeros((1, 2, 4)))
    with pytest.raises(ValueError, match=r"lengths must lie in \[1, 5\].*min 0"):
        rnn.forward(x, lengths=[0, 5])
    with pytest.raises(ValueError, match=r"lengths must lie in \[1, 5\].*max 6"):
        rnn.forward(x, lengths=[6, 5])
    with pytest.raises(ValueError, match=r"lengths: expected shape \(2,\).*got \(3,\)"):
        rnn.forward(x, lengths=[5, 5, 5])
    bad = x.copy()
    bad[1, 0, 2] = np.nan
    with pytest.raises(ValueError, match=r"input must be finite, got nan at index \(1, 0, 2\)"):
        rnn.forward(bad)
    bad[1, 0, 2] = np.inf
    with pytest.raises(ValueError, match=r"input must be finite, got inf"):
        rnn.forward(bad)


@pytest.mark.parametrize("batch_first", [False, True])
def test_empty_input_fails_at_the_boundary(batch_first):
    for layer in (RNN(3, 4, batch_first=batch_first), LSTM(3, 4, batch_first=batch_first)):
        for T, B in ((0, 2), (5, 0)):
            shape = (B, T, 3) if batch_first else (T, B, 3)
            layout = "(B, T, I)" if batch_first else "(T, B, I)"
            expected = re.escape(f"at least one time step and one sequence, got shape {shape} {layout}")
            with pytest.raises(ValueError, match=expected):
                layer.forward(np.zeros(shape))


def test_lstm_state_must_be_a_pair():
    lstm = LSTM(3, 4)
    x = np.zeros((5, 2, 3))
    with pytest.raises(ValueError, match=r"\(h_0, c_0\), got a ndarray of shape \(1, 2, 4\)"):
        lstm.forward(x, np.zeros((1, 2, 4)))
    with pytest.raises(ValueError, match=r"\(h_0, c_0\), got a tuple of length 3"):
        lstm.forward(x, (np.zeros((1, 2, 4)),) * 3)
    with pytest.raises(ValueError, match=r"\(h_0, c_0\), got a list of length 1"):
        lstm.forward(x, [np.zeros((1, 2, 4))])
    with pytest.raises(ValueError, match=r"c_0: expected shape \(1, 2, 4\), got \(1, 3, 4\)"):
        lstm.forward(x, (np.zeros((1, 2, 4)), np.zeros((1, 3, 4))))


def test_bad_backward_calls():
    gru = GRU(3, 4, bidirectional=True, batch_first=True)
    with pytest.raises(RuntimeError, match="forward"):
        gru.backward(np.zeros((2, 5, 8)))
    out, _ = gru.forward(np.zeros((2, 5, 3)))
    assert out.shape == (2, 5, 8)
    with pytest.raises(ValueError, match=r"d_output: expected shape \(2, 5, 8\), got \(5, 2, 8\)"):
        gru.backward(np.zeros((5, 2, 8)))
    with pytest.raises(ValueError, match=r"d_h_n: expected shape \(2, 2, 4\), got \(1, 2, 4\)"):
        gru.backward(np.zeros((2, 5, 8)), np.zeros((1, 2, 4)))
    with pytest.raises(ValueError, match="truncate must be a positive integer.*got 0"):
        gru.backward(np.zeros((2, 5, 8)), truncate=0)


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="hidden_size must be a positive integer, got 0"):
        RNN(3, 0)
    with pytest.raises(ValueError, match="nonlinearity must be 'tanh' or 'relu', got 'sigmoid'"):
        RNN(3, 4, nonlinearity="sigmoid")


def test_run_torch_helper_handles_unsorted_lengths():
    """The oracle itself: packed torch output at valid steps equals torch run on each sequence alone."""
    module = torch.nn.GRU(2, 3, dtype=torch.float64)
    x = torch.randn(4, 3, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    lengths = [2, 4, 1]
    out, h_n = run_torch(module, x, None, lengths)
    for b, n in enumerate(lengths):
        alone, h_alone = module(x[:n, b : b + 1])
        assert torch.allclose(out[:n, b], alone[:, 0], rtol=1e-12, atol=0)
        assert torch.allclose(h_n[:, b], h_alone[:, 0], rtol=1e-12, atol=0)
        assert not out[n:, b].any()
