"""Checkpoints: safetensors + JSON, bitwise round trips, atomic writes, no pickle, clear errors."""

import json
import math
import os
import pickle

import pytest
import torch
from safetensors.torch import save_file

import rnnkit
from rnnkit.models import LanguageModel, LanguageModelConfig, RecurrentConfig
from rnnkit.train.checkpoint import CheckpointError, load_model_file, load_tree, save_model, save_tree


@pytest.fixture(autouse=True)
def no_pickle(monkeypatch):
    """Nothing in this file may unpickle: loading must go through safetensors and JSON only."""

    def refuse(*args, **kwargs):
        raise AssertionError("unpickling was attempted")

    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(torch, "load", refuse)


def model(tie=False):
    torch.manual_seed(1)
    return LanguageModel(LanguageModelConfig(
        vocab_size=7, embedding_size=4, encoder=RecurrentConfig(hidden_size=4), tie_weights=tie
    ))


@pytest.mark.parametrize("tie", [False, True])
def test_model_roundtrip_is_bitwise(tmp_path, tie):
    m = model(tie)
    save_model(
        tmp_path / "m.safetensors", m, "language_model", config={"hidden_size": 4}, vocabulary=["a", "b"]
    )
    state, meta = load_model_file(tmp_path / "m.safetensors", task="language_model")
    assert meta["task"] == "language_model" and meta["config"] == {"hidden_size": 4}
    assert meta["versions"]["rnnkit"] == rnnkit.__version__ and "torch" in meta["versions"]
    for k, v in m.state_dict().items():
        assert torch.equal(state[k], v), k
    fresh = LanguageModel(m.config)
    fresh.load_state_dict(state)
    assert fresh.decoder.weight is fresh.embedding.weight if tie else True


def test_tree_roundtrip_keeps_structure_and_types(tmp_path):
    tree = {
        "state": {0: {"step": torch.tensor(3.0), "exp_avg": torch.randn(2, 3)}, 1: {}},
        "groups": [{"lr": 1e-3, "betas": (0.9, 0.999), "name": None, "flag": True}],
        "rng": torch.get_rng_state(),
        "carry": (torch.randn(2, 1, 4, dtype=torch.float64), torch.zeros(2, 1, 4)),
        "nan": math.inf,
        "ids": torch.arange(5),
    }
    save_tree(tmp_path / "s.safetensors", tree)
    back = load_tree(tmp_path / "s.safetensors")
    assert set(back["state"]) == {0, 1} and isinstance(back["groups"][0]["betas"], tuple)
    assert back["groups"][0]["name"] is None and back["groups"][0]["flag"] is True and back["nan"] == math.inf
    assert torch.equal(back["rng"], tree["rng"]) and back["rng"].dtype == torch.uint8
    assert back["carry"][0].dtype == torch.float64 and torch.equal(back["carry"][0], tree["carry"][0])
    assert torch.equal(back["state"][0]["exp_avg"], tree["state"][0]["exp_avg"])


def test_tree_refuses_arbitrary_objects(tmp_path):
    with pytest.raises(TypeError, match=r"cannot store object at checkpoint.bad"):
        save_tree(tmp_path / "s.safetensors", {"bad": object()})


def test_missing_corrupt_foreign_and_wrong_task(tmp_path):
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        load_model_file(tmp_path / "nope.safetensors")
    path = tmp_path / "m.safetensors"
    save_model(path, model(), "language_model")
    data = path.read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt or foreign"):
        load_model_file(tmp_path / "cut.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(os.urandom(64))
    with pytest.raises(CheckpointError, match="corrupt or foreign"):
        load_model_file(tmp_path / "junk.safetensors")
    save_file({"w": torch.zeros(2)}, tmp_path / "foreign.safetensors")  # a valid safetensors file, not ours
    with pytest.raises(CheckpointError):
        load_model_file(tmp_path / "foreign.safetensors")
    with pytest.raises(CheckpointError, match="task 'language_model', expected 'classifier'"):
        load_model_file(path, task="classifier")
    with pytest.raises(CheckpointError, match="'rnnkit.model' file, expected 'rnnkit.training_state'"):
        load_tree(path)


def test_other_format_version_is_refused(tmp_path):
    header = {
        "format": "rnnkit.model",
        "format_version": 99,
        "task": "language_model",
        "versions": {"rnnkit": "9.0"},
    }
    save_file({"w": torch.zeros(1)}, tmp_path / "v.safetensors", metadata={"rnnkit": json.dumps(header)})
    with pytest.raises(CheckpointError, match="format version 99 \\(written by rnnkit 9.0\\)"):
        load_model_file(tmp_path / "v.safetensors")


def test_write_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "m.safetensors"
    save_model(path, model(), "language_model", note="old")
    before = path.read_bytes()

    def crash(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        save_model(path, model(tie=True), "language_model", note="new")
    assert path.read_bytes() == before  # the old file is intact
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]  # and no temp file is left behind
