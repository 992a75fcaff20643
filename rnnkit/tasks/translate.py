"""The translation task: sentence pairs -> vocabularies -> `Seq2Seq` with attention; BLEU / chrF, attention
maps.

Data (`data`): a tab-separated file of `column 1<TAB>column 2[<TAB>anything]` (Tatoeba's cmn.txt: English,
Chinese, attribution). `data.reverse` picks the direction: false translates column 1 into column 2 (en->zh),
true column 2 into column 1 (zh->en); `data.levels` says how each column is split (word / char: Tatoeba's
English in words, its Chinese in characters). The split holds out a seeded share of the distinct column-1
sentences with all their translations (rnnkit.data.pairs.split_pairs), the same split in both directions, so
no English sentence is on both sides. `data.max_length` drops pairs with a side longer than that many tokens
from every part. The vocabularies come from the training part only, so held-out words can be <unk>.

Metrics: token-level cross-entropy (nats) and perplexity of the validation pairs under teacher forcing (plain,
without the training loss's label smoothing); the engine keeps the model of lowest valid loss. `rnnkit
evaluate` decodes (greedy, or `--beam K` with the GNMT length penalty) and scores the detokenised output with
sacrebleu: BLEU (tokenize "zh" for a character-level target, "13a" otherwise) and chrF, overall and per
source-length bucket.

    rnnkit train --config translate_en_zh --data ../shared/data/tatoeba_cmn_eng/cmn.txt
    rnnkit evaluate runs/translate_en_zh --data ../shared/data/tatoeba_cmn_eng/cmn.txt --beam 5
    rnnkit predict runs/translate_en_zh "I love you." --beam 5 --attention-map love.png
    rnnkit translate runs/translate_en_zh "I love you." --beam 5      # the same: predict's alias

    >>> translator = TrainedTranslator.from_file("runs/translate_en_zh")        # doctest: +SKIP
    >>> translator.translate(["I love you."], beam=5)                            # doctest: +SKIP
    ['我爱你。']

Bad input is a one-line error (ValueError): an empty source, a source of unknown tokens only, a source longer
than the longest the model was trained on (unless allowed), a pair file with a missing column or not UTF-8, a
model file of another task.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from rnnkit.data.pairs import (
    BOS_ID,
    EOS_ID,
    PAD_ID,
    UNK_ID,
    SentencePairs,
    length_batches,
    pair_collate,
    pair_vocabulary,
    read_pairs,
    split_pairs,
    tokenize_sentence,
)
from rnnkit.data.text import Vocabulary
from rnnkit.models.seq2seq import Seq2Seq, Seq2SeqConfig
from rnnkit.train.checkpoint import CheckpointError, load_model_file
from rnnkit.train.config import OptimConfig, TrainerConfig, from_dict, to_dict
from rnnkit.train.metrics import MeanLoss, StepOutput
from rnnkit.train.module import Task
from rnnkit.train.run import BuiltTask

__all__ = [
    "TASK",
    "TranslationDataConfig",
    "TranslateRunConfig",
    "TokenCrossEntropy",
    "build",
    "translation_pairs",
    "detokenize",
    "score_translations",
    "TrainedTranslator",
    "plot_attention",
    "SPEC",
]

TASK = "translate"
LEVELS = ("word", "char")
BUCKETS = ((1, 5), (6, 10), (11, 15), (16, 20), (21, 10**9))  # source tokens


@dataclass(frozen=True)
class TranslationDataConfig:
    """Which pairs, which direction, how they are split and batched (`data:` of a translate preset).

    Args:
        path: the tab-separated pair file.
        reverse: false: column 1 -> column 2; true: column 2 -> column 1 (the same file, the other way).
        levels: how column 1 and column 2 are split into tokens: "word" or "char" each.
        valid_fraction, test_fraction: shares of the distinct column-1 sentences held out.
        split_seed: seed of the split (kept apart from trainer.seed, so models with other seeds share it).
        max_length: pairs with a side longer than this many tokens are left out of every part (0: none).
        min_freq: tokens seen fewer times in the training part are <unk>.
        max_vocab: the most tokens kept per side, specials not counted (0: all).
        batch_size: pairs per batch (B), grouped by similar length.
    """

    path: str = ""
    reverse: bool = False
    levels: tuple[str, ...] = ("word", "char")
    valid_fraction: float = 0.05
    test_fraction: float = 0.05
    split_seed: int = 0
    max_length: int = 0
    min_freq: int = 1
    max_vocab: int = 0
    batch_size: int = 64

    def __post_init__(self):
        if len(self.levels) != 2 or any(level not in LEVELS for level in self.levels):
            raise ValueError(f"data.levels must be two of {LEVELS} (column 1, column 2), "
                             f"got {list(self.levels)}")
        for name in ("max_length", "max_vocab", "split_seed"):
            if getattr(self, name) < 0:
                raise ValueError(f"data.{name} must be >= 0, got {getattr(self, name)}")
        for name in ("min_freq", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"data.{name} must be >= 1, got {getattr(self, name)}")

    @property
    def source_level(self) -> str:
        return self.levels[1] if self.reverse else self.levels[0]

    @property
    def target_level(self) -> str:
        return self.levels[0] if self.reverse else self.levels[1]


@dataclass(frozen=True)
class TranslateRunConfig:
    """The whole configuration of `rnnkit train` for translation (what configs/translate_*.yaml hold)."""

    task: str = TASK
    model: Seq2SeqConfig = field(default_factory=Seq2SeqConfig)
    data: TranslationDataConfig = field(default_factory=TranslationDataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)

    def __post_init__(self):
        if self.task != TASK:
            raise ValueError(f"task must be {TASK!r} for a TranslateRunConfig, got {self.task!r}")


def upgrade_config(data: dict) -> dict:
    """Configs of every rnnkit so far are today's form."""
    return data


class TokenCrossEntropy(MeanLoss):
    """Target-token-weighted mean cross-entropy -> {loss (nats), ppl (exp)}."""

    def compute(self) -> dict[str, float]:
        loss = self.mean()
        return {"loss": loss, "ppl": math.exp(min(loss, 700.0))}


UNITS = {"loss": "cross-entropy (nats per target token)", "ppl": "perplexity"}


# ---- data ------------------------------------------------------------------------------------------------


def translation_pairs(data: TranslationDataConfig, path: str | Path | None = None) -> dict[str, list]:
    """{"train", "valid", "test", "all"}: (source, target) pairs of the file in the config's direction, split
    by distinct column-1 sentence and filtered by data.max_length."""
    pairs = read_pairs(path or data.path)
    split = split_pairs(pairs, data.valid_fraction, data.test_fraction, data.split_seed)
    parts = dict(zip(("train", "valid", "test"), split, strict=True))
    parts["all"] = pairs
    levels = data.levels
    for name, part in parts.items():
        if data.max_length:
            part = [(a, b) for a, b in part if len(tokenize_sentence(a, levels[0])) <= data.max_length
                    and len(tokenize_sentence(b, levels[1])) <= data.max_length]
        parts[name] = [(b, a) for a, b in part] if data.reverse else part
    return parts


def _vocabularies(data: TranslationDataConfig, train: list[tuple[str, str]]) -> tuple[Vocabulary, Vocabulary]:
    limit, level = data.max_vocab or None, (data.source_level, data.target_level)
    source = pair_vocabulary((tokenize_sentence(s, level[0]) for s, _ in train), data.min_freq, limit)
    target = pair_vocabulary((tokenize_sentence(t, level[1]) for _, t in train), data.min_freq, limit)
    return source, target


def translate_loss(model: Seq2Seq, batch, carry) -> StepOutput:
    """Teacher-forced cross-entropy of one batch (label-smoothed in training, plain in eval)."""
    src, src_lengths, tgt_in, tgt_out = batch
    _, _, loss = model(src, src_lengths, tgt_in, tgt_out)
    return StepOutput(loss, None, int((tgt_out != PAD_ID).sum()))


def _sorted_batches(dataset: SentencePairs, batch_size: int, rank: int = 0, world_size: int = 1):
    """Fixed batches of similar source length (validation, evaluation), rank r taking every world_size-th."""
    order = sorted(range(len(dataset)), key=lambda i: len(dataset[i][0]))[rank::world_size]
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    return DataLoader(dataset, batch_sampler=batches, collate_fn=pair_collate)


def translate_task(config: TranslateRunConfig, vocabularies: tuple[Vocabulary, Vocabulary] | None = None):
    """The Task (model, batches, metrics), the config with the vocabulary sizes filled in, the
    vocabularies."""
    data = config.data
    if not data.path:
        raise ValueError("data.path is empty: give the pair file (--data PATH or data.path in the config)")
    parts = translation_pairs(data)
    if not parts["train"] or not parts["valid"]:
        raise ValueError(f"{data.path}: {len(parts['train'])} training and {len(parts['valid'])} validation "
                         f"pairs after data.max_length={data.max_length}; expected both > 0")
    source, target = vocabularies or _vocabularies(data, parts["train"])
    sizes = {"source_vocab_size": len(source), "target_vocab_size": len(target)}
    for name, size in sizes.items():
        if getattr(config.model, name) not in (0, size):
            raise ValueError(f"model.{name} is {getattr(config.model, name)} but the data's vocabulary has "
                             f"{size} tokens (set it to 0 to take it from the data)")
    config = dataclasses.replace(config, model=dataclasses.replace(config.model, **sizes))
    train = SentencePairs(parts["train"], source, target, data.source_level, data.target_level)
    valid = SentencePairs(parts["valid"], source, target, data.source_level, data.target_level)
    lengths = [len(x) + len(y) for x, y in train.examples]
    seed = config.trainer.seed

    def train_batches(rank: int, world_size: int, epoch: int):
        batches = length_batches(lengths, data.batch_size, seed, epoch, rank, world_size)
        return DataLoader(train, batch_sampler=batches, collate_fn=pair_collate)

    def valid_batches(rank: int, world_size: int, epoch: int):
        return _sorted_batches(valid, data.batch_size, rank, world_size)

    model = Seq2Seq(config.model)
    parameters = sum(p.numel() for p in model.parameters())
    limits = {"max_source_length": max(len(x) for x, _ in train.examples),
              "max_target_length": max(len(y) for _, y in train.examples),
              "length_ratio": max(len(y) / len(x) for x, y in train.examples)}
    task = Task(
        name=TASK,
        model=model,
        loss=translate_loss,
        train_batches=train_batches,
        valid_batches=valid_batches,
        metrics=lambda: {"cross_entropy": TokenCrossEntropy()},
        units=UNITS,
        plot=_plot_extras(config, len(target), parameters, len(train)),
        metadata={"config": to_dict(config), "source_vocabulary": source.to_json(),
                  "target_vocabulary": target.to_json(), **limits},
    )
    return task, config, (source, target)


def _plot_extras(config: TranslateRunConfig, vocab_size: int, parameters: int, pairs: int) -> dict:
    m = config.model
    direction = f"{config.data.source_level} -> {config.data.target_level}"
    encoder = f"{m.encoder.num_layers} x {m.encoder.hidden_size} {'bi-' if m.encoder.bidirectional else ''}"
    subtitle = (f"{encoder}{m.encoder.cell} -> {m.decoder.num_layers} x {m.decoder.hidden_size} "
                f"{m.decoder.cell}, attention {m.attention}, {parameters:,} parameters; {direction}, "
                f"{pairs:,} training pairs")
    return {"subtitle": subtitle,
            "references": {"loss": [[math.log(vocab_size), f"uniform over V = {vocab_size:,}: ln V"]]}}


def build(config: TranslateRunConfig, resume_dir: Path | None) -> BuiltTask:
    """The engine's build step; the vocabularies go to vocabulary.json (read back on resume)."""
    vocabularies = None
    if resume_dir is not None:
        vocab_file = resume_dir / "vocabulary.json"
        if not vocab_file.is_file():
            raise FileNotFoundError(f"cannot resume: {vocab_file} not found (is {resume_dir} an rnnkit run?)")
        saved = json.loads(vocab_file.read_text(encoding="utf-8"))
        vocabularies = (Vocabulary.from_json(saved["source"]), Vocabulary.from_json(saved["target"]))
    task, config, (source, target) = translate_task(config, vocabularies)
    text = json.dumps({"source": source.to_json(), "target": target.to_json()}, ensure_ascii=False)
    return BuiltTask(task, config, {"vocabulary.json": text})


# ---- scoring ---------------------------------------------------------------------------------------------


def detokenize(tokens: list[str], level: str) -> str:
    """Tokens back to a sentence: characters joined; words joined by spaces, then no space before closing
    punctuation or around an apostrophe inside a word ("don ' t ." -> "don't.")."""
    if level == "char":
        return "".join(tokens)
    text = " ".join(tokens)
    text = re.sub(r"(\w) ' (\w)", r"\1'\2", text)
    text = re.sub(r"\s+([.,!?;:%)\]}'])", r"\1", text)
    return re.sub(r"([(\[{$]) ", r"\1", text)


def score_translations(hypotheses: list[str], references: list[str], tokenize: str) -> dict[str, float]:
    """{bleu, chrf} of sacrebleu (corpus level, one reference each) with BLEU's `tokenize` ("zh", "13a")."""
    import sacrebleu

    if len(hypotheses) != len(references):
        raise ValueError(f"expected as many hypotheses as references, got {len(hypotheses)} and "
                         f"{len(references)}")
    bleu = sacrebleu.corpus_bleu(hypotheses, [references], tokenize=tokenize)
    chrf = sacrebleu.corpus_chrf(hypotheses, [references])
    return {"bleu": float(bleu.score), "chrf": float(chrf.score)}


# ---- the trained model -----------------------------------------------------------------------------------


def _config_of(meta: dict, path) -> TranslateRunConfig:
    try:
        return from_dict(TranslateRunConfig, upgrade_config(meta["config"]))
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: translation metadata is incomplete: {e!r}") from e


@dataclass
class TrainedTranslator:
    """A trained translation model, ready to use (`rnnkit.load(path)` of a translate model).

        >>> t = TrainedTranslator.from_file("runs/translate_en_zh")           # doctest: +SKIP
        >>> t.translate(["Tom is here."], beam=5)                             # doctest: +SKIP
        >>> t.evaluate("../shared/data/tatoeba_cmn_eng/cmn.txt", beam=5)["bleu"]  # doctest: +SKIP
    """

    model: Seq2Seq
    source_vocabulary: Vocabulary
    target_vocabulary: Vocabulary
    config: TranslateRunConfig
    metadata: dict
    path: Path

    @classmethod
    def from_file(cls, path: str | Path, map_location: str = "cpu") -> TrainedTranslator:
        from rnnkit.tasks import resolve_model_path

        path = resolve_model_path(path)
        state_dict, meta = load_model_file(path, task=TASK)
        config = _config_of(meta, path)
        try:
            source = Vocabulary.from_json(meta["source_vocabulary"])
            target = Vocabulary.from_json(meta["target_vocabulary"])
        except (KeyError, TypeError, ValueError) as e:
            raise CheckpointError(f"{path}: the vocabularies are missing from the metadata: {e!r}") from e
        model = Seq2Seq(config.model)
        try:
            model.load_state_dict({k: v.to(map_location) for k, v in state_dict.items()})
        except RuntimeError as e:
            raise CheckpointError(f"{path}: weights do not fit the model in its metadata: "
                                  f"{str(e).splitlines()[0]}") from e
        return cls(model.eval(), source, target, config, meta, path)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def bleu_tokenize(self) -> str:
        return "zh" if self.config.data.target_level == "char" else "13a"

    def encode(self, sentence: str, allow_long: bool = False) -> list[int]:
        """The source ids of a sentence (unknown tokens -> <unk>); ValueError for an empty source, a source of
        unknown tokens only, or (unless `allow_long`) one longer than any in training."""
        tokens = tokenize_sentence(sentence, self.config.data.source_level)
        if not tokens:
            raise ValueError(f"the source sentence is empty: expected at least one token, got {sentence!r}")
        ids = self.source_vocabulary.encode_tokens(tokens)
        if all(i == UNK_ID for i in ids):
            shown = " ".join(tokens[:5]) + (" ..." if len(tokens) > 5 else "")
            raise ValueError(f"every token of the source is unknown to the model's vocabulary ({len(tokens)} "
                             f"tokens: {shown!r}); nothing to translate")
        longest = self.metadata.get("max_source_length", 0)
        if longest and len(ids) > longest and not allow_long:
            raise ValueError(f"the source has {len(ids)} tokens, more than the {longest} of the longest "
                             "training source: split it, or allow it (--allow-long-source / allow_long=True)")
        return ids

    def max_new_tokens(self, source_length: int) -> int:
        """The most target tokens (with <eos>) decoded for a source of this length."""
        ratio = self.metadata.get("length_ratio", 3.0)
        cap = self.metadata.get("max_target_length", 200) + 1
        return max(2, min(cap * 2, math.ceil(ratio * source_length) + 5))

    def decode_ids(self, ids: list[int]) -> str:
        vocab = self.target_vocabulary
        tokens = [vocab.tokens[i] for i in ids if i not in (PAD_ID, BOS_ID, EOS_ID)]
        return detokenize(tokens, self.config.data.target_level)

    def translate_ids(self, sources: list[list[int]], beam: int = 1, length_penalty: float = 0.6,
                      n_best: int = 1, batch_size: int = 64) -> list[list[tuple[list[int], float]]]:
        """For each source (ids), the n_best (target ids, score) by greedy (beam 1) or beam search."""
        from rnnkit.decode import beam_search

        if beam < 1:
            raise ValueError(f"beam must be >= 1, got {beam}")
        if beam == 1 and n_best == 1:
            out = [None] * len(sources)
            order = sorted(range(len(sources)), key=lambda i: len(sources[i]))
            for start in range(0, len(order), batch_size):
                rows = order[start : start + batch_size]
                src, lengths = self._batch([sources[i] for i in rows])
                limits = torch.tensor([self.max_new_tokens(len(sources[i])) for i in rows])
                for i, ids in zip(rows, self.model.eval().greedy(src, lengths, limits), strict=True):
                    out[i] = [(ids, float("nan"))]
            return out
        results = []
        for ids in sources:
            src, lengths = self._batch([ids])
            with torch.no_grad():
                state = self.model.eval().start(src, lengths)
            found = beam_search(self.model, [BOS_ID], self.max_new_tokens(len(ids)), beam, state=state,
                                end_token=EOS_ID, length_penalty=length_penalty, n_best=n_best,
                                batch_dim=Seq2Seq.batch_dims(state))
            results.append([(h.ids, h.score) for h in found])
        return results

    def _batch(self, sources: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        src = torch.nn.utils.rnn.pad_sequence([torch.tensor(s) for s in sources], batch_first=True,
                                              padding_value=PAD_ID)  # (B, S)
        return src.to(self.device), torch.tensor([len(s) for s in sources])

    def translate(self, sentences: str | list[str], beam: int = 1, length_penalty: float = 0.6,
                  allow_long: bool = False) -> list[str]:
        """The translation of each sentence (greedy with beam=1, else beam search with the GNMT penalty)."""
        sentences = [sentences] if isinstance(sentences, str) else list(sentences)
        sources = [self.encode(s, allow_long) for s in sentences]
        return [self.decode_ids(best[0][0]) for best in self.translate_ids(sources, beam, length_penalty)]

    def attention(self, sentence: str, translation_ids: list[int] | None = None, beam: int = 1,
                  allow_long: bool = False):
        """(source tokens, target tokens with <eos>, weights (T, S)) of the model's translation of `sentence`
        (or of `translation_ids`), from a teacher-forced pass over the chosen tokens."""
        ids = self.encode(sentence, allow_long)
        if translation_ids is None:
            translation_ids = self.translate_ids([ids], beam)[0][0][0]
        src, lengths = self._batch([ids])
        tgt_in = torch.tensor([[BOS_ID, *translation_ids[:-1]]])  # (1, T): <bos> y
        with torch.no_grad():
            _, weights, _ = self.model.eval()(src, lengths, tgt_in.to(self.device))
        source_tokens = [self.source_vocabulary.tokens[i] for i in ids]
        target_tokens = [self.target_vocabulary.tokens[i] for i in translation_ids]
        return source_tokens, target_tokens, weights[0, : len(target_tokens)].cpu()

    def evaluate(self, data_path: str | Path, split: str = "test", beam: int = 1, length_penalty: float = 0.6,
                 limit: int = 0, batch_size: int = 64, examples: int = 0) -> dict:
        """BLEU and chrF (sacrebleu) of the model's translations of the pairs of `data_path` (read as in
        training, `split`: test, valid, train or all), per source-length bucket too, and the teacher-forced
        loss / perplexity. Sources longer than any in training are skipped and counted (`skipped_long`)."""
        parts = translation_pairs(self.config.data, data_path)
        if split not in parts:
            raise ValueError(f"split must be one of {sorted(parts)}, got {split!r}")
        pairs = parts[split][:limit] if limit else parts[split]
        if not pairs:
            raise ValueError(f"{data_path} ({split}) holds no pair to evaluate")
        level, longest = self.config.data.source_level, self.metadata.get("max_source_length", 0)
        kept, sources = [], []
        for s, t in pairs:
            tokens = tokenize_sentence(s, level)
            if longest and len(tokens) > longest:
                continue
            kept.append((s, t))
            sources.append(self.source_vocabulary.encode_tokens(tokens))
        if not kept:
            raise ValueError(f"every source of {data_path} ({split}) is longer than the model's {longest} "
                             "tokens")
        best = self.translate_ids(sources, beam, length_penalty, batch_size=batch_size)
        hypotheses = [self.decode_ids(b[0][0]) for b in best]
        references = [t for _, t in kept]
        result = {"pairs": len(kept), "skipped_long": len(pairs) - len(kept), "beam": beam,
                  "tokenize": self.bleu_tokenize(),
                  "unknown_source_tokens": sum(i == UNK_ID for s in sources for i in s),
                  **score_translations(hypotheses, references, self.bleu_tokenize()), **self._loss(kept)}
        buckets = {}
        for lo, hi in BUCKETS:
            rows = [i for i, s in enumerate(sources) if lo <= len(s) <= hi]
            if rows:
                name = f"{lo}-{hi}" if hi < 10**9 else f"{lo}+"
                scores = score_translations([hypotheses[i] for i in rows], [references[i] for i in rows],
                                            self.bleu_tokenize())
                buckets[name] = {"pairs": len(rows), **scores}
        result["by_source_length"] = buckets
        result["examples"] = [{"source": s, "reference": t, "translation": h}
                              for (s, t), h in list(zip(kept, hypotheses, strict=True))[:examples]]
        return result

    def _loss(self, pairs: list[tuple[str, str]]) -> dict[str, float]:
        data = self.config.data
        dataset = SentencePairs(pairs, self.source_vocabulary, self.target_vocabulary, data.source_level,
                                data.target_level)
        metric = TokenCrossEntropy()
        with torch.no_grad():
            for batch in _sorted_batches(dataset, 64):
                metric.update(translate_loss(self.model.eval(), [t.to(self.device) for t in batch], None))
        return metric.compute()

    predict = translate


# ---- attention maps --------------------------------------------------------------------------------------

def _shown(token: str, missing: set[str]) -> str:
    """A token drawable in the chosen font: the characters it lacks as U+XXXX."""
    return "".join(f" U+{ord(c):04X} " if c in missing else c for c in token).strip()


def plot_attention(source_tokens: list[str], target_tokens: list[str], weights: torch.Tensor,
                   out_png: str | Path, title: str = "", font: str | None = None) -> Path:
    """Draw the (target x source) attention weights as a heat map; Chinese tokens in a CJK font (`font`, the
    machine's, else the one rnnkit ships: rnnkit.fonts); a character no font has is drawn as U+XXXX, with a
    warning naming it, never as a box."""
    from matplotlib.font_manager import FontProperties

    from rnnkit.fonts import find_cjk_font, missing_glyphs, needs_cjk
    from rnnkit.train.plots import pyplot

    plt = pyplot()
    props = None
    if needs_cjk(source_tokens + target_tokens + [title]):
        found = find_cjk_font(font)
        props = FontProperties(fname=found)
        missing = missing_glyphs(found, source_tokens + target_tokens + [title])
        if missing:
            names = " ".join(sorted(missing))
            warnings.warn(f"the font {Path(found).name} has no glyph for {names}; drawn as code points (pass "
                          "--font FILE with a font that has them)", stacklevel=2)
            source_tokens = [_shown(t, missing) for t in source_tokens]
            target_tokens = [_shown(t, missing) for t in target_tokens]
            title = _shown(title, missing)
    S, T = len(source_tokens), len(target_tokens)
    fig, ax = plt.subplots(figsize=(max(4.0, 0.5 * S + 2), max(3.0, 0.4 * T + 1.5)))
    image = ax.imshow(weights.numpy(), cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(S), source_tokens, rotation=60, ha="right", fontproperties=props)
    ax.set_yticks(range(T), target_tokens, fontproperties=props)
    ax.set_xlabel("source")
    ax.set_ylabel("translation")
    if title:
        ax.set_title(title, fontproperties=props, fontsize=10)
    fig.colorbar(image, ax=ax, fraction=0.04, label="attention weight")
    fig.tight_layout()
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=120)
    plt.close(fig)
    return out_png


# ---- the command line ------------------------------------------------------------------------------------

TRAIN_FLAGS = (
    ("--batch-size", "data.batch_size", int, "pairs per batch (B)"),
    ("--attention", "model.attention", str, "additive (Bahdanau), general (Luong) or none"),
    ("--embedding-size", "model.embedding_size", int, "width of the source and target embeddings (E)"),
)


def _add_decoding_arguments(parser) -> None:
    parser.add_argument("--beam", type=int, default=1, metavar="K", help="beam search with K hypotheses "
                        "(default: 1, greedy decoding)")
    parser.add_argument("--length-penalty", type=float, default=0.6, metavar="ALPHA",
                        help="GNMT length penalty alpha of the beam's score (default: 0.6; 0 ranks by log p)")


def add_evaluate_arguments(parser) -> None:
    parser.add_argument("--data", required=True, metavar="PATH", help="tab-separated pair file, read as in "
                        "training (direction, levels and split from the model file)")
    parser.add_argument("--split", choices=["test", "valid", "train", "all"], default="test",
                        help="which pairs: the held-out test part as in training (default), validation, "
                        "training, or every pair of the file (another file than the training one)")
    _add_decoding_arguments(parser)
    parser.add_argument("--limit", type=int, default=0, metavar="N",
                        help="the first N pairs only (default: all)")
    parser.add_argument("--show", type=int, default=0, metavar="N", help="print N example translations")


def evaluate_command(args) -> int:
    """`rnnkit evaluate`: BLEU, chrF (overall and per source-length bucket), loss and perplexity."""
    translator = TrainedTranslator.from_file(args.model)
    result = translator.evaluate(args.data, args.split, args.beam, args.length_penalty, args.limit,
                                 examples=args.show)
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
        return 0
    decoding = "greedy" if args.beam == 1 else f"beam {args.beam}, length penalty {args.length_penalty}"
    skipped = result["skipped_long"]
    skipped = f", {skipped} longer than any training source skipped" if skipped else ""
    print(f"{args.model} on {args.data} ({args.split}, {result['pairs']} pairs{skipped}; {decoding}): "
          f"BLEU {result['bleu']:.2f} (tokenize {result['tokenize']}), chrF {result['chrf']:.2f}, "
          f"cross-entropy {result['loss']:.4f} nats, perplexity {result['ppl']:.2f}")
    for name, bucket in result["by_source_length"].items():
        print(f"  source {name:>6} tokens: {bucket['pairs']:5d} pairs  BLEU {bucket['bleu']:6.2f}  "
              f"chrF {bucket['chrf']:6.2f}")
    for example in result["examples"]:
        print(f"  {example['source']}\n    reference:   {example['reference']}\n    translation: "
              f"{example['translation']}")
    return 0


def add_predict_arguments(parser) -> None:
    parser.add_argument("sentences", nargs="*", metavar="SENTENCE", help="sentences to translate")
    parser.add_argument("--input", metavar="FILE", default=None, help="a UTF-8 file of sentences, one a line")
    _add_decoding_arguments(parser)
    parser.add_argument("--n-best", type=int, default=1, metavar="N",
                        help="print the N best of the beam with their scores (default: 1)")
    parser.add_argument("--attention-map", metavar="PNG", default=None,
                        help="draw the source x translation attention weights of the (one) sentence")
    parser.add_argument("--font", metavar="FILE", default=None,
                        help="a font file with Chinese glyphs for --attention-map (default: the machine's, "
                        "else the subset of Noto Sans CJK SC rnnkit ships)")
    parser.add_argument("--allow-long-source", action="store_true",
                        help="translate sources longer than any in training (an error otherwise)")


def predict_command(args) -> int:
    """`rnnkit predict MODEL "sentence" ...` (also `rnnkit translate MODEL "sentence" ...`): one translation
    a line (--n-best: score<TAB>translation)."""
    sentences = list(args.sentences)
    if args.input is not None:
        try:
            text = Path(args.input).read_text(encoding="utf-8")
        except UnicodeDecodeError as e:
            raise ValueError(f"{args.input} is not valid UTF-8 (byte {e.start}): expected one sentence a "
                             "line") from None
        sentences += [line.strip() for line in text.splitlines() if line.strip()]
    if not sentences:
        raise ValueError("nothing to translate: give sentences as arguments or --input FILE")
    if args.attention_map and len(sentences) != 1:
        raise ValueError(f"--attention-map draws one sentence's map, got {len(sentences)} sentences")
    if not 1 <= args.n_best <= args.beam:
        raise ValueError(f"--n-best must be in [1, --beam {args.beam}], got {args.n_best}")
    translator = TrainedTranslator.from_file(args.model)
    command = getattr(args, "command", "predict")  # or its alias `rnnkit translate`, in the notes on stderr
    sources = [translator.encode(s, args.allow_long_source) for s in sentences]
    level, vocab = translator.config.data.source_level, translator.source_vocabulary
    unknown = [t for s in sentences for t in tokenize_sentence(s, level) if t not in vocab]
    if unknown:
        shown = ", ".join(repr(t) for t in dict.fromkeys(unknown[:10]))
        print(f"rnnkit {command}: note: {len(unknown)} source tokens unknown to the model, read as <unk>: "
              f"{shown}", file=sys.stderr)
    results = translator.translate_ids(sources, args.beam, args.length_penalty, args.n_best)
    for best in results:
        for ids, score in best:
            text = translator.decode_ids(ids)
            print(f"{score:.4f}\t{text}" if args.n_best > 1 else text, flush=True)
    if args.attention_map:
        source_tokens, target_tokens, weights = translator.attention(sentences[0], results[0][0][0],
                                                                     allow_long=args.allow_long_source)
        title = f"{sentences[0]} -> {translator.decode_ids(results[0][0][0])}"
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out = plot_attention(source_tokens, target_tokens, weights, args.attention_map, title, args.font)
        for w in caught:
            print(f"rnnkit {command}: warning: {w.message}", file=sys.stderr)
        print(f"attention map: {out}", file=sys.stderr)
    return 0


def _spec():
    from rnnkit.tasks import TaskSpec

    return TaskSpec(
        name=TASK,
        summary="sequence to sequence with attention: translate sentence pairs (e.g. Tatoeba "
        "English-Chinese), BLEU/chrF, beam search, attention maps",
        config_class=TranslateRunConfig,
        build=build,
        upgrade_config=upgrade_config,
        train_flags=TRAIN_FLAGS,
        add_evaluate_arguments=add_evaluate_arguments,
        evaluate=evaluate_command,
        add_predict_arguments=add_predict_arguments,
        predict=predict_command,
        load=TrainedTranslator.from_file,
    )


SPEC = _spec()
