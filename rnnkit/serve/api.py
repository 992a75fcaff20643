"""The playground's numbers: the explain trace and the reference BPTT as JSON; gradient norms through time.

Every number the page shows comes from here, and everything here comes from `rnnkit.reference`: the forward
pass is `explain_trace.trace` (what `rnnkit explain` prints), the backward pass is the reference layer's
hand-written BPTT (`layers.RecurrentLayer.backward`), the gradient norms are `diagnostics.gradient_flow`.
This module never imports torch.

    POST /api/trace            {cell, weights: "random" | "tutorial" | {...}, input_size, hidden_size,
                                output_size, seed, x, steps, h0, c0, nonlinearity, softmax, loss, targets}
    POST /api/gradient-norms   {cells, T, H, forget_bias, weight_scale, seed}

The backward pass of a trace uses the loss L = 1/2 sum_{t in S} ||y_t - y*_t||^2, with S the last step only
("loss": "last", the default, as in `gradient_flow`) or every step ("all"), y*_t the "targets" (default 0)
and y_t = h_t when the weights have no output layer W_hy. Then, from the last step back,

    dL/dy_t = y_t - y*_t  (t in S, else 0)
    dL/dh_t = W_hy^T dL/dy_t  +  (dh_{t+1}/dh_t)^T dL/dh_{t+1}      (direct  +  from the future)

`trace_payload(request)` and `gradient_norms_payload(request)` take the decoded JSON body and return the
response as a dict; a bad request raises `ApiError` (status, one-line message).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from rnnkit.reference.diagnostics import KINDS, gradient_flow
from rnnkit.reference.explain import ExplainInput, default_example, parse_weights, trace
from rnnkit.reference.explain_trace import GATES, Apply, Bias, MatVec, Product
from rnnkit.reference.layers import GRU, LSTM, RNN

__all__ = ["ApiError", "LIMITS", "Limits", "trace_payload", "gradient_norms_payload", "check_keys",
           "integer", "number", "choice"]


class ApiError(ValueError):
    """A request the API refuses: the HTTP status and a one-line message for the page."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Limits:
    """What one request may ask for; the page reads them from GET /api/limits."""

    body_bytes: int = 1_000_000  # a JSON request
    model_bytes: int = 64 * 2**20  # an uploaded model file
    trace_steps: int = 64  # T of a trace
    trace_hidden: int = 16  # H of a trace: the diagram shows every unit
    trace_input: int = 16  # I
    trace_output: int = 16  # O
    gradient_steps: int = 500  # T of the gradient norms
    gradient_hidden: int = 256  # H of the gradient norms
    text_chars: int = 4000  # text coloured by a hidden unit
    generate_tokens: int = 500  # tokens of a generated continuation
    classify_tokens: int = 1000  # tokens of a classified text (the model reads each of its T prefixes)
    model_gradient_steps: int = 300  # T of a trained model's gradient norms
    model_gradient_windows: int = 32  # windows (B) of text they average over

    def to_json(self) -> dict:
        return asdict(self)


LIMITS = Limits()

TRACE_KEYS = ("cell", "nonlinearity", "weights", "input_size", "hidden_size", "output_size", "seed", "x",
              "steps", "h0", "c0", "softmax", "loss", "targets")
GRADIENT_KEYS = ("cells", "T", "H", "forget_bias", "weight_scale", "seed", "input_size", "batch_size")
LAYERS = {"rnn": RNN, "lstm": LSTM, "gru": GRU}


# ----------------------------------------------------------------------------------- request fields


def check_keys(request, known) -> dict:
    """The request as a dict with only `known` keys; ApiError naming the unexpected ones."""
    if not isinstance(request, dict):
        raise ApiError(f"expected a JSON object, got {type(request).__name__}")
    unknown = sorted(set(request) - set(known))
    if unknown:
        raise ApiError(f"unexpected keys {unknown}; expected keys among {list(known)}")
    return request


def integer(request: dict, key: str, default: int, low: int, high: int, what: str = "") -> int:
    """request[key] (or `default`) as an int in [low, high]; ApiError with the numbers otherwise."""
    value = request.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ApiError(f"{key}: expected an integer, got {value!r}")
    if not low <= value <= high:
        limit = f" (the server's limit{what})" if value > high else ""
        raise ApiError(f"{key}: expected {low} <= {key} <= {high}{limit}, got {value}")
    return value


def number(request: dict, key: str, default: float, low: float, high: float) -> float:
    """request[key] (or `default`) as a finite float in [low, high]."""
    value = request.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ApiError(f"{key}: expected a finite number, got {value!r}")
    if not low <= value <= high:
        raise ApiError(f"{key}: expected {low} <= {key} <= {high}, got {value}")
    return float(value)


def choice(request: dict, key: str, default, allowed):
    value = request.get(key, default)
    if value not in allowed:
        raise ApiError(f"{key}: expected one of {list(allowed)}, got {value!r}")
    return value


# ----------------------------------------------------------------------------------- weights


def random_weights(cell: str, nonlinearity: str, input_size: int, hidden_size: int, output_size: int,
                   steps: int, seed: int) -> dict:
    """Weights in torch's stacked layout from the reference layer's own initialisation with `seed`
    (U(-1/sqrt(H), 1/sqrt(H))), an output layer of the same law and x ~ N(0, 1): an explain weights dict."""
    kwargs = {"nonlinearity": nonlinearity} if cell == "rnn" else {}
    layer = LAYERS[cell](input_size, hidden_size, seed=seed, **kwargs)
    spec = {"cell": cell, **{name.removesuffix("_l0"): p.tolist() for name, p in layer.params.items()}}
    if cell == "rnn":
        spec["nonlinearity"] = nonlinearity
    rng = np.random.default_rng([seed, 1])  # a stream apart from the layer's
    spec["x"] = rng.normal(size=(steps, input_size)).tolist()  # (T, I)
    if output_size:
        bound = 1.0 / math.sqrt(hidden_size)
        spec["W_hy"] = rng.uniform(-bound, bound, (output_size, hidden_size)).tolist()  # (O, H)
        spec["b_y"] = rng.uniform(-bound, bound, output_size).tolist()  # (O,)
    return spec


def _weights_spec(request: dict) -> tuple[dict, str | None]:
    """The explain weights dict a trace request describes, and the cell it names (None: read off weights)."""
    cell = request.get("cell")
    if cell is not None:
        cell = choice(request, "cell", None, tuple(GATES))
    weights = request.get("weights", "random")
    seed = integer(request, "seed", 0, 0, 2**31 - 1)
    if weights == "random":
        sizes = {
            "input_size": integer(request, "input_size", 2, 1, LIMITS.trace_input),
            "hidden_size": integer(request, "hidden_size", 3, 1, LIMITS.trace_hidden, " for a trace"),
            "output_size": integer(request, "output_size", 2, 0, LIMITS.trace_output),
            "steps": integer(request, "steps", 3, 1, LIMITS.trace_steps),
        }
        nonlinearity = choice(request, "nonlinearity", "tanh", ("tanh", "relu"))
        spec = random_weights(cell or "rnn", nonlinearity, seed=seed, **sizes)
    elif weights == "tutorial":
        spec = default_example(cell or "rnn", seed)
    elif isinstance(weights, dict):
        spec = dict(weights)
    else:
        raise ApiError(f"weights: expected \"random\", \"tutorial\" or a JSON object of weights, got "
                       f"{weights!r}")
    for key in ("x", "h0", "c0"):
        if key in request:
            spec[key] = request[key]
    return spec, cell


def _check_sizes(inp: ExplainInput) -> None:
    (T, I), H = inp.x.shape, len(inp.h0)
    O = 0 if inp.W_hy is None else inp.W_hy.shape[0]
    for name, value, high in (("x: time steps T", T, LIMITS.trace_steps), ("x: input size I", I,
                              LIMITS.trace_input), ("hidden size H", H, LIMITS.trace_hidden),
                              ("output size O", O, LIMITS.trace_output)):
        if value > high:
            raise ApiError(f"{name} is {value}, the server's limit for a trace is {high}")
    if T == 0:
        raise ApiError("x: the input sequence has no time steps; give at least one row")


def stacked_params(inp: ExplainInput) -> dict[str, np.ndarray]:
    """The per-gate weights of an ExplainInput in torch's stacked layout (gate order i,f,g,o / r,z,n); a
    summed bias b_* goes to bias_ih, GRU's b_hn (multiplied by r) to bias_hh; biases not given are 0."""
    gates, H = GATES[inp.cell], len(inp.h0)
    b_ih, b_hh = [], []
    for g in gates:
        if inp.cell == "gru" and g == "n":
            b_ih.append(inp.b.get("b_xn", np.zeros(H)))
            b_hh.append(inp.b.get("b_hn", np.zeros(H)))
        else:
            b_ih.append(inp.b.get(f"b_{g}", np.zeros(H)))
            b_hh.append(np.zeros(H))
    return {
        "weight_ih_l0": np.concatenate([inp.W_x[g] for g in gates]),  # (G, I)
        "weight_hh_l0": np.concatenate([inp.W_h[g] for g in gates]),  # (G, H)
        "bias_ih_l0": np.concatenate(b_ih),  # (G,)
        "bias_hh_l0": np.concatenate(b_hh),  # (G,)
    }


# ----------------------------------------------------------------------------------- the trace


def _term(term) -> dict:
    if isinstance(term, MatVec):
        return {"type": "matvec", "matrix": term.matrix, "vector": term.vector, "v": term.v.tolist()}
    if isinstance(term, Product):
        return {"type": "product", "left": term.left, "a": term.a.tolist(), "right": term.right,
                "b": term.b.tolist()}
    if isinstance(term, Bias):
        return {"type": "bias", "name": term.name}
    raise TypeError(f"unknown term {type(term).__name__}")


def _quantity(q) -> dict:
    out = {"symbol": q.symbol, "name": q.name, "meaning": q.meaning, "value": q.value.tolist()}
    if isinstance(q.rule, Apply):
        out.update(kind="apply", function=q.rule.function, argument=q.rule.argument,
                   argument_value=q.rule.value.tolist())
    else:
        out.update(kind="sum", terms=[_term(t) for t in q.rule])
    return out


def _backward(inp: ExplainInput, loss: str, targets) -> dict:
    """dL/dh_t for every t by the reference layer's BPTT (module docstring: the loss)."""
    (T, I), H = inp.x.shape, len(inp.h0)
    kwargs = {"nonlinearity": inp.nonlinearity} if inp.cell == "rnn" else {}
    layer = LAYERS[inp.cell](I, H, **kwargs)
    layer.load_state_dict(stacked_params(inp))
    hx = inp.h0[None, None]  # (L*D, B, H) = (1, 1, H)
    if inp.cell == "lstm":
        hx = (hx, inp.c0[None, None])
    output, _ = layer.forward(inp.x[:, None, :], hx)  # (T, 1, H)
    h = output[:, 0]  # (T, H)
    y = h if inp.W_hy is None else h @ inp.W_hy.T + (0.0 if inp.b_y is None else inp.b_y)  # (T, O)
    if targets is None:
        target = np.zeros_like(y)
    else:
        try:
            target = np.asarray(targets, dtype=np.float64)
        except (TypeError, ValueError):
            raise ApiError(f"targets: expected a numeric array of shape {y.shape} (T, O), got "
                           f"{repr(targets)[:80]}") from None
        if target.shape != y.shape or not np.isfinite(target).all():
            raise ApiError(f"targets: expected finite numbers of shape {y.shape} (T, O), got shape "
                           f"{target.shape}")
    scored = np.zeros((T, 1))  # (T, 1): 1 where the loss reads y_t
    scored[-1 if loss == "last" else slice(None)] = 1.0
    dy = (y - target) * scored  # (T, O)
    direct = dy if inp.W_hy is None else dy @ inp.W_hy  # (T, H) dL/dh_t through y_t only
    grads = layer.backward(direct[:, None, :])
    dh = layer.hidden_grads["_l0"][:, 0]  # (T, H) total dL/dh_t
    steps = [{"t": t + 1, "dL_dy": dy[t].tolist(), "direct": direct[t].tolist(),
              "from_future": (dh[t] - direct[t]).tolist(), "dL_dh": dh[t].tolist(),
              "norm": float(np.linalg.norm(dh[t]))} for t in range(T)]
    out = {"loss": loss, "L": float(0.5 * ((y - target) ** 2 * scored).sum()), "targets": target.tolist(),
           "output_is_h": inp.W_hy is None, "steps": steps, "dL_dh0": grads["h0"][0, 0].tolist(),
           "dL_dx": grads["input"][:, 0].tolist(), "h": h.tolist()}
    if inp.cell == "lstm":
        out["dL_dc0"] = grads["c0"][0, 0].tolist()
    return out


def trace_payload(request) -> dict:
    """POST /api/trace: the explain trace of the request's cell as JSON, then the reference BPTT."""
    request = check_keys(request, TRACE_KEYS)
    spec, cell = _weights_spec(request)
    nonlinearity = request.get("nonlinearity")
    try:
        inp = parse_weights(spec, cell, nonlinearity)
    except ValueError as e:
        raise ApiError(str(e)) from None
    _check_sizes(inp)
    softmax = request.get("softmax", False)
    if not isinstance(softmax, bool):
        raise ApiError(f"softmax: expected true or false, got {softmax!r}")
    if softmax and inp.W_hy is None:
        raise ApiError("softmax needs an output layer: give W_hy (O, H) in the weights")
    loss = choice(request, "loss", "last", ("last", "all"))
    steps = trace(inp, softmax)
    gates = GATES[inp.cell]
    matrices = {f"W_x{g}": inp.W_x[g].tolist() for g in gates}
    matrices |= {f"W_h{g}": inp.W_h[g].tolist() for g in gates}
    if inp.W_hy is not None:
        matrices["W_hy"] = inp.W_hy.tolist()
    biases = {name: b.tolist() for name, b in inp.b.items()}
    if inp.b_y is not None:
        biases["b_y"] = inp.b_y.tolist()
    (T, I), H = inp.x.shape, len(inp.h0)
    return {
        "cell": inp.cell,
        "nonlinearity": inp.nonlinearity,
        "sizes": {"T": T, "I": I, "H": H, "O": 0 if inp.W_hy is None else inp.W_hy.shape[0]},
        "x": inp.x.tolist(),
        "h0": inp.h0.tolist(),
        "c0": None if inp.c0 is None else inp.c0.tolist(),
        "matrices": matrices,
        "biases": biases,
        "weights": {"cell": inp.cell, "x": inp.x.tolist(), "h0": inp.h0.tolist(),
                    **({"nonlinearity": inp.nonlinearity} if inp.cell == "rnn" else {}),
                    **({"c0": inp.c0.tolist()} if inp.c0 is not None else {}), **matrices, **biases},
        "steps": [{"t": s.t, "x": s.x.tolist(), "quantities": [_quantity(q) for q in s.quantities]}
                  for s in steps],
        "backward": _backward(inp, loss, request.get("targets")),
    }


# ----------------------------------------------------------------------------------- gradient norms


def gradient_norms_payload(request) -> dict:
    """POST /api/gradient-norms: ||dL/dh_t|| for every t of each kind at initialisation (`gradient_flow`)."""
    request = check_keys(request, GRADIENT_KEYS)
    cells = request.get("cells", ["RNN", "GRU", "LSTM"])
    if not isinstance(cells, list) or not cells or any(c not in KINDS for c in cells):
        raise ApiError(f"cells: expected a non-empty list of {list(KINDS)}, got {cells!r}")
    T = integer(request, "T", 50, 1, LIMITS.gradient_steps)
    H = integer(request, "H", 32, 1, LIMITS.gradient_hidden)
    input_size = integer(request, "input_size", 8, 1, 64)
    batch_size = integer(request, "batch_size", 16, 1, 64)
    forget_bias = number(request, "forget_bias", 0.0, -10.0, 10.0)
    weight_scale = number(request, "weight_scale", 1.0, 0.0, 10.0)
    seed = integer(request, "seed", 0, 0, 2**31 - 1)
    norms = {}
    for kind in dict.fromkeys(cells):
        bias = forget_bias if kind == "LSTM" else 0.0  # gradient_flow: the forget gate is the LSTM's
        flow = gradient_flow(kind, T, H, input_size, batch_size, seed, bias, weight_scale)
        norms[kind] = [float(v) for v in flow]
    return {"T": T, "H": H, "forget_bias": forget_bias, "weight_scale": weight_scale, "seed": seed,
            "input_size": input_size, "batch_size": batch_size, "norms": norms}
