"""Typed config: YAML presets, --set overrides, strict keys and types, clear errors."""

from pathlib import Path

import pytest
import torch

from rnnkit.models import LanguageModel
from rnnkit.tasks import get_task, task_of_config
from rnnkit.tasks.language_model import LanguageModelRunConfig
from rnnkit.train.config import (
    OptimConfig,
    TrainerConfig,
    apply_overrides,
    dump_yaml,
    from_dict,
    load_yaml,
    read_yaml_mapping,
    to_dict,
)

CONFIGS = sorted((Path(__file__).parents[1] / "rnnkit" / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_preset_loads_into_its_tasks_config(path):
    task = task_of_config(read_yaml_mapping(path))
    config = load_yaml(get_task(task).config_class, path)
    assert config.task == task
    if task == "language_model":
        assert config.model.vocab_size == 0  # taken from the data


def test_presets_exist():
    assert {"shakespeare_char.yaml", "wikitext2_word.yaml"} <= {p.name for p in CONFIGS}


def test_overrides_convert_and_nest():
    config = apply_overrides(
        LanguageModelRunConfig(),
        [
            "model.encoder.hidden_size=512",
            "optim.lr=1",
            "trainer.devices=auto",
            "trainer.devices=2",
            "model.encoder.cell=gru",
            "trainer.progress_bar=false",
            "data.path=some file.txt",
        ],
    )
    assert config.model.encoder.hidden_size == 512 and config.model.encoder.cell == "gru"
    assert config.optim.lr == 1.0 and isinstance(config.optim.lr, float)  # int -> float is lossless
    assert config.trainer.devices == 2 and config.trainer.progress_bar is False
    assert config.data.path == "some file.txt"
    assert LanguageModelRunConfig().model.encoder.hidden_size == 256  # frozen: the original is untouched


def test_unknown_key_suggests_the_nearest():
    with pytest.raises(
        ValueError,
        match=r"unknown config key 'model.encoder.hiden_size'; did you mean 'model.encoder.hidden_size'",
    ):
        apply_overrides(LanguageModelRunConfig(), ["model.encoder.hiden_size=3"])
    with pytest.raises(ValueError, match=r"unknown config key 'model.cell'.* model.encoder,"):
        apply_overrides(LanguageModelRunConfig(), ["model.cell=gru"])  # the flat key of earlier rnnkit
    with pytest.raises(ValueError, match="unknown config key 'modle'"):
        apply_overrides(LanguageModelRunConfig(), ["modle.cell=gru"])
    with pytest.raises(ValueError, match="is a value, not a section"):
        apply_overrides(LanguageModelRunConfig(), ["task.name=x"])
    with pytest.raises(ValueError, match="section.key=value"):
        apply_overrides(LanguageModelRunConfig(), ["model.encoder.cell"])


def test_wrong_types_name_expected_and_given():
    with pytest.raises(ValueError, match=r"'model.encoder.hidden_size' expects int, got 1.5 \(float\)"):
        apply_overrides(LanguageModelRunConfig(), ["model.encoder.hidden_size=1.5"])
    with pytest.raises(ValueError, match=r"expects int, got True \(bool\)"):
        from_dict(TrainerConfig, {"max_epochs": True})
    with pytest.raises(ValueError, match="expects float"):
        from_dict(OptimConfig, {"lr": "fast"})
    with pytest.raises(ValueError, match=r"config key .model. expects LanguageModelConfig, got 3 \(int\)"):
        from_dict(LanguageModelRunConfig, {"model": 3})


def test_dataclass_validation_runs():
    with pytest.raises(ValueError, match="optim.name must be"):
        apply_overrides(LanguageModelRunConfig(), ["optim.name=lbfgs"])
    with pytest.raises(ValueError, match=r"trainer.max_steps must be -1 \(no limit\) or >= 1, got 0"):
        TrainerConfig(max_steps=0)
    with pytest.raises(ValueError, match="data.bptt must be >= 1, got 0"):
        apply_overrides(LanguageModelRunConfig(), ["data.bptt=0"])
    with pytest.raises(
        ValueError, match="model.encoder.layer_norm applies to the rnn, lstm and gru cells only"
    ):
        apply_overrides(
            LanguageModelRunConfig(), ["model.encoder.cell=mingru", "model.encoder.layer_norm=true"]
        )


def test_yaml_roundtrip_and_file_errors(tmp_path):
    config = apply_overrides(LanguageModelRunConfig(), ["model.encoder.num_layers=3", "trainer.seed=7"])
    dump_yaml(config, tmp_path / "c.yaml")
    assert load_yaml(LanguageModelRunConfig, tmp_path / "c.yaml") == config
    (tmp_path / "bad.yaml").write_text("model:\n  hidden: 3\n")
    with pytest.raises(ValueError, match=r"bad.yaml: unknown config key 'model.hidden'"):
        load_yaml(LanguageModelRunConfig, tmp_path / "bad.yaml")
    with pytest.raises(FileNotFoundError, match="config file not found"):
        load_yaml(LanguageModelRunConfig, tmp_path / "missing.yaml")


ENCODERS = [
    {"cell": "rnn"}, {"cell": "lstm"}, {"cell": "gru"}, {"cell": "mingru"}, {"cell": "minlstm"},
    {"cell": "lstm", "layer_norm": True, "zoneout": 0.1},
]  # fmt: skip


@pytest.mark.parametrize("encoder", ENCODERS, ids=lambda e: "+".join(f"{k}={v}" for k, v in e.items()))
def test_a_preset_picks_any_cell_and_variant_and_the_model_trains(tmp_path, encoder):
    """`model: {encoder: {cell: lstm, layer_norm: true, zoneout: 0.1}}` in a preset, or the same by --set."""
    lines = "".join(f"    {k}: {str(v).lower()}\n" for k, v in encoder.items())
    (tmp_path / "p.yaml").write_text(f"model:\n  embedding_size: 8\n  encoder:\n{lines}    hidden_size: 8\n")
    config = load_yaml(LanguageModelRunConfig, tmp_path / "p.yaml")
    overrides = [f"model.encoder.{k}={str(v).lower()}" for k, v in encoder.items()]
    sizes = ["model.embedding_size=8", "model.encoder.hidden_size=8"]
    by_set = apply_overrides(LanguageModelRunConfig(), [*sizes, *overrides])
    assert config == by_set and all(getattr(config.model.encoder, k) == v for k, v in encoder.items())
    torch.manual_seed(0)
    model = LanguageModel(from_dict(type(config.model), {**to_dict(config.model), "vocab_size": 11})).train()
    tokens = torch.randint(0, 11, (2, 6))
    _, state, loss = model(tokens, targets=tokens)
    loss.backward()
    assert torch.isfinite(loss) and model.rnn.weight_ih_l0.grad.abs().sum() > 0
    if encoder.get("zoneout"):
        assert model.rnn.variants.zoneout == 0.1 and model.rnn.variants.layer_norm
    assert model.step(tokens[:, -1], state)[0].shape == (2, 11)


def test_exponent_floats_convert_although_yaml_reads_them_as_strings():
    config = apply_overrides(LanguageModelRunConfig(), ["optim.lr=1e-3", "optim.weight_decay=2.5E-4"])
    assert (config.optim.lr, config.optim.weight_decay) == (1e-3, 2.5e-4)
    with pytest.raises(ValueError, match=r"config key 'optim.lr' expects float, got 'fast'"):
        apply_overrides(LanguageModelRunConfig(), ["optim.lr=fast"])


def test_presets_are_found_by_name_from_any_folder(tmp_path, monkeypatch, capsys):
    from rnnkit.cli import main
    from rnnkit.presets import find_preset, list_presets

    monkeypatch.chdir(tmp_path)  # not the repository
    assert find_preset("tiny_char") == find_preset("tiny_char.yaml") and find_preset("tiny_char").is_file()
    (tmp_path / "mine.yaml").write_text("task: language_model\n")
    assert find_preset("mine.yaml") == Path("mine.yaml")  # a path wins
    with pytest.raises(FileNotFoundError, match="did you mean 'tiny_char'"):
        find_preset("tiny_chr")
    assert main(["configs"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == len(list_presets()) >= 6 and any(line.startswith("shakespeare_char ") for line in out)
    assert all(text for _, text in list_presets())  # every preset says what it is in its first line
