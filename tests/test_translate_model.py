"""Seq2Seq: masked attention, the step API against teacher forcing, variational masks per sequence."""

from __future__ import annotations

import pytest
import torch

from rnnkit.data.pairs import BOS_ID, EOS_ID
from rnnkit.decode import beam_search
from rnnkit.models.recurrent import RecurrentConfig
from rnnkit.models.seq2seq import Seq2Seq, Seq2SeqConfig


def make_model(attention="additive", cell="gru", layers=1, **kwargs) -> Seq2Seq:
    torch.manual_seed(0)
    decoder = kwargs.pop("decoder", {})
    config = Seq2SeqConfig(
        source_vocab_size=15, target_vocab_size=13, attention=attention, **{"embedding_size": 8, **kwargs},
        encoder=RecurrentConfig(cell=cell, hidden_size=6, num_layers=layers, bidirectional=True),
        decoder=RecurrentConfig(cell=cell, hidden_size=10, num_layers=layers, **decoder))
    return Seq2Seq(config)


def padded_batch():
    src = torch.tensor([[4, 5, 6, 7, 8], [9, 10, 0, 0, 0], [11, 12, 13, 0, 0]])  # (3, 5)
    lengths = torch.tensor([5, 2, 3])
    tgt_in = torch.tensor([[1, 4, 5, 6], [1, 7, 0, 0], [1, 8, 9, 0]])  # (3, 4)
    tgt_out = torch.tensor([[4, 5, 6, 2], [7, 2, 0, 0], [8, 9, 2, 0]])
    return src, lengths, tgt_in, tgt_out


@pytest.mark.parametrize("attention", ["additive", "general"])
def test_padding_never_gets_attention_weight(attention):
    model = make_model(attention)
    src, lengths, tgt_in, tgt_out = padded_batch()
    src = src.masked_fill(src == 0, 14)  # whatever sits in the padding, it is not read
    for mode in (model.train, model.eval):
        mode()
        _, weights, _ = model(src, lengths, tgt_in, tgt_out)  # (B, T, S)
        for b, n in enumerate(lengths.tolist()):
            assert torch.equal(weights[b, :, n:], torch.zeros_like(weights[b, :, n:]))  # exact zeros
            assert torch.allclose(weights[b, :, :n].sum(-1), torch.ones(4))


def test_padding_changes_nothing():
    """A source's translation logits do not depend on how much padding its batch adds."""
    model = make_model("general", cell="lstm", layers=2).eval()
    src, lengths, tgt_in, tgt_out = padded_batch()
    batched, _, _ = model(src, lengths, tgt_in, tgt_out)
    alone, _, _ = model(src[1:2, :2], lengths[1:2], tgt_in[1:2, :2], tgt_out[1:2, :2])
    torch.testing.assert_close(batched[1, :2], alone[0], rtol=1e-5, atol=1e-6)


def teacher_forced_logits(model, src, lengths, ids):
    """The logits of a full teacher-forced forward over <bos> + ids (the oracle of the step API)."""
    tgt_in = torch.tensor([[BOS_ID, *ids[:-1]]])
    logits, _, _ = model.eval()(src, lengths, tgt_in)
    return logits[0]  # (T, V)


def step_logits(model, src, lengths, ids):
    state = model.start(src, lengths)
    out = []
    for token in [BOS_ID, *ids[:-1]]:
        logits, state = model.step(torch.tensor([token]), state)
        out.append(logits[0])
    return torch.stack(out)


@pytest.mark.parametrize("attention,cell", [("additive", "gru"), ("general", "lstm"), ("none", "gru")])
def test_greedy_and_beam_through_step_equal_the_teacher_forced_forward(attention, cell):
    model = make_model(attention, cell=cell, layers=2).eval()
    src, lengths = torch.tensor([[4, 5, 6, 7]]), torch.tensor([4])
    with torch.no_grad():
        greedy = model.greedy(src, lengths, 8)[0]
        state = model.start(src, lengths)
        beam = beam_search(model, [BOS_ID], 8, 4, state=state, end_token=EOS_ID, length_penalty=0.6,
                           batch_dim=Seq2Seq.batch_dims(state))[0]
        one = beam_search(model, [BOS_ID], 8, 1, state=state, batch_dim=Seq2Seq.batch_dims(state))[0]
        for ids in (greedy, beam.ids, one.ids):
            full = teacher_forced_logits(model, src, lengths, ids)
            torch.testing.assert_close(step_logits(model, src, lengths, ids), full, rtol=1e-5, atol=1e-6)
        full = teacher_forced_logits(model, src, lengths, greedy)
        assert full.argmax(-1).tolist() == greedy  # greedy picks the forward's argmax at every step
        assert one.ids == greedy[: len(one.ids)]  # beam 1 without an end token: greedy
        log_p = full.log_softmax(-1)
        beam_full = teacher_forced_logits(model, src, lengths, beam.ids).log_softmax(-1)
        expected = sum(beam_full[t, i] for t, i in enumerate(beam.ids))
        assert beam.log_prob == pytest.approx(float(expected), abs=1e-4)
        assert log_p.shape[-1] == 13


def test_batched_greedy_equals_one_source_at_a_time():
    model = make_model("additive").eval()
    src, lengths, _, _ = padded_batch()
    batched = model.greedy(src, lengths, 6)
    for b in range(3):
        assert model.greedy(src[b : b + 1, : lengths[b]], lengths[b : b + 1], 6)[0] == batched[b]


def test_decoder_variational_masks_are_drawn_once_per_sequence():
    model = make_model("additive", decoder={"recurrent_dropout": 0.5, "zoneout": 0.2}).train()
    src, lengths, tgt_in, tgt_out = padded_batch()
    drawn, used = [], []
    sample, step = model.decoder.sample_masks, model.decoder.step

    def counting_sample(T, B, generator=None):
        drawn.append((T, B))
        return sample(T, B, generator)

    def recording_step(x_t, state, masks=None, *, t=None):
        out = step(x_t, state, masks, t=t)
        used.append((t, masks, dict(model.decoder.last_masks)))  # what the layer ran with at step t
        return out

    model.decoder.step = recording_step
    model.decoder.sample_masks = counting_sample
    model(src, lengths, tgt_in, tgt_out)
    assert drawn[0] == (4, 3)  # drawn for the whole target, (T, B), before the first step
    assert [t for t, _, _ in used] == [0, 1, 2, 3]
    sequence = used[0][1]
    assert set(sequence) == {"recurrent_dropout_l0", "zoneout_h_l0"}
    dropout = sequence["recurrent_dropout_l0"]
    assert dropout.shape == (3, 10) and set(dropout.unique().tolist()) <= {0.0, 2.0}
    for t, masks, ran_with in used:
        assert masks is sequence  # every step gets the sequence's masks ...
        assert ran_with["recurrent_dropout_l0"] is dropout  # ... and runs with the same dropout mask
        assert torch.equal(ran_with["zoneout_h_l0"], sequence["zoneout_h_l0"][t : t + 1])  # zoneout at t


def test_eval_step_is_deterministic_with_stochastic_variants():
    model = make_model("general", decoder={"recurrent_dropout": 0.5}).eval()
    src, lengths, tgt_in, _ = padded_batch()
    first, _, _ = model(src, lengths, tgt_in)
    second, _, _ = model(src, lengths, tgt_in)
    assert torch.equal(first, second)


def test_tied_embeddings_and_label_smoothing():
    model = make_model("additive", embedding_size=10, tie_embeddings=True, label_smoothing=0.2)
    assert model.output.weight is model.target_embedding.weight
    src, lengths, tgt_in, tgt_out = padded_batch()
    model.train()
    torch.manual_seed(1)
    _, _, smoothed = model(src, lengths, tgt_in, tgt_out)
    torch.manual_seed(1)
    _, _, plain = model(src, lengths, tgt_in, tgt_out, label_smoothing=0.0)
    assert smoothed.item() != pytest.approx(plain.item())
    model.eval()
    _, _, eval_loss = model(src, lengths, tgt_in, tgt_out)
    _, _, explicit = model(src, lengths, tgt_in, tgt_out, label_smoothing=0.0)
    assert eval_loss.item() == pytest.approx(explicit.item())  # validation is plain cross-entropy


@pytest.mark.parametrize("kwargs,message", [
    ({"attention": "dot"}, "model.attention must be one of"),
    ({"tie_embeddings": True}, "tie_embeddings needs embedding_size == decoder.hidden_size"),
    ({"decoder": RecurrentConfig(cell="gru", bidirectional=True)}, "unidirectional"),
    ({"decoder": RecurrentConfig(cell="mingru")}, "unidirectional rnn/lstm/gru"),
    ({"label_smoothing": 1.0}, "label_smoothing must be in [0, 1)"),
])
def test_config_errors(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace(")", r"\)").replace("(", r"\(")):
        Seq2SeqConfig(**kwargs)


def test_an_empty_source_is_an_error():
    model = make_model()
    with pytest.raises(ValueError, match="at least one token"):
        model.start(torch.tensor([[4, 0]]), torch.tensor([0]))


def test_scheduled_sampling_feeds_the_models_guesses_in_training_only():
    src, lengths, tgt_in, tgt_out = padded_batch()
    forced, sampled = make_model(dropout=0.0), make_model(dropout=0.0, scheduled_sampling=0.9)
    torch.manual_seed(2)
    forced_logits, _, _ = forced.train()(src, lengths, tgt_in, tgt_out)
    torch.manual_seed(2)
    sampled_logits, _, _ = sampled.train()(src, lengths, tgt_in, tgt_out)
    torch.testing.assert_close(sampled_logits[:, 0], forced_logits[:, 0])  # step 0 always reads <bos>
    assert not torch.allclose(sampled_logits[:, 1:], forced_logits[:, 1:])
    eval_forced, _, _ = forced.eval()(src, lengths, tgt_in)
    eval_sampled, _, _ = sampled.eval()(src, lengths, tgt_in)
    torch.testing.assert_close(eval_sampled, eval_forced)  # same weights (seed 0): eval is teacher forcing
