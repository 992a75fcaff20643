"""rnnkit.decode: sampling filters, greedy, beam search (end token, length penalty, initial state), seeding,
streaming, on fake and real models; beam search against brute force over every output."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch import nn

from rnnkit.data.text import Vocabulary
from rnnkit.decode import (
    Hypothesis,
    beam_search,
    generate,
    generate_poem,
    sample_token,
    top_k_filter,
    top_p_filter,
)
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


def engine_model(vocab_size: int, seed: int, num_layers: int = 2) -> LanguageModel:
    torch.manual_seed(seed)
    config = LanguageModelConfig(
        vocab_size=vocab_size,
        embedding_size=8,
        encoder=RecurrentConfig(cell="gru", hidden_size=12, num_layers=num_layers),
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
        assert beam_search(model, ids, 3, beam_size=9)[0].ids == best
        narrow = beam_search(model, ids, 3, beam_size=2)[0].ids
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


# ---- beam search: end token, length penalty, initial state, any step function ----

END = 2  # the end token of the 3-token models below


def step_log_prob(step, start_ids, new_ids, state=None) -> float:
    """Oracle: log p(new | start, state), one sequence stepped alone (batch of 1, no beam, no reordering)."""
    total = 0.0
    with torch.no_grad():
        for i in start_ids:
            logits, state = step(torch.tensor([i]), state)
        for i in new_ids:
            total += float(logits[0].double().log_softmax(-1)[i])
            logits, state = step(torch.tensor([i]), state)
    return total


def all_outputs(vocab_size: int, n: int, end_token: int):
    """Every output of at most n new tokens: ended by the end token (its only one), or n tokens without it."""
    others = [t for t in range(vocab_size) if t != end_token]
    for length in range(n):
        yield from (list(seq) + [end_token] for seq in itertools.product(others, repeat=length))
    yield from (list(seq) for seq in itertools.product(others, repeat=n))


def brute_force_ranking(step, start_ids, n, alpha, state=None) -> list[tuple[list[int], float]]:
    """(ids, GNMT score) of every output, best first."""
    scored = []
    for ids in all_outputs(3, n, END):
        scored.append((ids, step_log_prob(step, start_ids, ids, state) / ((5 + len(ids)) / 6) ** alpha))
    return sorted(scored, key=lambda pair: -pair[1])


def assert_same_ranking(hypotheses: list[Hypothesis], ranking: list[tuple[list[int], float]]):
    assert [h.ids for h in hypotheses] == [ids for ids, _ in ranking[: len(hypotheses)]]
    expected = [s for _, s in ranking[: len(hypotheses)]]
    torch.testing.assert_close([h.score for h in hypotheses], expected, rtol=1e-5, atol=1e-5)  # float32 beam
    assert all(h.finished == (h.ids[-1] == END) for h in hypotheses)


class NestedDecoder(nn.Module):
    """A seq2seq-style decoder with a nested state {"lstm": (h, c) each (L, B, H), "memory": (B, V)}: an
    LSTM whose logits also read a decaying memory of the tokens fed to it (batch dims 1, 1 and 0)."""

    def __init__(self, vocab_size: int, seed: int):
        super().__init__()
        self.lm = TinyLSTM(vocab_size, seed)

    def step(self, token, state):
        logits, lstm = self.lm.step(token, state["lstm"])  # (B, V)
        memory = 0.5 * state["memory"] + nn.functional.one_hot(token, logits.shape[-1])  # (B, V)
        return logits - 3.0 * memory, {"lstm": lstm, "memory": memory}


# Every output of <= 3 tokens over V = 3 has <= 3 * 2^2 = 12 extensions per step: a beam of 12 keeps them all,
# so it must rank exactly as brute force does.
EXACT_BEAM = 12


@pytest.mark.parametrize("alpha", [0.0, 0.6, 2.0])
def test_wide_beam_with_end_token_and_length_penalty_ranks_as_brute_force(alpha):
    model = TinyLSTM(3, seed=20).eval()
    for prompt in ([0], [1, 0, 2]):
        ranking = brute_force_ranking(model.step, prompt, 3, alpha)
        kw = dict(end_token=END, length_penalty=alpha)
        assert_same_ranking(beam_search(model, prompt, 3, EXACT_BEAM, n_best=EXACT_BEAM, **kw), ranking)
        # n_best=1 stops as soon as the best is settled: the same best
        assert_same_ranking(beam_search(model, prompt, 3, EXACT_BEAM, **kw), ranking)
        narrow = beam_search(model, prompt, 3, beam_size=2, **kw)[0]
        assert narrow.score <= ranking[0][1] + 1e-6


@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_beam_from_a_nested_initial_state_ranks_as_brute_force(alpha):
    """A decoder that starts from an "encoder's" state for one source and a start token; a bound `.step` of a
    module in training mode (dropout 0.5) runs in eval mode, and the mode is restored."""
    decoder = NestedDecoder(3, seed=21)
    g = torch.Generator().manual_seed(22)
    h, c = torch.randn(2, 1, 16, generator=g), torch.randn(2, 1, 16, generator=g)  # (L, 1, H)
    state = {"lstm": (h, c), "memory": torch.randn(1, 3, generator=g)}
    dims = {"lstm": (1, 1), "memory": 0}
    found = beam_search(decoder.step, [0], 3, EXACT_BEAM, state=state, batch_dim=dims, end_token=END,
                        length_penalty=alpha, n_best=EXACT_BEAM)
    assert decoder.training
    ranking = brute_force_ranking(decoder.eval().step, [0], 3, alpha, state)
    assert_same_ranking(found, ranking)


@pytest.mark.parametrize("make", [lambda: TinyLSTM(4, seed=23), lambda: engine_model(4, 24, num_layers=1)])
def test_beam_from_the_state_after_a_prompt_equals_beam_from_the_prompt(make):
    """The initial state's batch dim is 1 by default: torch.nn's (L, 1, H), the engine's 1-layer (1, 1, H)."""
    model = make().eval()
    prompt = [3, 1, 0, 2]
    with torch.no_grad():
        _, state = model.step(torch.tensor([3]), None)
        for i in prompt[1:-1]:
            _, state = model.step(torch.tensor([i]), state)
    for kw in (dict(), dict(end_token=1, length_penalty=0.8)):
        from_state = beam_search(model, prompt[-1:], 5, 3, state=state, n_best=3, **kw)
        from_prompt = beam_search(model, prompt, 5, 3, n_best=3, **kw)
        assert [h.ids for h in from_state] == [h.ids for h in from_prompt]
        torch.testing.assert_close([h.log_prob for h in from_state], [h.log_prob for h in from_prompt])


def markov_step(p: torch.Tensor, calls: list | None = None):
    """A step function with p(next | last) = p[last]; the state is the last token (B,)."""

    def step(token, state):
        if calls is not None:
            calls.append(token.clone())
        return p[token].clamp_min(1e-12).log(), token

    return step


def test_finished_hypotheses_stop_at_the_end_token():
    # After 0, the end token 2 is likely; after 2, token 0 would be certain: a search that went on past an
    # end would find "2 0 ..." continuations of high probability.
    p = torch.tensor([[0.1, 0.3, 0.6], [0.5, 0.2, 0.3], [1.0, 0.0, 0.0]])
    step = markov_step(p)
    hypotheses = beam_search(step, [0], 6, beam_size=3, end_token=END, n_best=3)
    for h in hypotheses:
        assert END not in h.ids[:-1] and h.finished == (h.ids[-1] == END) and len(h.ids) <= 6
        assert h.log_prob == pytest.approx(step_log_prob(step, [0], h.ids))
    assert hypotheses[0].ids == [END] and hypotheses[0].log_prob == pytest.approx(math.log(0.6))
    # Once no live hypothesis can beat the finished best (log p only falls), the search stops: here after the
    # first extension, with 2 model calls (one probe of the batch dim, one for the beam) of 50 allowed.
    calls: list[torch.Tensor] = []
    sure = torch.tensor([[0.05, 0.05, 0.9]] * 3)
    assert beam_search(markov_step(sure, calls), [0], 50, beam_size=2, end_token=END)[0].ids == [END]
    assert len(calls) == 2


def test_length_penalty_zero_ranks_by_log_prob_and_alpha_favours_longer_outputs():
    # From 0: end at once (0.4) or token 1 (0.6), after which the end is likely (0.6): [2] has p = 0.4 >
    # [1, 2] with p = 0.36, but the longer one wins once the penalty divides by ((5 + |Y|) / 6) ** alpha.
    p = torch.tensor([[0.0, 0.6, 0.4], [0.0, 0.4, 0.6], [0.0, 0.4, 0.6]])
    step = markov_step(p)
    raw = beam_search(step, [0], 4, beam_size=3, end_token=END, n_best=3)
    assert [h.score for h in raw] == [h.log_prob for h in raw]
    assert [h.log_prob for h in raw] == sorted((h.log_prob for h in raw), reverse=True)
    assert raw[0].ids == [END]
    penalised = beam_search(step, [0], 4, beam_size=3, end_token=END, length_penalty=1.0)[0]
    assert penalised.ids == [1, END]
    assert penalised.score == pytest.approx(math.log(0.36) / (7 / 6))


def greedy_ids(step, start_ids, n, end_token=None) -> list[int]:
    """Oracle: argmax one token at a time, stopping after the end token."""
    ids, state = [], None
    with torch.no_grad():
        for i in start_ids:
            logits, state = step(torch.tensor([i]), state)
        while len(ids) < n and (not ids or ids[-1] != end_token):
            ids.append(int(logits[0].argmax()))
            logits, state = step(torch.tensor([ids[-1]]), state)
    return ids


@pytest.mark.parametrize("make", [lambda: TinyLSTM(3, seed=25), lambda: engine_model(3, seed=26)])
def test_beam_of_one_is_greedy(make):
    model = make().eval()
    vocab = Vocabulary(tuple("xyz"), level="char")
    for prompt in ([0], [2, 1]):
        assert beam_search(model, prompt, 8, beam_size=1)[0].ids == greedy_ids(model.step, prompt, 8)
        assert generate(model, vocab, vocab.decode(prompt), 8, beam_size=1) == generate(
            model, vocab, vocab.decode(prompt), 8, greedy=True
        )
        with_end = beam_search(model, prompt, 8, beam_size=1, end_token=END)[0]
        assert with_end.ids == greedy_ids(model.step, prompt, 8, END)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(beam_size=0), "beam_size must be >= 1, got 0"),
        (dict(n_best=3), r"n_best must be in \[1, beam_size=2\], got 3"),
        (dict(length_penalty=-0.5), "length_penalty must be a finite alpha >= 0, got -0.5"),
        (dict(end_token=3), "end_token must be < the vocabulary size 3, got 3"),
        (dict(start_ids=[]), "at least one start token"),
        (dict(state=torch.zeros(2, 2, 4)), "expected size 1 along batch_dim 1, got shape \\(2, 2, 4\\)"),
    ],
)
def test_beam_search_bad_arguments(kwargs, message):
    kwargs = {"start_ids": [0], "max_new_tokens": 3, "beam_size": 2, **kwargs}
    with pytest.raises(ValueError, match=message):
        beam_search(markov_step(torch.full((3, 3), 1 / 3)), **kwargs)


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
    assert len(poem) == 35 and poem[0::9] == "春夏秋冬" and poem[7::9] == "，。，。"
    assert poem[8::9] == "\n" * 3  # one verse per line

    assert main(["generate", str(path), "--poem", "--acrostic", "春夏秋天"]) == 2
    assert "acrostic character '天' (U+5929) is not in the model's vocabulary" in capsys.readouterr().err
    assert main(["generate", str(path), "--greedy", "--temperature", "0.5"]) == 2
    assert "apply to sampling, not to greedy" in capsys.readouterr().err


def test_a_diverged_model_is_an_error_not_garbage():
    vocab = Vocabulary.build("abcabc", level="char")
    model = engine_model(len(vocab), seed=0)
    with torch.no_grad():
        model.decoder.weight.fill_(float("nan"))
    for kwargs in ({}, {"greedy": True}, {"beam_size": 2}):
        with pytest.raises(ValueError, match="logits are NaN: its weights hold NaN or inf"):
            generate(model, vocab, "ab", 5, seed=0, **kwargs)
