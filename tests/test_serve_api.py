"""`rnnkit serve`'s JSON API, over real HTTP: its numbers against rnnkit.reference, its limits and errors, and
the model views on tiny models (a language model and a text classifier trained through the CLI, a poem model
saved untrained)."""

from __future__ import annotations

import json
import pickle
import random
import re
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch

from rnnkit.cli import build_parser, main
from rnnkit.data.poems import POEM_START, poem_corpus
from rnnkit.data.text import Vocabulary
from rnnkit.decode import generate, generate_poem
from rnnkit.models.gradient_flow import gradient_norms_through_time
from rnnkit.models.language_model import LanguageModel, LanguageModelConfig
from rnnkit.models.recurrent import RecurrentConfig
from rnnkit.reference.cells import sigmoid
from rnnkit.reference.diagnostics import gradient_flow
from rnnkit.reference.explain import default_example, parse_weights, trace
from rnnkit.reference.layers import GRU, LSTM, RNN
from rnnkit.serve import LIMITS, STATIC, make_server
from rnnkit.serve.inside import window_starts
from rnnkit.tasks.classifier import TrainedClassifier, token_effects
from rnnkit.tasks.language_model import TASK, LanguageModelRunConfig, TextDataConfig, load_language_model
from rnnkit.train.checkpoint import save_model
from rnnkit.train.config import to_dict

LAYERS = {"rnn": RNN, "lstm": LSTM, "gru": GRU}


# ----------------------------------------------------------------------------------- helpers


class Client:
    """The API over HTTP with urllib: (status, decoded JSON)."""

    def __init__(self, server):
        self.base = f"http://127.0.0.1:{server.server_port}"
        self.server = server

    def request(self, method, path, body=None, headers=None):
        data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=60) as response:
                return response.status, response.read(), dict(response.headers)
        except urllib.error.HTTPError as e:
            return e.code, e.read(), dict(e.headers)

    def post(self, path, body=None, headers=None):
        status, raw, _ = self.request("POST", path, body, headers)
        return status, json.loads(raw)

    def get(self, path):
        status, raw, headers = self.request("GET", path)
        return status, raw, headers

    def ok(self, path, body):
        status, data = self.post(path, body)
        assert status == 200, data
        return data


def headers_only(client, path, length):
    """POST with a Content-Length but no body: the server must answer from the header alone (sending a body
    it will not read races with its closing the connection: a broken pipe now and then)."""
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", client.server.server_port, timeout=30)
    try:
        connection.putrequest("POST", path)
        connection.putheader("Content-Length", str(length))
        connection.endheaders()
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def start(model=None) -> Client:
    server = make_server(port=0, model=model)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return Client(server)


@pytest.fixture(scope="module")
def api():
    client = start()
    yield client
    client.server.shutdown()
    client.server.server_close()


def assert_one_line_error(status, data, expected_status, *fragments):
    assert status == expected_status, data
    message = data["error"]
    assert "\n" not in message and "Traceback" not in message and message
    for fragment in fragments:
        assert fragment in message, message
    return message


def quantity(step, symbol):
    return np.array(next(q["value"] for q in step["quantities"] if q["symbol"] == symbol))


# ----------------------------------------------------------------------------------- the trace


def gates_oracle(cell, params, x, h0, c0):
    """The cell's equations written out here, from torch's stacked weights: every gate and state per step."""
    W_ih, W_hh, b_ih, b_hh = (params[k + "_l0"] for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
    H, h, c, out = len(h0), h0, c0, []
    for x_t in x:
        xp, hp = W_ih @ x_t + b_ih, W_hh @ h + b_hh  # (G,)
        if cell == "rnn":
            h = np.tanh(xp + hp)
            out.append({"h": h})
        elif cell == "lstm":
            i, f, g, o = np.split(xp + hp, 4)
            i, f, g, o = sigmoid(i), sigmoid(f), np.tanh(g), sigmoid(o)
            c = f * c + i * g
            h = o * np.tanh(c)
            out.append({"i": i, "f": f, "g": g, "o": o, "c": c, "h": h})
        else:
            r = sigmoid(xp[:H] + hp[:H])
            z = sigmoid(xp[H : 2 * H] + hp[H : 2 * H])
            n = np.tanh(xp[2 * H :] + r * hp[2 * H :])
            h = (1 - z) * n + z * h
            out.append({"r": r, "z": z, "n": n, "h": h})
    return out


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("seed", [0, 7, 123])
def test_trace_matches_the_reference_for_random_cells(api, cell, seed):
    rng = np.random.default_rng(seed)
    T, I, H = int(rng.integers(1, 6)), int(rng.integers(1, 4)), int(rng.integers(1, 5))
    x, h0 = rng.normal(size=(T, I)), rng.normal(size=H)
    request = {"cell": cell, "weights": "random", "seed": seed, "input_size": I, "hidden_size": H,
               "output_size": 2, "x": x.tolist(), "h0": h0.tolist(), "loss": "all"}
    c0 = rng.normal(size=H) if cell == "lstm" else None
    if c0 is not None:
        request["c0"] = c0.tolist()
    data = api.ok("/api/trace", request)
    assert data["sizes"] == {"T": T, "I": I, "H": H, "O": 2}

    # forward: every gate and state, against the equations written out on the reference layer's init
    layer = LAYERS[cell](I, H, seed=seed)
    expected = gates_oracle(cell, layer.params, x, h0, c0)
    for step, want in zip(data["steps"], expected, strict=True):
        for symbol, value in want.items():
            np.testing.assert_allclose(quantity(step, symbol), value, rtol=0, atol=1e-12)
    # ... and the same trace `rnnkit explain` computes from the weights the page was sent
    for step, explained in zip(data["steps"], trace(parse_weights(data["weights"])), strict=True):
        for q in explained.quantities:
            np.testing.assert_allclose(quantity(step, q.symbol), q.value, rtol=0, atol=1e-12)

    # backward: the reference layer's BPTT for L = 1/2 sum_t ||W_hy h_t + b_y||^2
    W_hy, b_y = np.array(data["matrices"]["W_hy"]), np.array(data["biases"]["b_y"])
    hx = (h0[None, None], c0[None, None]) if cell == "lstm" else h0[None, None]
    out, _ = layer.forward(x[:, None], hx)
    y = out[:, 0] @ W_hy.T + b_y  # (T, O)
    grads = layer.backward((y @ W_hy)[:, None])
    dh = layer.hidden_grads["_l0"][:, 0]
    got = np.array([s["dL_dh"] for s in data["backward"]["steps"]])
    np.testing.assert_allclose(got, dh, rtol=0, atol=1e-12)
    np.testing.assert_allclose(data["backward"]["dL_dh0"], grads["h0"][0, 0], rtol=0, atol=1e-12)
    assert data["backward"]["L"] == pytest.approx(0.5 * (y**2).sum(), abs=1e-12)
    for s in data["backward"]["steps"]:  # direct + from the future = total
        np.testing.assert_allclose(np.add(s["direct"], s["from_future"]), s["dL_dh"], atol=1e-12)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_dL_dh0_agrees_with_finite_differences(api, cell):
    """An oracle outside the reference: central differences of the loss the API reports, in h_0."""
    base = {"cell": cell, "weights": "random", "seed": 5, "input_size": 2, "hidden_size": 3, "steps": 4}
    data = api.ok("/api/trace", base)
    h0, eps = np.zeros(3), 1e-6
    for j in range(3):
        shifted = [api.ok("/api/trace", {**base, "h0": (h0 + sign * eps * np.eye(3)[j]).tolist()})
                   ["backward"]["L"] for sign in (1, -1)]
        numeric = (shifted[0] - shifted[1]) / (2 * eps)
        assert numeric == pytest.approx(data["backward"]["dL_dh0"][j], abs=1e-7)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_tutorial_weights_are_explains(api, cell):
    data = api.ok("/api/trace", {"cell": cell, "weights": "tutorial", "seed": 2})
    explained = trace(parse_weights(default_example(cell, 2)))
    for step, want in zip(data["steps"], explained, strict=True):
        assert [q["symbol"] for q in step["quantities"]] == [q.symbol for q in want.quantities]
        for q, w in zip(step["quantities"], want.quantities, strict=True):
            assert q["value"] == w.value.tolist()  # the same floats, not merely close
    if cell == "rnn":  # the tutorial's famous first step
        assert np.round(data["steps"][0]["quantities"][0]["value"], 4).tolist() == [0.05, 0.11, 0.17]


def test_pasted_state_dict_is_read_as_explain_reads_it(api):
    layer = GRU(2, 3, seed=4)
    weights = {k: v.tolist() for k, v in layer.params.items()} | {"x": [[0.5, -1.0], [1.0, 2.0]]}
    data = api.ok("/api/trace", {"weights": weights})  # no cell: read off weight_hh (3H rows)
    assert data["cell"] == "gru" and data["backward"]["output_is_h"]
    out, _ = layer.forward(np.array(weights["x"])[:, None])
    np.testing.assert_allclose([quantity(s, "h") for s in data["steps"]], out[:, 0], rtol=0, atol=1e-12)


def test_trace_errors_are_one_line_with_the_numbers(api):
    status, data = api.post("/api/trace", {"weights": {"x": [[1.0]], "W_xh": [[1.0, 2.0]], "W_hh": [[1.0]]}})
    assert_one_line_error(status, data, 400, "W_xh", "(1, 1)", "(1, 2)")
    status, data = api.post("/api/trace", {"cell": "transformer"})
    assert_one_line_error(status, data, 400, "cell", "transformer")
    status, data = api.post("/api/trace", {"cell": "rnn", "colour": "red"})
    assert_one_line_error(status, data, 400, "unexpected keys ['colour']")
    status, data = api.post("/api/trace", {"weights": "tutorial", "cell": "lstm", "nonlinearity": "relu"})
    assert_one_line_error(status, data, 400, "nonlinearity")


# ----------------------------------------------------------------------------------- gradient norms


@pytest.mark.parametrize(("T", "H", "forget_bias", "weight_scale", "seed"),
                         [(20, 8, 0.0, 1.0, 0), (35, 16, 1.0, 0.5, 3), (10, 4, 2.5, 2.0, 9)])
def test_gradient_norms_are_diagnostics(api, T, H, forget_bias, weight_scale, seed):
    request = {"cells": ["RNN", "GRU", "LSTM", "RNN_RELU"], "T": T, "H": H, "forget_bias": forget_bias,
               "weight_scale": weight_scale, "seed": seed}
    data = api.ok("/api/gradient-norms", request)
    for kind, norms in data["norms"].items():
        bias = forget_bias if kind == "LSTM" else 0.0
        want = gradient_flow(kind, T, H, seed=seed, forget_bias=bias, weight_scale=weight_scale)
        np.testing.assert_allclose(norms, want, rtol=1e-12, atol=0)
    # the picture the page draws: at initialisation the RNN's gradient fades fastest
    default = api.ok("/api/gradient-norms", {"T": 50})["norms"]
    first = {k: v[0] / v[-1] for k, v in default.items()}
    assert first["RNN"] < first["GRU"] and first["RNN"] < first["LSTM"]


def test_weight_scale_one_leaves_gradient_flow_unchanged():
    np.testing.assert_array_equal(gradient_flow("RNN", 12, 6, weight_scale=1.0), gradient_flow("RNN", 12, 6))
    assert gradient_flow("RNN", 12, 6, weight_scale=3.0)[0] > gradient_flow("RNN", 12, 6)[0]


# ----------------------------------------------------------------------------------- limits, bad requests


def test_limits_say_the_numbers(api):
    cases = [
        ("/api/trace", {"hidden_size": LIMITS.trace_hidden + 1}, ["hidden_size", str(LIMITS.trace_hidden)]),
        ("/api/trace", {"steps": LIMITS.trace_steps + 1}, ["steps", str(LIMITS.trace_steps)]),
        ("/api/trace", {"weights": "tutorial", "x": [[0.0, 0.0]] * (LIMITS.trace_steps + 1)},
         ["time steps", str(LIMITS.trace_steps + 1), str(LIMITS.trace_steps)]),
        ("/api/gradient-norms", {"T": LIMITS.gradient_steps + 1}, ["T", str(LIMITS.gradient_steps)]),
        ("/api/gradient-norms", {"H": 0}, ["H", "1 <= H"]),
        ("/api/gradient-norms", {"cells": ["Transformer"]}, ["cells"]),
        ("/api/gradient-norms", {"weight_scale": "big"}, ["weight_scale", "number"]),
    ]
    for path, body, fragments in cases:
        status, data = api.post(path, body)
        assert_one_line_error(status, data, 400, *fragments)
    status, data = headers_only(api, "/api/trace", LIMITS.body_bytes + 1)
    assert_one_line_error(status, data, 413, f"{LIMITS.body_bytes:,}")
    status, data, _ = api.get("/api/limits")
    assert status == 200 and json.loads(data)["trace_hidden"] == LIMITS.trace_hidden


def test_bad_json_is_a_400_with_one_line(api):
    for body, fragment in [(b"{bad", "bad JSON"), (b"", "bad JSON"), (b"\xff\xfe", "UTF-8"),
                           (b"[1, 2]", "expected a JSON object"), (b'"text"', "expected a JSON object")]:
        for path in ("/api/trace", "/api/gradient-norms"):
            status, data = api.post(path, body, {"Content-Type": "application/json"})
            assert_one_line_error(status, data, 400, fragment)
    # the server is still there
    assert api.ok("/api/trace", {"weights": "tutorial"})["sizes"]["T"] == 3


def test_unknown_paths_are_404(api):
    for path in ("/nope", "/api/nope", "/static/../server.py", "/static/.hidden", "/static/", "/server.py"):
        status, raw, _ = api.get(path)
        assert status == 404, path
        assert "\n" not in json.loads(raw)["error"]
    status, data = api.post("/api/nope", {})
    assert_one_line_error(status, data, 404, "/api/nope")
    status, raw, _ = api.get("/api/trace")
    assert status == 405


def test_the_page_ships_with_the_package_and_loads_nothing_from_elsewhere(api):
    status, raw, headers = api.get("/")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    html = raw.decode()
    for name in ("style.css", "i18n.js", "app.js"):
        assert f"/static/{name}" in html
        status, body, headers = api.get(f"/static/{name}")
        assert status == 200 and body == (STATIC / name).read_bytes()
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    for file in STATIC.iterdir():
        text = file.read_text(encoding="utf-8")
        for remote in ('src="http', "href=\"http", "url(http", "fetch(\"http", "@import"):
            assert remote not in text, (file.name, remote)
    # every label has its Chinese twin
    i18n = (STATIC / "i18n.js").read_text(encoding="utf-8")
    en, zh = i18n.split("\n  zh: {")
    keys = re.compile(r'(?:^\s+|",\s)(\w+):', re.MULTILINE)
    assert set(keys.findall(en)) - {"en"} == set(keys.findall(zh)) and len(keys.findall(zh)) > 100


def test_binds_127_0_0_1_by_default_and_prints_the_address(tmp_path):
    assert build_parser().parse_args(["serve"]).host == "127.0.0.1"
    server = make_server(port=0)
    try:
        assert server.server_address[0] == "127.0.0.1"
    finally:
        server.server_close()
    process = subprocess.Popen([sys.executable, "-m", "rnnkit", "serve", "--port", "0"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        line = process.stdout.readline()
        assert line.startswith("rnnkit playground: http://127.0.0.1:"), line + process.stderr.read()
        url = line.split()[2]
        with urllib.request.urlopen(url + "api/limits", timeout=30) as response:
            assert json.loads(response.read())["trace_steps"] == LIMITS.trace_steps
    finally:
        process.terminate()
        process.wait(timeout=30)


# ----------------------------------------------------------------------------------- model files

TEXT = "".join(
    f'line {k}: he said "go (now) [{k % 3}]" and ({"x" * (k % 4)}) left\n' for k in range(60)
)


@pytest.fixture(scope="module")
def lm_file(tmp_path_factory):
    """A 2-layer char LSTM trained for a few steps through `rnnkit train`."""
    root = tmp_path_factory.mktemp("serve_lm")
    (root / "text.txt").write_text(TEXT, encoding="utf-8")
    argv = ["train", "--data", root / "text.txt", "--accelerator", "cpu", "--no-progress-bar",
            "--batch-size", "2", "--bptt", "16", "--hidden-size", "12", "--max-steps", "3",
            "--output-dir", root / "runs", "--run-name", "lm",
            "--set", "model.embedding_size=8", "--set", "model.encoder.num_layers=2",
            "--set", "trainer.val_check_interval=3", "--set", "trainer.limit_val_batches=1"]  # fmt: skip
    assert main([str(a) for a in argv]) == 0
    return root / "runs" / "lm" / "model.safetensors"


@pytest.fixture(scope="module")
def poem_file(tmp_path_factory):
    """An untrained GRU with the metadata of a 5-character poem model (what matters here is the decoding)."""
    path = tmp_path_factory.mktemp("serve_poem") / "model.safetensors"
    poems = ["床前明月光，疑是地上霜。举头望明月，低头思故乡。", "春夏秋冬山水花鸟风"]
    vocab = Vocabulary.build(poem_corpus(poems))
    torch.manual_seed(0)
    config = LanguageModelConfig(vocab_size=len(vocab), embedding_size=8, encoder=RecurrentConfig(cell="gru",
                                 hidden_size=8, num_layers=1))
    run = LanguageModelRunConfig(model=config, data=TextDataConfig(dataset="tang_poems", script="simplified"))
    save_model(path, LanguageModel(config), TASK, config=to_dict(run), vocabulary=vocab.to_json())
    return path


def upload(client, path_or_bytes, name="model.safetensors"):
    data = path_or_bytes if isinstance(path_or_bytes, bytes) else Path(path_or_bytes).read_bytes()
    return client.post("/api/model", data, {"Content-Type": "application/octet-stream", "X-File-Name": name})


class Boom:
    """Unpickling this would write a file: the test that the server never unpickles."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (Path(self.marker), "unpickled!"))


def test_foreign_files_are_refused_and_never_unpickled(tmp_path, api):
    marker = tmp_path / "marker"
    pickled = pickle.dumps({"state_dict": Boom(marker)})
    from safetensors.numpy import save as save_numpy

    plain = save_numpy({"w": np.zeros(3, np.float32)})  # a safetensors file, but not rnnkit's
    for data in (pickled, b"not a model", plain):
        status, reply = upload(api, data, "weights.pt")
        assert_one_line_error(status, reply, 400, "weights.pt", "rnnkit")
    assert not marker.exists()
    (tmp_path / "weights.pt").write_bytes(pickled)
    with pytest.raises(ValueError, match="not a readable rnnkit checkpoint"):
        make_server(port=0, model=tmp_path / "weights.pt")
    assert main(["serve", "--port", "0", "--model", str(tmp_path / "weights.pt")]) == 2
    assert not marker.exists()
    status, reply = api.post("/api/activations", {"text": "hi"})
    assert_one_line_error(status, reply, 409, "no model is loaded")


def test_oversized_upload_is_refused_before_reading(api):
    status, data = headers_only(api, "/api/model", LIMITS.model_bytes + 1)
    assert status == 413 and f"{LIMITS.model_bytes:,}" in data["error"]


def test_activations_are_the_models_hidden_states(lm_file):
    client = start(model=lm_file)
    try:
        status, raw, _ = client.get("/api/model")
        info = json.loads(raw)
        assert info["loaded"] and info["cell"] == "lstm" and info["num_layers"] == 2
        assert info["states"] == ["h", "c"]
        text = 'he said "go (now)" and left\nline 3'
        data = client.ok("/api/activations", {"text": text, "layer": 1, "state": "h", "unit": 5, "top": 3})
        assert data["pieces"] == list(text)
        model, vocab, _ = load_language_model(lm_file)
        with torch.no_grad():
            out, _ = model.rnn(model.embedding(torch.tensor([vocab.encode(text)])))  # (1, T, H): last layer
        np.testing.assert_allclose(data["values"], out[0, :, 5].double().numpy(), rtol=0, atol=1e-6)
        # the features of the text, as the module docstring defines them
        features = data["features"]
        assert features["in_quotes"]["values"][7:12] == [0.0, 1.0, 1.0, 1.0, 1.0]  # ' "go ' -> quote opens
        assert features["bracket_depth"]["values"][text.index("(")] == 1.0
        assert features["bracket_depth"]["values"][text.index(")") + 1] == 0.0
        assert features["line_position"]["values"][text.index("\n")] == 0.0
        assert features["line_position"]["values"][-1] == len("line 3")
        for name, found in features.items():
            rs = [abs(u["r"]) for u in found["top"]]
            assert len(rs) == 3 and rs == sorted(rs, reverse=True) and all(r <= 1 + 1e-12 for r in rs), name
        # the top unit's r is Pearson's, recomputed from that unit's own activations
        best = features["bracket_depth"]["top"][0]
        chosen = {k: best[k] for k in ("layer", "state", "unit")}
        unit = client.ok("/api/activations", {"text": text, **chosen})
        r = np.corrcoef(unit["values"], features["bracket_depth"]["values"])[0, 1]
        assert r == pytest.approx(best["r"], abs=1e-9)
        # errors with numbers
        status, reply = client.post("/api/activations", {"text": "Zürich"})
        assert_one_line_error(status, reply, 400, "never saw", "'Z'")
        status, reply = client.post("/api/activations", {"text": "a" * (LIMITS.text_chars + 1)})
        assert_one_line_error(status, reply, 400, str(LIMITS.text_chars))
        status, reply = client.post("/api/activations", {"text": "go", "unit": 12})
        assert_one_line_error(status, reply, 400, "unit", "11")
    finally:
        client.server.shutdown()
        client.server.server_close()


def test_generate_continues_a_prompt_with_each_tokens_probability(api, lm_file):
    status, info = upload(api, lm_file, "lm.safetensors")
    assert status == 200 and info["name"] == "lm.safetensors" and not info["poem"]
    request = {"prompt": "he said ", "max_new_tokens": 20, "temperature": 0.9, "seed": 4}
    data = api.ok("/api/generate", request)
    model, vocab, _ = load_language_model(lm_file)
    assert data["text"] == generate(model, vocab, "he said ", 20, temperature=0.9, seed=4)  # the same decoder
    assert len(data["tokens"]) == 20 and not any(t["forced"] for t in data["tokens"])
    with torch.no_grad():  # the first token's probability, from the model directly
        state = None
        for i in vocab.encode("he said "):
            logits, state = model.step(torch.tensor([i]), state)
        p = torch.softmax(logits[0].double(), -1)[vocab.index[data["tokens"][0]["piece"]]]
    assert data["tokens"][0]["p"] == pytest.approx(float(p), abs=1e-6)
    status, reply = api.post("/api/generate", {"acrostic": "春夏秋冬"})
    assert_one_line_error(status, reply, 400, "poem model")
    status, reply = api.post("/api/generate", {"max_new_tokens": LIMITS.generate_tokens + 1})
    assert_one_line_error(status, reply, 400, str(LIMITS.generate_tokens))


def test_a_poem_model_writes_an_acrostic_with_probabilities(api, poem_file):
    status, info = upload(api, poem_file)
    assert status == 200 and info["poem"] and info["poem_chars"] == 0  # 0: trained on 5 and 7
    data = api.ok("/api/generate", {"acrostic": "春夏秋冬", "seed": 1, "temperature": 1.0})
    model, vocab, _ = load_language_model(poem_file)
    assert data["text"] == generate_poem(model, vocab, 5, None, "春夏秋冬", seed=1, line_break="")
    lines = [data["text"][k * 6 : (k + 1) * 6] for k in range(4)]
    assert [line[0] for line in lines] == list("春夏秋冬")
    assert [line[-1] for line in lines] == list("，。，。")
    forced = [t["forced"] for t in data["tokens"]]
    assert forced == [True, False, False, False, False, True] * 4
    assert all(0 < t["p"] <= 1 for t in data["tokens"]) and POEM_START not in data["text"]
    status, reply = api.post("/api/generate", {"acrostic": "春夏秋"})
    assert_one_line_error(status, reply, 400, "4 characters")


# ------------------------------------------------------------------------------- a trained model's gradients


def test_a_trained_models_gradient_norms_are_gradient_norms_through_time(lm_file):
    client = start(model=lm_file)
    try:
        text = TEXT[:400]
        data = client.ok("/api/model-gradient-norms", {"T": 25, "windows": 5, "text": text})
        assert data["cell"] == "lstm" and not data["generated"] and len(data["norms"]) == 25 - 1
        model, vocab, _ = load_language_model(lm_file)
        ids = vocab.encode(text)
        assert data["starts"] == window_starts(len(ids), 25, 5)
        assert len(data["starts"]) == 5 and data["starts"][-1] + 25 == len(ids) - 1  # to the text's end
        tokens = torch.tensor([ids[s : s + 25] for s in data["starts"]])  # (B, T)
        targets = torch.tensor([ids[s + 25] for s in data["starts"]])  # (B,)
        want = gradient_norms_through_time(model, tokens, targets)
        np.testing.assert_allclose(data["norms"], want.numpy(), rtol=1e-9, atol=0)
        # no text: the model writes its own (seeded), and the norms are of that text
        own = client.ok("/api/model-gradient-norms", {"T": 10, "windows": 2, "seed": 3})
        assert own["generated"] and own["text"] == generate(model, vocab, "", 10 + 2, seed=3)
        ids = vocab.encode(own["text"])
        tokens = torch.tensor([ids[s : s + 10] for s in own["starts"]])
        targets = torch.tensor([ids[s + 10] for s in own["starts"]])
        want = gradient_norms_through_time(model, tokens, targets)
        np.testing.assert_allclose(own["norms"], want.numpy(), rtol=1e-9, atol=0)
        # limits and errors with the numbers
        status, reply = client.post("/api/model-gradient-norms", {"T": LIMITS.model_gradient_steps + 1})
        assert_one_line_error(status, reply, 400, "T", str(LIMITS.model_gradient_steps))
        status, reply = client.post("/api/model-gradient-norms", {"T": 30, "text": "he said"})
        assert_one_line_error(status, reply, 400, "7 tokens", "at least 31")
        too_many = LIMITS.model_gradient_windows + 1
        status, reply = client.post("/api/model-gradient-norms", {"windows": too_many})
        assert_one_line_error(status, reply, 400, "windows", str(LIMITS.model_gradient_windows))
        status, reply = client.post("/api/classify", {"text": "a good film"})
        assert_one_line_error(status, reply, 409, "needs a text classifier", "'language_model'")
    finally:
        client.server.shutdown()
        client.server.server_close()


def test_window_starts_spread_over_the_text():
    assert window_starts(10, 4, 3) == [0, 3, 5]  # the last window, tokens 5..8, has target 9
    assert window_starts(10, 4, 20) == [0, 1, 2, 3, 4, 5]  # no start twice
    assert window_starts(5, 4, 1) == [0] and window_starts(4, 4, 2) == []


# ----------------------------------------------------------------------------------- a text classifier

WORDS = ["the", "film", "was", "a", "plot", "and", "actor", "scene", "it", "story"]


def reviews(n: int, seed: int) -> list[dict]:
    """Filler words with one telling word: good / great for pos, bad / awful for neg."""
    rng, rows = random.Random(seed), []
    for i in range(n):
        label = ("neg", "pos")[i % 2]
        words = [rng.choice(WORDS) for _ in range(rng.randint(3, 10))]
        words.insert(rng.randrange(len(words) + 1), rng.choice({"pos": ["good", "great"],
                                                                 "neg": ["bad", "awful"]}[label]))
        rows.append({"text": " ".join(words), "label": label})
    return rows


@pytest.fixture(scope="module")
def classifier_file(tmp_path_factory):
    """A GRU text classifier with attention pooling, trained for a few steps through `rnnkit train`."""
    root = tmp_path_factory.mktemp("serve_classifier")
    (root / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in reviews(160, 0)))
    (root / "tiny.yaml").write_text("\n".join([
        "task: classifier", "model:", "  embedding_size: 12", "  pooling: attention", "  attention_size: 8",
        "  dropout: 0.0", "  encoder:", "    cell: gru", "    hidden_size: 12", "    num_layers: 1",
        "data:", "  min_freq: 1", "  batch_size: 16", "  valid_fraction: 0.2", "  max_length: 0",
        "optim:", "  lr: 0.03", "trainer:", "  max_steps: 40", "  val_check_interval: 40",
        "  accelerator: cpu", "  progress_bar: false"]) + "\n")
    argv = ["train", "--config", root / "tiny.yaml", "--data", root / "train.jsonl",
            "--output-dir", root / "runs", "--run-name", "clf"]
    assert main([str(a) for a in argv]) == 0
    return root / "runs" / "clf" / "model.safetensors"


def test_a_classifiers_running_opinion_is_its_explain(classifier_file):
    client = start(model=classifier_file)
    try:
        status, raw, _ = client.get("/api/model")
        info = json.loads(raw)
        assert info["task"] == "classifier" and info["classes"] == ["neg", "pos"]
        assert info["pooling"] == "attention" and info["cell"] == "gru"
        text = "The film was a great story, and the actor was good"
        data = client.ok("/api/classify", {"text": text})
        clf = TrainedClassifier.from_file(classifier_file)
        explained = clf.explain(text)
        assert data["tokens"] == explained["tokens"] and data["classes"] == ["neg", "pos"]
        running = np.array(data["probabilities"])  # (T, K)
        np.testing.assert_allclose(running, explained["probabilities"], rtol=0, atol=1e-6)
        np.testing.assert_allclose(data["attention"], explained["attention"], rtol=0, atol=1e-6)
        assert sum(data["attention"]) == pytest.approx(1.0, abs=1e-6)
        # the last row is the model on the whole text; row t the model on the first t + 1 words
        np.testing.assert_allclose(running[-1], clf.predict(text).probabilities[0], rtol=0, atol=1e-6)
        words = explained["tokens"]
        np.testing.assert_allclose(running[2], clf.predict(" ".join(words[:3])).probabilities[0], atol=1e-6)
        predicted = ["neg", "pos"][int(running[-1].argmax())]
        assert data["predicted"] == data["label"] == predicted
        np.testing.assert_allclose(data["effects"], token_effects(running, data["classes"].index(predicted)),
                                   rtol=0, atol=1e-12)
        # another class's effects: with two classes, the mirror image
        neg = client.ok("/api/classify", {"text": text, "label": "neg"})
        assert neg["label"] == "neg" and neg["predicted"] == predicted
        np.testing.assert_allclose(neg["effects"], token_effects(running, 0), rtol=0, atol=1e-12)
        np.testing.assert_allclose(np.add(neg["effects"], token_effects(running, 1)), 0.0, atol=1e-6)
        # errors with the numbers; the language-model views say what they need
        status, reply = client.post("/api/classify", {"text": "good", "label": "meh"})
        assert_one_line_error(status, reply, 400, "label", "['neg', 'pos']", "'meh'")
        status, reply = client.post("/api/classify", {"text": "  "})
        assert_one_line_error(status, reply, 400, "text", "non-empty")
        status, reply = client.post("/api/classify", {"text": "a " * (LIMITS.classify_tokens + 1)})
        assert_one_line_error(status, reply, 400, f"{LIMITS.classify_tokens + 1} tokens",
                              str(LIMITS.classify_tokens))
        for path in ("/api/activations", "/api/generate", "/api/model-gradient-norms"):
            status, reply = client.post(path, {})
            assert_one_line_error(status, reply, 409, "needs a language model", "'classifier'")
    finally:
        client.server.shutdown()
        client.server.server_close()


def test_a_classifier_uploaded_replaces_the_language_model(api, classifier_file):
    status, info = upload(api, classifier_file, "clf.safetensors")
    assert status == 200 and info["name"] == "clf.safetensors" and info["task"] == "classifier"
    data = api.ok("/api/classify", {"text": "an awful plot"})
    assert data["tokens"] == ["an", "awful", "plot"] and len(data["probabilities"]) == 3
