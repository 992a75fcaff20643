"""rnnkit.generate: sampling filters, greedy, beam search, seeding, streaming, on fake and real models."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from rnnkit.data.text import Vocabulary
from rnnkit.generate import beam_search, generate, generate_poem, sample_token, top_k_filter, top_p_filter
from rnnkit.models.language_model import LanguageModel, LanguageModelConfig
from rnnkit.models.recurrent import RecurrentConfig

VOCAB = Vocabulary(tuple("abcd"), level="char")


class MarkovModel(nn.Module):
    """A fake language model whose next-token logits depend only on the last token: logits = table[token].

    The state is the last token (B,); every call is recorded so tests can check the work per token."""

    def __init__(self, table: torch.Tensor):
        super().__init__()
        self.table = table  # (V, V)
        self.calls: list[torch.Tensor] = []

    def step(self, token, state=None):
        self.calls.append(token.clone())
        return self.table[token], token  # (B, V), (B,)


class TinyLSTM(nn.Module):
    """A small torch LSTM language model written here, independent of rnnkit.models; state (h, c), (L, B, H)
    each."""

    def __init__(self, vocab_size: int, seed: int, hidden_size: int = 16, num_layers: int = 2):
        super().__init__()
        torch.manual_seed(seed)
        self.embed = nn.Embedding(vocab_size, 8)
        self.lstm = nn.LSTM(8, hidden_size, num_layers=num_layers, batch_first=True, dropout=0.5)
        self.out = nn.Linear(hidden_size, vocab_size)
        nn.init.normal_(self.out.weight, std=2.0)  # peaked, varied distributions

    def forward(self, tokens, state=None):  # (B, T) -> (B, T, V)
        h, state = self.lstm(self.embed(tokens), state)
        return self.out(h), state

    def step(self, token, state=None):  # (B,) -> (B, V)
        logits, state = self.forward(token[:, None], state)
        return logits[:, 0], state


def sequence_log_prob(model, prompt_ids, new_ids) -> float:
    """Oracle: log p(new | prompt) from one full forward pass over the whole sequence."""
    ids = torch.tensor([prompt_ids + new_ids])
    with torch.no_grad():
        logits, _ = model(ids)
    logp = logits[0, len(prompt_ids) - 1 : -1].log_softmax(-1)  # (n, V): predictions of the new tokens
    return float(logp.gather(1, torch.tensor(new_ids)[:, None]).sum())


def engine_model(vocab_size: int, seed: int) -> LanguageModel:
    torch.manual_seed(seed)
    config = LanguageModelConfig(
        vocab_size=vocab_size,
        embedding_size=8,
        encoder=RecurrentConfig(cell="gru", hidden_size=12, num_layers=2),
    )
    model = LanguageModel(config)
    nn.init.normal_(model.decoder.weight, std=2.0)
    return model


# ---- filters and sampling ----


def test_top_k_filter_keeps_exactly_the_k_best():
    logits = torch.randn(6, 20, generator=torch.Generator().manual_seed(0))
    for k in range(1, 21):
        kept = torch.isfinite(top_k_filter(logits, k))
        best = torch.zeros_like(kept).scatter(1, logits.topk(k, dim=1).indices, True)
        assert torch.equal(kept, best)


def test_top_k_sampling_never_leaves_the_k_best():
    logits = torch.randn(30, generator=torch.Generator().manual_seed(1))
    best = set(logits.topk(3).indices.tolist())
    g = torch.Generator().manual_seed(2)
    draws = {sample_token(logits, temperature=2.0, top_k=3, generator=g) for _ in range(2000)}
    assert draws == best  # all k drawn (temperature 2 flattens), nothing else


@pytest.mark.parametrize("scale", [0.3, 1.0, 4.0])
@pytest.mark.parametrize("p", [0.05, 0.5, 0.9, 0.99])
def test_top_p_keeps_the_smallest_nucleus_with_mass_p(scale, p):
    logits = scale * torch.randn(50, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    probs = logits.softmax(-1)
    kept = torch.isfinite(top_p_filter(logits, p))
    mass = float(probs[kept].sum())
    assert mass >= p - 1e-12  # enough mass
    assert mass - float(probs[kept].min()) < p  # minimal: without its least likely token it falls short
    if (~kept).any():
        assert probs[kept].min() >= probs[~kept].max()  # the most probable tokens


def test_sample_token_draws_from_tempered_truncated_softmax():
    logits = torch.tensor([2.0, 1.5, 1.0, 0.0, -1.0, -3.0])
    temperature, k = 0.7, 4
    expected = torch.zeros(6)
    expected[:k] = (logits[:k] / temperature).softmax(-1)  # the 4 best are the first 4
    g = torch.Generator().manual_seed(4)
    n = 10000
    counts = torch.bincount(
        torch.tensor([sample_token(logits, temperature, k, None, g) for _ in range(n)]), minlength=6
    )
    torch.testing.assert_close(counts / n, expected, atol=0.02, rtol=0)


# ---- greedy, beam, seeds, temperature ----


def test_greedy_is_the_argmax_chain_and_costs_one_step_per_token():
    table = torch.randn(4, 4, generator=torch.Generator().manual_seed(5))
    model = MarkovModel(table)
    text = generate(model, VOCAB, "ab", max_new_tokens=6, greedy=True)
    last, expected = VOCAB.index["b"], []
    for _ in range(6):
        last = int(table[last].argmax())
        expected.append(VOCAB.tokens[last])
    assert text == "".join(expected)
    # O(1) per new token: one step call with one token each, 2 for the prompt + 5 (the last token needs none)
    assert len(model.calls) == 2 + 5 and all(c.shape == (1,) for c in model.calls)


def test_greedy_lstm_matches_recomputing_the_whole_sequence():
    model = TinyLSTM(len(VOCAB), seed=6)
    text = generate(model, VOCAB, "abca", max_new_tokens=12, greedy=True)
    ids = VOCAB.encode("abca")
    with torch.no_grad():
        model.eval()
        for _ in range(12):  # O(n^2) oracle: run the full forward over everything so far
            logits, _ = model(torch.tensor([ids]))
            ids.append(int(logits[0, -1].argmax()))
    assert text == VOCAB.decode(ids[4:])


def test_beam_search_beats_greedy_on_a_toy_model():
    # From 'a': b is likelier (0.6) than c (0.4), but after b all is uniform (1/4), after c 'd' is sure.
    p = torch.tensor(
        [[0.0, 0.6, 0.4, 0.0], [0.25, 0.25, 0.25, 0.25], [0.0, 0.0, 0.0, 1.0], [0.25, 0.25, 0.25, 0.25]]
    )
    model = MarkovModel(p.clamp_min(1e-9).log())
    greedy = generate(model, VOCAB, "a", max_new_tokens=2, greedy=True)
    beam = generate(model, VOCAB, "a", max_new_tokens=2, beam_size=2)
    assert greedy[0] == "b" and beam == "cd"  # 0.6 * 0.25 = 0.15 < 0.4 * 1.0


def brute_force_best(model, prompt_ids, vocab_size, n):
    return max(
        (list(seq) for seq in itertools.product(range(vocab_size), repeat=n)),
        key=lambda seq: sequence_log_prob(model, prompt_ids, seq),
    )


@pytest.mark.parametrize("make", [lambda: TinyLSTM(3, seed=7), lambda: engine_model(3, seed=8)])
def test_wide_beam_search_is_exact_on_real_models(make):
    """A beam of V^(n-1) hypotheses keeps every prefix, so it must find the brute-force optimum; the states
    ((h, c) of torch.nn.LSTM, h of the engine's GRU, both (L, B, H)) are reordered along their batch dim."""
    model, vocab = make().eval(), Vocabulary(tuple("xyz"), level="char")
    for prompt in ("x", "zyx"):
        ids = vocab.encode(prompt)
        best = brute_force_best(model, ids, 3, 3)
        assert beam_search(model, ids, 3, beam_size=9) == best
        narrow = beam_search(model, ids, 3, beam_size=2)
        assert sequence_log_prob(model, ids, narrow) <= sequence_log_prob(model, ids, best) + 1e-6


def test_same_seed_same_text_and_seeds_differ():
    model = TinyLSTM(len(VOCAB), seed=9)
    a = generate(model, VOCAB, "ab", 60, temperature=1.5, seed=123)
    b = generate(model, VOCAB, "ab", 60, temperature=1.5, seed=123)
    c = generate(model, VOCAB, "ab", 60, temperature=1.5, seed=124)
    assert a == b and a != c and len(a) == 60


def test_low_temperature_approaches_greedy():
    model = engine_model(len(VOCAB), seed=10)
    greedy = generate(model, VOCAB, "cab", 40, greedy=True)
    for seed in range(5):
        assert generate(model, VOCAB, "cab", 40, temperature=1e-6, seed=seed) == greedy
    hot = {generate(model, VOCAB, "cab", 40, temperature=3.0, seed=seed) for seed in range(5)}
    assert greedy not in hot


def test_stream_receives_each_piece_as_it_is_chosen():
    text = "the cat sat on the mat \n the dog sat \n"
    vocab = Vocabulary.build(text, level="word")
    model = TinyLSTM(len(vocab), seed=11)
    pieces = []
    out = generate(model, vocab, "the cat", 15, top_p=0.9, seed=0, stream=pieces.append)
    assert len(pieces) == 15 and "".join(pieces) == out
    assert all(p == " \n" or (p.startswith(" ") and p[1:] in vocab) for p in pieces)
    beam_pieces = []
    beam = generate(model, vocab, "the", 4, beam_size=3, stream=beam_pieces.append)
    assert "".join(beam_pieces) == beam


def test_generation_uses_eval_mode_and_restores_training_mode():
    model = TinyLSTM(len(VOCAB), seed=12).train()  # dropout 0.5 between layers
    first = generate(model, VOCAB, "abc", 30, greedy=True)
    assert model.training
    assert generate(model, VOCAB, "abc", 30, greedy=True) == first  # no dropout noise while generating


def test_empty_prompt_starts_after_a_line_break():
    vocab = Vocabulary(tuple("ab\n"), level="char")
    model = MarkovModel(torch.randn(3, 3, generator=torch.Generator().manual_seed(13)))
    generate(model, vocab, "", 3, greedy=True)
    assert int(model.calls[0]) == vocab.index["\n"]
    with pytest.raises(ValueError, match="empty prompt needs a start token"):
        generate(model, VOCAB, "", 3)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(temperature=0.0), "temperature must be > 0"),
        (dict(top_k=0), "top_k must be >= 1, got 0"),
        (dict(top_p=1.5), r"top_p must be in \(0, 1\], got 1.5"),
        (dict(greedy=True, top_k=3), "apply to sampling, not to greedy"),
        (dict(beam_size=2, temperature=0.5), "apply to sampling, not to beam"),
        (dict(greedy=True, beam_size=2), "choose greedy or beam search"),
        (dict(max_new_tokens=-1), "max_new_tokens must be >= 0, got -1"),
    ],
)
def test_bad_arguments(kwargs, message):
    model = MarkovModel(torch.zeros(4, 4))
    kwargs = {"max_new_tokens": 3, **kwargs}
    with pytest.raises(ValueError, match=message):
        generate(model, VOCAB, "a", **kwargs)


def test_unknown_prompt_character_and_model_without_step():
    model = MarkovModel(torch.zeros(4, 4))
    with pytest.raises(ValueError, match=r"unknown char 'z' \(U\+007A\) at token 1"):
        generate(model, VOCAB, "az", 3)
    with pytest.raises(ValueError, match="needs a step"):
        generate(nn.Linear(2, 2), VOCAB, "a", 3)


# ---- the `rnnkit generate` command ----


def test_cli_generate_prints_the_continuation_and_poems(tmp_path, capsys):
    from dataclasses import asdict

    from rnnkit.cli import main
    from rnnkit.tasks.language_model import TASK
    from rnnkit.train.checkpoint import save_model

    vocab = Vocabulary(tuple("^$，。春夏秋冬山水风月ab \n"), level="char")
    model = engine_model(len(vocab), seed=14).eval()
    path = tmp_path / "model.safetensors"
    save_model(path, model, TASK, config={"model": asdict(model.config)}, vocabulary=vocab.to_json())

    argv = ["generate", str(path), "--prompt", "ab", "--max-new-tokens", "12", "--top-k", "5", "--seed", "3"]
    assert main(argv) == 0
    expected = generate(model, vocab, "ab", 12, top_k=5, seed=3)
    assert capsys.readouterr().out == "ab" + expected + "\n"

    assert main(["generate", str(path), "--beam", "3", "--max-new-tokens", "5", "--prompt", "a"]) == 0
    assert capsys.readouterr().out == "a" + generate(model, vocab, "a", 5, beam_size=3) + "\n"

    assert (
        main(["generate", str(path), "--poem", "--chars", "7", "--acrostic", "春夏秋冬", "--seed", "1"]) == 0
    )
    poem = capsys.readouterr().out.strip()
    assert poem == generate_poem(model, vocab, chars=7, acrostic="春夏秋冬", seed=1)
    assert len(poem) == 32 and poem[0::8] == "春夏秋冬" and poem[7::8] == "，。，。"

    assert main(["generate", str(path), "--poem", "--acrostic", "春夏秋天"]) == 2
    assert "acrostic character '天' (U+5929) is not in the model's vocabulary" in capsys.readouterr().err
    assert main(["generate", str(path), "--greedy", "--temperature", "0.5"]) == 2
    assert "apply to sampling, not to greedy" in capsys.readouterr().err
