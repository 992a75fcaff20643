"""The encoder factory: every cell and direction builds the right rnnkit.nn layer, shapes, lengths, variants
reaching the layer, init_state == None, and config errors that name the key, the expected and the given."""

import pytest
import torch

from rnnkit import nn as layers
from rnnkit.models.recurrent import CELLS, MIN_CELLS, RecurrentConfig, init_state, make_encoder

LAYER = {"rnn": layers.RNN, "lstm": layers.LSTM, "gru": layers.GRU,
         "mingru": layers.MinGRU, "minlstm": layers.MinLSTM}  # fmt: skip


CASES = [(cell, bi) for cell in CELLS for bi in (False, True)]


def first(state):
    return state[0] if isinstance(state, tuple) else state


@pytest.mark.parametrize("cell, bidirectional", CASES)
def test_every_cell_builds_with_the_output_size(cell, bidirectional):
    torch.manual_seed(0)
    config = RecurrentConfig(cell=cell, hidden_size=5, num_layers=2, bidirectional=bidirectional)
    encoder = make_encoder(config, input_size=3)
    assert type(encoder) is LAYER[cell] and encoder.batch_first and encoder.num_layers == 2
    out, state = encoder(torch.randn(4, 7, 3))  # (B, T, I)
    D = 2 if bidirectional else 1
    assert config.output_size == D * 5 and out.shape == (4, 7, config.output_size)
    assert first(state).shape == (2 * D, 4, 5)
    assert isinstance(state, tuple) == (cell == "lstm")
    time_first = make_encoder(config, input_size=3, batch_first=False)
    assert time_first(torch.randn(7, 4, 3))[0].shape == (7, 4, config.output_size)


@pytest.mark.parametrize("cell", CELLS)
def test_init_state_equals_none(cell):
    torch.manual_seed(0)
    config = RecurrentConfig(cell=cell, hidden_size=5, num_layers=2)
    encoder = make_encoder(config, input_size=3).double()
    x = torch.randn(2, 6, 3, dtype=torch.float64)
    state = init_state(config, 2, like=x)
    assert first(state).dtype == torch.float64 and first(state).shape == (2, 2, 5)
    torch.testing.assert_close(encoder(x, state)[0], encoder(x)[0], rtol=0, atol=0)
    y_t, _ = encoder.step(x[:, 0], state)  # every layer steps, from the same state
    torch.testing.assert_close(y_t, encoder(x)[0][:, 0])


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("cell", CELLS)
def test_lengths_are_honoured_where_the_layer_takes_them(cell, bidirectional):
    config = RecurrentConfig(cell=cell, hidden_size=4, num_layers=2, bidirectional=bidirectional)
    encoder = make_encoder(config, input_size=3).double()
    torch.manual_seed(0)
    x = torch.randn(3, 6, 3, dtype=torch.float64)
    out, state = encoder(x, lengths=[6, 4, 2])
    for b, n in enumerate([6, 4, 2]):  # each row alone, cut to its length, gives the same outputs and state
        out_alone, alone = encoder(x[b : b + 1, :n])
        torch.testing.assert_close(out[b, :n], out_alone[0])
        torch.testing.assert_close(first(state)[:, b], first(alone)[:, 0])
        assert not out[b, n:].any()  # torch.nn's packed contract: padded outputs are 0


def test_variants_reach_the_layer():
    config = RecurrentConfig(cell="lstm", hidden_size=6, num_layers=2, dropout=0.25, layer_norm=True,
                             recurrent_dropout=0.2, zoneout=0.1, weight_drop=0.3)  # fmt: skip
    encoder = make_encoder(config, input_size=4)
    assert encoder.variants == layers.Variants(
        layer_norm=True, recurrent_dropout=0.2, zoneout=0.1, weight_drop=0.3
    )
    assert encoder.dropout == 0.25 and hasattr(encoder, "layer_norm_c_weight_l1")
    out, _ = encoder.train()(torch.randn(2, 5, 4))
    out.sum().backward()
    assert encoder.layer_norm_ih_weight_l0.grad is not None
    gru = make_encoder(RecurrentConfig(cell="gru", zoneout=0.1, num_layers=1, dropout=0.5), input_size=4)
    assert gru.variants.zoneout == 0.1 and not gru.variants.layer_norm
    assert gru.dropout == 0.0  # one layer: no layer above to drop into (torch.nn warns otherwise)


def test_config_errors_name_the_key_the_expected_and_the_given():
    cases = [
        ({"cell": "lstmm"},
         r"model.encoder.cell must be one of \('rnn', 'lstm', 'gru', 'mingru', 'minlstm'\), got 'lstmm'"),
        ({"hidden_size": 0}, r"model.encoder.hidden_size must be an integer >= 1, got 0"),
        ({"num_layers": 1.5}, r"model.encoder.num_layers must be an integer >= 1, got 1.5"),
        ({"bidirectional": "yes"}, r"model.encoder.bidirectional must be true or false, got 'yes'"),
        ({"dropout": 1.0}, r"model.encoder.dropout must be a probability in \[0, 1\), got 1.0"),
        ({"zoneout": -0.1}, r"model.encoder.zoneout must be a probability in \[0, 1\), got -0.1"),
        ({"cell": "mingru", "layer_norm": True},
         r"model.encoder.layer_norm applies to the rnn, lstm and gru cells only: expected False for cell "
         r"'mingru', got True"),
        ({"cell": "minlstm", "zoneout": 0.1}, r"model.encoder.zoneout applies .* expected 0.0 .* got 0.1"),
    ]  # fmt: skip
    for kwargs, message in cases:
        with pytest.raises(ValueError, match=message):
            RecurrentConfig(**kwargs)


@pytest.mark.parametrize("cell", MIN_CELLS)
def test_min_cells_take_directions_and_dropout(cell):
    encoder = make_encoder(RecurrentConfig(cell=cell, num_layers=2, bidirectional=True, dropout=0.2), 3)
    assert encoder.bidirectional and encoder.dropout == 0.2
    assert make_encoder(RecurrentConfig(cell=cell, num_layers=1, dropout=0.2), 3).dropout == 0.0
