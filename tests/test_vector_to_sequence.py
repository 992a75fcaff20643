"""VectorToSequence (one-to-many): Seq2Seq's decoder conditioned on a vector. Shapes, the step API against
teacher forcing (float64, exactly), beam search through the same contract, padding and <eos>, errors with
numbers, the argsort task learned well above chance; and the factored decoder keeping Seq2Seq's parameter
names (saved model files load unchanged)."""

from __future__ import annotations

import math

import pytest
import torch

from rnnkit.data.pairs import BOS_ID, EOS_ID, PAD_ID, pair_vocabulary
from rnnkit.data.synthetic_pairs import argsort_pairs
from rnnkit.decode import beam_search
from rnnkit.models.recurrent import RecurrentConfig
from rnnkit.models.seq2seq import Seq2Seq, Seq2SeqConfig, VectorToSequence, VectorToSequenceConfig

K = 5  # argsort of 5 numbers: 5! = 120 orders


def make_model(cell="gru", layers=1, **kwargs) -> VectorToSequence:
    torch.manual_seed(0)
    config = VectorToSequenceConfig(input_size=4, target_vocab_size=11, **{"embedding_size": 8, **kwargs},
                                    decoder=RecurrentConfig(cell=cell, hidden_size=10, num_layers=layers))
    return VectorToSequence(config)


def targets(rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Token rows of different lengths -> (<bos> y, y <eos>), padded with PAD_ID: (B, T) each."""
    T = max(len(r) for r in rows) + 1
    tgt_in = torch.tensor([[BOS_ID, *r] + [PAD_ID] * (T - 1 - len(r)) for r in rows])
    tgt_out = torch.tensor([[*r, EOS_ID] + [PAD_ID] * (T - 1 - len(r)) for r in rows])
    return tgt_in, tgt_out


def step_logits(model, v, tgt_in) -> torch.Tensor:
    """The logits of `step` fed tgt_in one column at a time: (B, T, V), the oracle's twin."""
    state, out = model.start(v), []
    for t in range(tgt_in.shape[1]):
        logits, state = model.step(tgt_in[:, t], state)
        out.append(logits)
    return torch.stack(out, 1)


# ---- shapes and the step contract ----


@pytest.mark.parametrize("cell,layers", [("gru", 1), ("lstm", 2), ("rnn", 1)])
def test_shapes_of_the_state_logits_and_loss(cell, layers):
    model = make_model(cell, layers, context_size=7)
    v = torch.rand(3, 4)
    state = model.start(v)
    assert set(state) == {"summary", "hidden", "feed", "attention"}  # no memory to attend over
    assert state["summary"].shape == (3, 7) and state["feed"].shape == (3, 10)
    assert state["attention"].shape == (3, 0)
    hidden = state["hidden"] if cell == "lstm" else (state["hidden"],)
    assert all(h.shape == (layers, 3, 10) for h in hidden)
    assert VectorToSequence.batch_dims(state) == {"summary": 0, "hidden": (1, 1) if cell == "lstm" else 1,
                                                  "feed": 0, "attention": 0}
    tgt_in, tgt_out = targets([[4, 5, 6], [7], [8, 9]])
    logits, loss = model(v, tgt_in, tgt_out)
    assert logits.shape == (3, 4, 11) and loss.dim() == 0 and loss.item() > 0
    assert model(v, tgt_in)[1] is None


@pytest.mark.parametrize("cell,layers,input_feeding",
                         [("gru", 1, True), ("lstm", 2, True), ("gru", 2, False)])
def test_step_by_step_decoding_reproduces_the_teacher_forced_logits_exactly(cell, layers, input_feeding):
    model = make_model(cell, layers, input_feeding=input_feeding).double().eval()
    v = torch.rand(3, 4, dtype=torch.float64)
    tgt_in, _ = targets([[4, 5, 6, 7], [8, 9, 10, 4], [5, 5, 6, 6]])
    with torch.no_grad():
        forced, _ = model(v, tgt_in)
        stepped = step_logits(model, v, tgt_in)
    assert forced.dtype == torch.float64
    assert torch.equal(stepped, forced)  # the same step code: bit for bit


def test_greedy_and_beam_search_run_through_step_and_batch_dims():
    model = make_model("lstm", 2).eval()
    v = torch.rand(1, 4)
    with torch.no_grad():
        greedy = model.greedy(v, 6)[0]
        state = model.start(v)
        dims = VectorToSequence.batch_dims(state)
        beam = beam_search(model, [BOS_ID], 6, 3, state=state, end_token=EOS_ID, length_penalty=0.6,
                           batch_dim=dims)[0]
        one = beam_search(model, [BOS_ID], 6, 1, state=state, batch_dim=dims)[0]
        forced, _ = model(v, torch.tensor([[BOS_ID, *greedy[:-1]]]))
        assert forced[0].argmax(-1).tolist() == greedy  # greedy: the forward's argmax at every step
        assert one.ids == greedy[: len(one.ids)]  # beam 1 without an end token is greedy
        log_p = model(v, torch.tensor([[BOS_ID, *beam.ids[:-1]]]))[0][0].log_softmax(-1)  # (T, V)
    assert beam.log_prob == pytest.approx(float(sum(log_p[t, i] for t, i in enumerate(beam.ids))), abs=1e-5)


def test_it_is_exactly_the_decoder_of_seq2seq_without_attention():
    """Seq2Seq(attention="none") and a VectorToSequence with the same decoder weights, W_v = I, b_v = 0, given
    Seq2Seq's source summary as v, give the same logits: one decoder, two ways to condition it."""
    torch.manual_seed(0)
    seq2seq = Seq2Seq(Seq2SeqConfig(
        source_vocab_size=9, target_vocab_size=11, embedding_size=8, attention="none",
        encoder=RecurrentConfig(cell="gru", hidden_size=6, num_layers=1, bidirectional=True),
        decoder=RecurrentConfig(cell="gru", hidden_size=10, num_layers=1))).eval()
    vector = VectorToSequence(VectorToSequenceConfig(
        input_size=12, target_vocab_size=11, embedding_size=8, context_size=12,
        decoder=RecurrentConfig(cell="gru", hidden_size=10, num_layers=1))).eval()
    missing, unexpected = vector.load_state_dict(seq2seq.state_dict(), strict=False)
    assert set(missing) == {"vector.weight", "vector.bias"}
    assert {k.split(".")[0] for k in unexpected} == {"source_embedding", "encoder"}
    with torch.no_grad():
        vector.vector.weight.copy_(torch.eye(12))
        vector.vector.bias.zero_()
    src, lengths = torch.tensor([[4, 5, 6], [7, 8, 0]]), torch.tensor([3, 2])
    tgt_in, _ = targets([[4, 5], [6]])
    with torch.no_grad():
        summary = seq2seq.start(src, lengths)["summary"]  # (B, 12): [h_fwd; h_bwd]
        expected, _, _ = seq2seq(src, lengths, tgt_in)
        logits, _ = vector(summary, tgt_in)
    torch.testing.assert_close(logits, expected, rtol=1e-6, atol=1e-6)


# ---- padding and the end token ----


def test_padded_targets_change_no_logit_and_no_loss():
    model = make_model("gru", 2, dropout=0.0).eval()
    v = torch.rand(3, 4)
    rows = [[4, 5, 6, 7], [8], [9, 10]]
    tgt_in, tgt_out = targets(rows)
    logits, loss = model(v, tgt_in, tgt_out)
    total, count = 0.0, 0
    for b, row in enumerate(rows):
        alone_in, alone_out = targets([row])
        alone, alone_loss = model(v[b : b + 1], alone_in, alone_out)
        T = len(row) + 1
        torch.testing.assert_close(logits[b, :T], alone[0], rtol=1e-5, atol=1e-6)
        total, count = total + alone_loss.item() * T, count + T
    assert loss.item() == pytest.approx(total / count, rel=1e-5)  # the mean over real tokens only


def test_greedy_stops_each_row_at_its_end_token_or_its_limit(trained):
    model, vocab, _ = trained
    pairs = argsort_pairs(3, K, seed=7)
    v = torch.tensor([p[0] for p in pairs])
    free = model.greedy(v, K + 3)
    assert all(ids[-1] == EOS_ID and EOS_ID not in ids[:-1] for ids in free)  # ends at <eos>, not beyond
    limited = model.greedy(v, torch.tensor([K + 3, 2, 0]))  # one limit per row
    assert limited == [free[0], free[1][:2], []]
    for b in range(3):
        assert model.greedy(v[b : b + 1], K + 3)[0] == free[b]  # rows decode independently


# ---- errors with numbers ----


@pytest.mark.parametrize("v,message", [
    (torch.rand(2, 5), "expected v of shape (B, 4) (input_size 4), got (2, 5)"),
    (torch.rand(4), "expected v of shape (B, 4) (input_size 4), got (4,)"),
    (torch.ones(2, 4, dtype=torch.long), "expected a floating-point v, got torch.int64"),
    (torch.tensor([[0.1, 0.2, 0.3, 0.4], [0.5, 0.6, float("nan"), 0.8]]),
     "v holds 1 NaN or infinite values (the first at row 1, column 2: nan); expected finite numbers"),
])
def test_a_bad_vector_is_an_error_with_its_numbers(v, message):
    model = make_model()
    forward = lambda v: model(v, torch.tensor([[BOS_ID]] * len(v)))  # noqa: E731
    for call in (model.start, forward, lambda v: model.greedy(v, 3)):
        with pytest.raises(ValueError) as e:
            call(v)
        assert str(e.value) == message


def test_targets_of_another_batch_are_an_error():
    model = make_model()
    with pytest.raises(ValueError, match=r"expected tgt_in \(B, T\) with B = 2 rows, got \(3, 4\)"):
        model(torch.rand(2, 4), torch.ones(3, 4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"expected tgt_out of tgt_in's shape \(2, 4\), got \(2, 3\)"):
        model(torch.rand(2, 4), torch.ones(2, 4, dtype=torch.long), torch.ones(2, 3, dtype=torch.long))


@pytest.mark.parametrize("kwargs,message", [
    ({"input_size": 0}, "model.input_size must be an integer >= 1, got 0"),
    ({"context_size": -1}, "model.context_size must be an integer >= 0, got -1"),
    ({"tie_embeddings": True}, "needs embedding_size == decoder.hidden_size, got embedding_size=128,"),
    ({"decoder": RecurrentConfig(cell="mingru")}, "must be a unidirectional rnn/lstm/gru layer"),
    ({"dropout": 1.0}, "model.dropout must be in [0, 1), got 1.0"),
])
def test_config_errors(kwargs, message):
    with pytest.raises(ValueError) as e:
        VectorToSequenceConfig(**{"input_size": 4, "target_vocab_size": 9, **kwargs})
    assert message in str(e.value)


def test_a_vocabulary_without_room_for_a_token_is_an_error():
    expected = r"model.target_vocab_size must be >= 5 \(4 specials and a token\), got 4"
    with pytest.raises(ValueError, match=expected):
        VectorToSequence(VectorToSequenceConfig(input_size=4, target_vocab_size=4))


# ---- learning the one-to-many task ----


def argsort_batch(pairs, vocab):
    """(v (B, K), <bos> y, y <eos>) of argsort pairs; y the vocabulary ids of the K index words."""
    v = torch.tensor([p[0] for p in pairs])
    tgt_in, tgt_out = targets([vocab.encode_tokens(order.split()) for _, order in pairs])
    return v, tgt_in, tgt_out


@pytest.fixture(scope="module")
def trained():
    """A GRU decoder trained on argsort of 5 numbers: 150 Adam steps of 128 fresh vectors (about 10 s on one
    core), then the exact-sequence accuracy of greedy decoding on 1000 held-out vectors."""
    train = argsort_pairs(150 * 128, K, seed=1)
    vocab = pair_vocabulary(order.split() for _, order in train)
    torch.manual_seed(0)
    model = VectorToSequence(VectorToSequenceConfig(
        input_size=K, target_vocab_size=len(vocab), embedding_size=16, dropout=0.0, label_smoothing=0.0,
        decoder=RecurrentConfig(cell="gru", hidden_size=64, num_layers=1)))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for step in range(150):
        _, loss = model(*argsort_batch(train[step * 128 : (step + 1) * 128], vocab))
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
    v, _, tgt_out = argsort_batch(argsort_pairs(1000, K, seed=99), vocab)
    out = model.eval().greedy(v, K + 1)
    exact = sum(ids == row[: K + 1] for ids, row in zip(out, tgt_out.tolist(), strict=True)) / len(out)
    return model, vocab, exact


def test_argsort_is_learned_far_above_chance(trained):
    """Exact-sequence chance is 1/5! = 0.0083 (a uniform guess of the order; even knowing that the output is
    a permutation); 150 steps reach about 0.8, which needs every component of v at every step."""
    _, _, exact = trained
    chance = 1 / math.factorial(K)
    assert exact > 0.5 and exact > 50 * chance, exact


# ---- the factored decoder keeps Seq2Seq's parameters ----


def test_seq2seq_keeps_every_parameter_name_and_shape_of_its_saved_files():
    torch.manual_seed(0)
    model = Seq2Seq(Seq2SeqConfig(
        source_vocab_size=15, target_vocab_size=13, embedding_size=8, attention="additive",
        encoder=RecurrentConfig(cell="gru", hidden_size=6, num_layers=1, bidirectional=True),
        decoder=RecurrentConfig(cell="lstm", hidden_size=10, num_layers=1)))
    expected = {  # the names and shapes model files written before the decoder was factored out hold
        "source_embedding.weight": (15, 8), "target_embedding.weight": (13, 8),
        "encoder.weight_ih_l0": (18, 8), "encoder.weight_hh_l0": (18, 6), "encoder.bias_ih_l0": (18,),
        "encoder.bias_hh_l0": (18,), "encoder.weight_ih_l0_reverse": (18, 8),
        "encoder.weight_hh_l0_reverse": (18, 6), "encoder.bias_ih_l0_reverse": (18,),
        "encoder.bias_hh_l0_reverse": (18,),
        "decoder.weight_ih_l0": (40, 18), "decoder.weight_hh_l0": (40, 10), "decoder.bias_ih_l0": (40,),
        "decoder.bias_hh_l0": (40,), "bridge.weight": (20, 12), "bridge.bias": (20,),
        "attention.key.weight": (10, 12), "attention.query.weight": (10, 10), "attention.query.bias": (10,),
        "attention.v.weight": (1, 10), "combine.weight": (10, 22), "output.weight": (13, 10),
        "output.bias": (13,),
    }
    state = model.state_dict()
    assert list(state) == list(expected)  # the same names, in the same order (the order of initialisation)
    assert {k: tuple(t.shape) for k, t in state.items()} == expected
    copy = Seq2Seq(model.config)
    copy.load_state_dict(state)  # strict
    assert all(torch.equal(a, b) for a, b in zip(copy.state_dict().values(), state.values(), strict=True))
