"""The run's plots: what they read (metrics.csv, the model file's metadata) and `rnnkit plot`."""

import engine_task
import pytest

from rnnkit.cli import main
from rnnkit.train.plots import moving_average, plot_runs, run_plot_info
from rnnkit.train.run import train_run


def test_moving_average_by_hand():
    assert moving_average([1.0, 3.0, 5.0, 7.0], 2) == [1.0, 2.0, 4.0, 6.0]
    assert moving_average([2.0], 5) == [2.0]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("plots")
    for name, steps in (("a", 7), ("b", 5)):
        train_run(engine_task.build, engine_task.config_for(folder / name, steps))
    return folder


def test_the_model_file_tells_the_plot_its_best_step_monitor_and_units(runs):
    info = run_plot_info(runs / "a")
    assert info["monitor"] == "valid_mae" and info["step"] in (3, 6, 7)
    assert info["units"] == {"loss": "squared error", "mae": "absolute error"}
    png = runs / "a" / "plots" / "loss.png"
    assert png.is_file() and png.stat().st_size > 10_000


def test_rnnkit_plot_redraws_one_run_and_overlays_several(runs, tmp_path, capsys):
    (runs / "a" / "plots" / "loss.png").unlink()
    assert main(["plot", str(runs / "a")]) == 0
    assert (runs / "a" / "plots" / "loss.png").is_file()
    assert main(["plot", str(runs / "a"), str(runs / "b"), "--out", str(tmp_path / "both.png")]) == 0
    assert capsys.readouterr().out.strip().endswith("both.png") and (tmp_path / "both.png").is_file()
    assert main(["plot", str(tmp_path)]) == 2
    assert "holds no metrics.csv: expected a run directory" in capsys.readouterr().err
    with pytest.raises(FileNotFoundError, match="holds no metrics.csv"):
        plot_runs([runs / "a", tmp_path], tmp_path / "x.png")


def test_a_language_model_run_draws_ln_v_bits_and_what_was_trained(tmp_path):
    import math

    from test_train_engine import tiny_config

    from rnnkit.tasks.language_model import train_language_model

    result = train_language_model(tiny_config(tmp_path, "trainer.max_steps=4", "trainer.run_name=lm"))
    extras = run_plot_info(result.run_dir)["plot"]
    (level, label), = extras["references"]["loss"]
    vocab_size = int(label.split("V = ")[1].split()[0])
    assert level == pytest.approx(math.log(vocab_size)) and "parameters; char level" in extras["subtitle"]
    assert extras["secondary"]["loss"] == ["bits per character", pytest.approx(1 / math.log(2))]
