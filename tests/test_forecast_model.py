"""The forecaster models: shapes of every kind, SegRNN's channel independence and last-value normalisation,
RevIN undone on the output, masked losses, seq2seq teacher forcing."""

from __future__ import annotations

import pytest
import torch

from rnnkit.baselines.forecast import naive
from rnnkit.models.forecaster import KINDS, LOSSES, Forecaster, ForecasterConfig
from rnnkit.models.recurrent import RecurrentConfig

SMALL = RecurrentConfig(cell="gru", hidden_size=16, num_layers=1)


def model(**kwargs) -> Forecaster:
    sizes = {"lookback": 8, "horizon": 4, "num_targets": 3, "segment_length": 4, "encoder": SMALL}
    torch.manual_seed(0)
    return Forecaster(ForecasterConfig(**{**sizes, **kwargs}))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("loss", LOSSES)
def test_every_kind_and_loss_forecasts_the_horizon_and_trains(kind, loss):
    covariates = 0 if kind == "segrnn" else 2
    net = model(kind=kind, loss=loss, num_covariates=covariates, teacher_forcing=0.5)
    past, target = torch.randn(5, 8, 3), torch.randn(5, 4, 3)
    cov = {} if not covariates else {"past_covariates": torch.randn(5, 8, 2),
                                      "future_covariates": torch.randn(5, 4, 2)}
    out = net(past, target=target, **cov)
    assert out.mean.shape == (5, 4, 3)
    assert (out.log_var is not None) == (loss == "gaussian")
    out.loss.backward()
    assert all(p.grad is not None for p in net.parameters() if p.requires_grad)


def test_segrnn_with_a_zero_head_is_the_naive_forecast():
    net = model(kind="segrnn", normalization="last")
    torch.nn.init.zeros_(net.head.weight)
    torch.nn.init.zeros_(net.head.bias)
    past = torch.randn(2, 8, 3)
    torch.testing.assert_close(net(past).mean, torch.as_tensor(naive(past.numpy(), 4)))


def test_segrnn_is_channel_independent():
    net = model(kind="segrnn").eval()
    past = torch.randn(2, 8, 3)
    changed = past.clone()
    changed[:, :, 2] += 5.0 * torch.randn(2, 8)
    a, b = net(past).mean, net(changed).mean
    torch.testing.assert_close(a[..., :2], b[..., :2])  # the other series' forecasts do not move
    assert not torch.allclose(a[..., 2], b[..., 2])


def test_revin_is_undone_on_the_output_and_scales_the_variance():
    net = model(kind="direct", normalization="revin", loss="gaussian").eval()
    past = torch.randn(4, 8, 3)
    shifted = net(3.0 * past + 7.0)
    base = net(past)
    torch.testing.assert_close(shifted.mean, 3.0 * base.mean + 7.0, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(shifted.log_var, base.log_var + 2 * torch.log(torch.tensor(3.0)),
                               rtol=1e-4, atol=1e-4)


def test_masked_targets_do_not_reach_the_loss():
    net = model(kind="direct")
    past, target = torch.randn(2, 8, 3), torch.randn(2, 4, 3)
    mask = torch.ones_like(target)
    mask[0, 1, 2] = 0.0
    garbage = target.clone()
    garbage[0, 1, 2] = 1e6  # a filled gap
    clean, dirty = net(past, target=target, mask=mask).loss, net(past, target=garbage, mask=mask).loss
    torch.testing.assert_close(clean, dirty)


def test_seq2seq_feeds_the_truth_under_teacher_forcing():
    net = model(kind="seq2seq", teacher_forcing=1.0)
    past, target = torch.randn(2, 8, 3), torch.randn(2, 4, 3)
    forced = net(past, target=target).mean
    other = target.clone()
    other[:, 0] += 1.0  # the first true value feeds step 2 onwards
    moved = net(past, target=other).mean
    torch.testing.assert_close(forced[:, 0], moved[:, 0])
    assert not torch.allclose(forced[:, 1:], moved[:, 1:])
    net.eval()  # in evaluation the decoder feeds itself: the targets change nothing
    torch.testing.assert_close(net(past, target=target).mean, net(past, target=other).mean)


def test_config_errors_name_the_numbers():
    with pytest.raises(ValueError, match="segment_length 48 must divide lookback 100"):
        ForecasterConfig(kind="segrnn", lookback=100, horizon=96)
    with pytest.raises(ValueError, match="model.kind must be one of"):
        ForecasterConfig(kind="transformer")
    with pytest.raises(ValueError, match=r"expected past of shape \(B, 8, 3\), got \(2, 8, 4\)"):
        model(kind="direct")(torch.randn(2, 8, 4))
