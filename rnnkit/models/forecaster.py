"""Forecasters: a lookback window of L steps of F series -> the next `horizon` steps, at once or rolled out.

Three kinds (`ForecasterConfig.kind`), one contract: `model(past (B, L, F), future_covariates (B, horizon, C)
| None, past_covariates (B, L, C) | None, target (B, horizon, F) | None, mask (B, horizon, F) | None) ->
Forecast(mean (B, horizon, F), log_var (B, horizon, F) | None, loss | None)`.

    direct   the encoder (any rnnkit cell, models/recurrent.py) reads [past; past covariates]; one linear head
             maps its final state to the whole horizon, plus a per-step linear term of the future covariates
             (the direct multi-step strategy: no error accumulates over the horizon).
    segrnn   SegRNN (Lin et al. 2023, arXiv:2308.11200): channel-independent; each series' lookback is cut
             into L / W segments of W steps, embedded by Linear(W, d) + ReLU, read by the recurrent layer; the
             horizon is decoded in parallel (PMF): for each of the horizon / W output segments, one recurrent
             step from the final state with input [position embedding; channel embedding], and Linear(d, W).
    seq2seq  encoder, then a decoder of the same cell stepping through the horizon, fed its previous value
             (the truth with probability `teacher_forcing` in training: scheduled sampling, Bengio et al.
             2015).

Instance normalisation (`normalization`), per window and series, undone on the output:
    last    x - x_{L}: subtract the last value (SegRNN's choice; makes the naive forecast the zero output)
    revin   (x - mean) / std over the lookback (RevIN, Kim et al. 2022), with a learned affine per series
    none    the input as given (the task has already z-scored the series with training statistics)

Losses (`loss`), two of them probabilistic (prediction intervals, `Forecaster.interval`):
    mse, mae   a point forecast
    gaussian   the head also emits log sigma^2; the Gaussian negative log-likelihood
               0.5 (log sigma^2 + (y - mu)^2 / sigma^2); the interval is mu +- z sigma
    quantile   the head emits one value per level tau in `quantiles` (which holds 0.5, the point forecast);
               the pinball loss mean_tau max(tau (y - q_tau), (tau - 1)(y - q_tau)) (Koenker & Bassett 1978),
               whose minimiser is the tau-quantile; the outputs are sorted (monotone rearrangement,
               Chernozhukov et al. 2010) so the quantiles never cross; the interval is [q_lo, q_hi], no
               distribution assumed
`mask` (1 = observed) leaves filled-in missing targets out of the loss.

    >>> import torch
    >>> config = ForecasterConfig(kind="segrnn", segment_length=4, lookback=8, horizon=4, num_targets=3,
    ...                           encoder=RecurrentConfig(cell="gru", hidden_size=16, num_layers=1))
    >>> model = Forecaster(config)
    >>> out = model(torch.randn(2, 8, 3), target=torch.randn(2, 4, 3))
    >>> out.mean.shape, out.log_var, out.loss.shape
    (torch.Size([2, 4, 3]), None, torch.Size([]))
    >>> y, q = torch.tensor([3.0]), torch.tensor([[0.0, 1.0, 4.0]])  # under, under, over the target
    >>> round(pinball_loss(q, y, (0.1, 0.5, 0.9)).item(), 4)  # (0.1 * 3 + 0.5 * 2 + 0.1 * 1) / 3
    0.4667
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import NamedTuple

import torch
from torch import Tensor, nn

from .recurrent import RecurrentConfig, make_encoder

__all__ = ["KINDS", "LOSSES", "PROBABILISTIC", "NORMALIZATIONS", "ForecasterConfig", "Forecast", "Forecaster",
           "gaussian_nll", "pinball_loss", "quantile_bounds"]

KINDS = ("direct", "segrnn", "seq2seq")
LOSSES = ("mse", "mae", "gaussian", "quantile")
PROBABILISTIC = ("gaussian", "quantile")  # the losses that give prediction intervals
NORMALIZATIONS = ("none", "last", "revin")
_PREFIX = "model."


@dataclass(frozen=True)
class ForecasterConfig:
    """The `model` section of a forecasting preset.

    Args:
        kind: "direct", "segrnn" or "seq2seq" (module docstring).
        encoder: the recurrent layer (segrnn: its hidden_size is the segment embedding size d).
        segment_length: W, segrnn only; must divide lookback and horizon.
        normalization: "none", "last" or "revin".
        loss: "mse", "mae", "gaussian" (mean and log-variance) or "quantile" (pinball loss on `quantiles`).
        quantiles: loss quantile: the levels tau, increasing, in (0, 1), 0.5 among them (the point forecast);
            an interval of level l needs (1 - l) / 2 and (1 + l) / 2 among them (default: the 90% interval).
        dropout: on the final state before the head.
        teacher_forcing: seq2seq: probability of feeding the true previous value in training (1 = always).
        lookback, horizon, num_targets, num_covariates: L, horizon, F and C; 0 = taken from the data.
    """

    kind: str = "segrnn"
    encoder: RecurrentConfig = field(default_factory=lambda: RecurrentConfig(cell="gru", hidden_size=512,
                                                                            num_layers=1))
    segment_length: int = 48
    normalization: str = "last"
    loss: str = "mse"
    dropout: float = 0.0
    teacher_forcing: float = 1.0
    quantiles: tuple[float, ...] = (0.05, 0.5, 0.95)
    lookback: int = 0
    horizon: int = 0
    num_targets: int = 0
    num_covariates: int = 0

    def __post_init__(self):
        for name, choices in (("kind", KINDS), ("loss", LOSSES), ("normalization", NORMALIZATIONS)):
            if getattr(self, name) not in choices:
                raise ValueError(f"{_PREFIX}{name} must be one of {choices}, got {getattr(self, name)!r}")
        for name in ("segment_length", "lookback", "horizon", "num_targets", "num_covariates"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < (1 if name == "segment_length"
                                                                                   else 0):
                raise ValueError(f"{_PREFIX}{name} must be a non-negative integer, got {value!r}")
        for name in ("dropout", "teacher_forcing"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{_PREFIX}{name} must lie in [0, 1], got {getattr(self, name)}")
        if self.kind == "segrnn" and self.lookback and self.horizon:
            for name in ("lookback", "horizon"):
                if getattr(self, name) % self.segment_length:
                    raise ValueError(
                        f"segrnn: {_PREFIX}segment_length {self.segment_length} must divide {name} "
                        f"{getattr(self, name)} (e.g. segment_length 24 or 48 for lookback 96)"
                    )
        levels = self.quantiles
        if self.loss == "quantile" and (
            not all(0.0 < q < 1.0 for q in levels) or 0.5 not in levels
            or any(a >= b for a, b in zip(levels, levels[1:], strict=False))
        ):
            raise ValueError(f"{_PREFIX}quantiles must increase within (0, 1) and hold 0.5 (the point "
                             f"forecast), got {list(levels)}")
        if self.kind == "seq2seq" and self.encoder.bidirectional:
            raise ValueError("seq2seq: the decoder continues the encoder's state: expected "
                             "model.encoder.bidirectional false, got true")

    @property
    def outputs_per_value(self) -> int:
        """k: 2 (mean, log-variance) for the Gaussian loss, one per quantile for the quantile loss, else 1."""
        return {"gaussian": 2, "quantile": len(self.quantiles)}.get(self.loss, 1)

    @property
    def point_index(self) -> int:
        """Which of the k raw outputs is the point forecast: the median for the quantile loss, else 0."""
        return self.quantiles.index(0.5) if self.loss == "quantile" else 0


class Forecast(NamedTuple):
    """mean (B, horizon, F) in the input's scale (the median for the quantile loss); log_var (B, horizon, F)
    or None; loss (scalar) or None; quantiles (B, horizon, F, Q), increasing along Q, or None."""

    mean: Tensor
    log_var: Tensor | None = None
    loss: Tensor | None = None
    quantiles: Tensor | None = None


def gaussian_nll(mean: Tensor, log_var: Tensor, target: Tensor) -> Tensor:
    """0.5 (log sigma^2 + (y - mu)^2 / sigma^2 + log 2 pi), elementwise."""
    return 0.5 * (log_var + (target - mean) ** 2 * torch.exp(-log_var) + math.log(2 * math.pi))


def pinball_loss(quantiles: Tensor, target: Tensor, levels) -> Tensor:
    """The pinball (quantile) loss averaged over the levels: quantiles (..., Q), target (...) -> (...).

    rho_tau(u) = max(tau u, (tau - 1) u) with u = y - q_tau: under-forecasts cost tau per unit, over-forecasts
    1 - tau, so the expected loss is least at the tau-quantile of y.
    """
    tau = torch.as_tensor(levels, dtype=quantiles.dtype, device=quantiles.device)  # (Q,)
    u = target[..., None] - quantiles  # (..., Q)
    return torch.maximum(tau * u, (tau - 1) * u).mean(dim=-1)


def quantile_bounds(levels, level: float) -> tuple[int, int]:
    """The indices of the (1 - level) / 2 and (1 + level) / 2 quantiles among `levels`, or an error."""
    wanted = ((1 - level) / 2, (1 + level) / 2)
    found = [next((i for i, q in enumerate(levels) if math.isclose(q, w, abs_tol=1e-6)), None)
             for w in wanted]
    if None in found:
        raise ValueError(f"a {level:g} interval needs the quantiles {wanted[0]:g} and {wanted[1]:g}; this "
                         f"model has {list(levels)} (set model.quantiles, or choose the level)")
    return found[0], found[1]


def _final_state(state, directions: int) -> Tensor:
    """The last layer's final h, directions concatenated: (B, D * H) from h (L * D, B, H) or (h, c)."""
    h = state[0] if isinstance(state, tuple) else state
    return torch.cat(list(h[-directions:]), dim=-1)


class Forecaster(nn.Module):
    """See the module docstring; built from a ForecasterConfig whose sizes are filled in (non-zero)."""

    def __init__(self, config: ForecasterConfig):
        super().__init__()
        for name in ("lookback", "horizon", "num_targets"):
            if getattr(config, name) < 1:
                raise ValueError(f"{_PREFIX}{name} must be set (>= 1) to build a model, got "
                                 f"{getattr(config, name)}")
        self.config = config
        P, Fn, C, k = (config.horizon, config.num_targets, config.num_covariates, config.outputs_per_value)
        H = config.encoder.output_size
        self.dropout = nn.Dropout(config.dropout)
        if config.normalization == "revin":
            self.revin_weight = nn.Parameter(torch.ones(Fn))
            self.revin_bias = nn.Parameter(torch.zeros(Fn))
        if config.kind == "direct":
            self.encoder = make_encoder(config.encoder, Fn + C)
            self.head = nn.Linear(H, P * Fn * k)
            self.covariate_head = nn.Linear(C, Fn * k) if C else None
        elif config.kind == "segrnn":
            if C:
                raise ValueError(f"segrnn is channel-independent and reads no covariates: expected "
                                 f"num_covariates 0, got {C}")
            W, d = config.segment_length, config.encoder.hidden_size
            if config.encoder.bidirectional:
                raise ValueError("segrnn decodes from the final state: expected bidirectional false, got "
                                 "true")
            self.segment_embedding = nn.Sequential(nn.Linear(W, d), nn.ReLU())
            self.encoder = make_encoder(config.encoder, d)
            self.position_embedding = nn.Parameter(torch.randn(P // W, d // 2))
            self.channel_embedding = nn.Parameter(torch.randn(Fn, d - d // 2))
            self.head = nn.Linear(d, W * k)
        else:  # seq2seq
            self.encoder = make_encoder(config.encoder, Fn + C)
            self.decoder = make_encoder(config.encoder, Fn + C)
            self.head = nn.Linear(H, Fn * k)

    # ---- instance normalisation ----
    def _normalise(self, past: Tensor):
        """past (B, L, F) -> (normalised, (shift, scale)) with shift, scale (B, 1, F)."""
        kind = self.config.normalization
        if kind == "none":
            return past, (None, None)
        if kind == "last":
            shift = past[:, -1:, :].detach()  # (B, 1, F)
            return past - shift, (shift, None)
        shift = past.mean(dim=1, keepdim=True).detach()  # (B, 1, F)
        scale = torch.sqrt(past.var(dim=1, keepdim=True, unbiased=False) + 1e-5).detach()  # (B, 1, F)
        return (past - shift) / scale * self.revin_weight + self.revin_bias, (shift, scale)

    def _denormalise(self, mean: Tensor, log_var: Tensor | None, stats):
        shift, scale = stats
        if self.config.normalization == "revin":
            weight = self.revin_weight.abs() + 1e-5
            mean = (mean - self.revin_bias) / weight * scale
            log_var = None if log_var is None else log_var + 2 * torch.log(scale / weight)
        return (mean if shift is None else mean + shift), log_var

    # ---- the three kinds: normalised past -> raw outputs (B, horizon, F, k) ----
    def _direct(self, past, past_cov, future_cov):
        x = past if past_cov is None else torch.cat([past, past_cov], dim=-1)  # (B, L, F + C)
        _, state = self.encoder(x)
        h = self.dropout(_final_state(state, self.config.encoder.directions))  # (B, D * H)
        cfg = self.config
        out = self.head(h).view(len(x), cfg.horizon, cfg.num_targets, cfg.outputs_per_value)  # (B, P, F, k)
        if self.covariate_head is not None:
            out = out + self.covariate_head(future_cov).view_as(out)  # per-step term of (B, P, C)
        return out

    def _segrnn(self, past):
        cfg = self.config
        B, L, Fn = past.shape
        W, d, k = cfg.segment_length, cfg.encoder.hidden_size, cfg.outputs_per_value
        N, M = L // W, cfg.horizon // W  # input and output segments
        segments = past.permute(0, 2, 1).reshape(B * Fn, N, W)  # (B F, N, W): channel-independent
        _, state = self.encoder(self.segment_embedding(segments))  # h (1, B F, d)
        queries = torch.cat([self.position_embedding[None].expand(Fn, M, d // 2),  # (F, M, d/2)
                             self.channel_embedding[:, None].expand(Fn, M, d - d // 2)], dim=-1)  # (F, M, d)
        queries = queries.reshape(1, Fn * M, d).expand(B, -1, -1).reshape(B * Fn * M, 1, d)  # (B F M, 1, d)
        state = _repeat_state(state, M)  # each output segment starts from its series' final state
        y, _ = self.encoder(queries, state)  # (B F M, 1, d): one step, all segments in parallel
        out = self.head(self.dropout(y[:, 0])).view(B, Fn, M, W, k)  # (B, F, M, W, k)
        return out.reshape(B, Fn, M * W, k).permute(0, 2, 1, 3)  # (B, P, F, k)

    def _seq2seq(self, past, past_cov, future_cov, target):
        cfg = self.config
        x = past if past_cov is None else torch.cat([past, past_cov], dim=-1)  # (B, L, F + C)
        _, state = self.encoder(x)
        previous = past[:, -1]  # (B, F): the decoder's first input is the last observed value
        outputs = []
        for t in range(cfg.horizon):
            step_in = previous if future_cov is None else torch.cat([previous, future_cov[:, t]], dim=-1)
            y, state = self.decoder.step(step_in, state)  # (B, H)
            out = self.head(self.dropout(y)).view(len(x), cfg.num_targets, cfg.outputs_per_value)  # (B, F, k)
            outputs.append(out)
            point = out.sort(dim=-1).values if cfg.loss == "quantile" else out  # the quantiles as forward's
            previous = point[..., cfg.point_index]
            if target is not None and self.training and cfg.teacher_forcing > 0:
                use_truth = torch.rand(len(x), 1, device=x.device) < cfg.teacher_forcing  # (B, 1)
                previous = torch.where(use_truth, target[:, t], previous)
        return torch.stack(outputs, dim=1)  # (B, P, F, k)

    def forward(self, past: Tensor, future_covariates: Tensor | None = None,
                past_covariates: Tensor | None = None, target: Tensor | None = None,
                mask: Tensor | None = None) -> Forecast:
        """past (B, L, F) -> Forecast (mean (B, horizon, F), log_var, loss given target (B, horizon, F))."""
        cfg = self.config
        if past.dim() != 3 or past.shape[1:] != (cfg.lookback, cfg.num_targets):
            raise ValueError(f"expected past of shape (B, {cfg.lookback}, {cfg.num_targets}), "
                             f"got {tuple(past.shape)}")
        if cfg.num_covariates and (future_covariates is None or past_covariates is None):
            raise ValueError(f"this model reads {cfg.num_covariates} covariates: pass past_covariates and "
                             "future_covariates")
        x, stats = self._normalise(past)
        norm_target = None
        if target is not None and cfg.kind == "seq2seq":  # the decoder is fed values in the normalised scale
            norm_target, _ = self._normalise_like(target, stats)
        if cfg.kind == "direct":
            out = self._direct(x, past_covariates, future_covariates)
        elif cfg.kind == "segrnn":
            out = self._segrnn(x)
        else:
            out = self._seq2seq(x, past_covariates, future_covariates, norm_target)
        quantiles = None
        if cfg.loss == "quantile":
            ordered = out.sort(dim=-1).values.movedim(-1, 0)  # (Q, B, P, F): no crossing quantiles
            quantiles = self._denormalise(ordered, None, stats)[0].movedim(0, -1)  # (B, P, F, Q)
            mean, log_var = quantiles[..., cfg.point_index], None
        else:
            log_var = out[..., 1].clamp(-12.0, 12.0) if cfg.loss == "gaussian" else None  # (B, P, F)
            mean, log_var = self._denormalise(out[..., 0], log_var, stats)
        loss = None if target is None else self.loss(mean, log_var, target, mask, quantiles)
        return Forecast(mean, log_var, loss, quantiles)

    def interval(self, out: Forecast, level: float) -> tuple[Tensor, Tensor]:
        """The central `level` prediction interval of a probabilistic forecast: (lower, upper), (B, P, F).

        gaussian: mu -+ z sigma with z the standard normal's (1 + level) / 2 quantile; quantile: the model's
        (1 - level) / 2 and (1 + level) / 2 quantiles (an error names them when the model has not learnt
        them).
        """
        if self.config.loss == "gaussian":
            z = statistics.NormalDist().inv_cdf(0.5 + level / 2)
            half = z * torch.exp(0.5 * out.log_var)  # (B, P, F)
            return out.mean - half, out.mean + half
        if self.config.loss == "quantile":
            lo, hi = quantile_bounds(self.config.quantiles, level)
            return out.quantiles[..., lo], out.quantiles[..., hi]
        raise ValueError(f"a {self.config.loss} model gives no intervals: train with loss gaussian or "
                         "quantile")

    def _normalise_like(self, y: Tensor, stats):
        shift, scale = stats
        if self.config.normalization == "revin":
            return (y - shift) / scale * self.revin_weight + self.revin_bias, None
        return (y if shift is None else y - shift), None

    def loss(self, mean: Tensor, log_var: Tensor | None, target: Tensor, mask: Tensor | None = None,
             quantiles: Tensor | None = None) -> Tensor:
        """The mean of the configured elementwise loss over the observed (mask 1) targets."""
        if self.config.loss == "gaussian":
            values = gaussian_nll(mean, log_var, target)
        elif self.config.loss == "quantile":
            values = pinball_loss(quantiles, target, self.config.quantiles)  # (B, P, F)
        elif self.config.loss == "mae":
            values = (mean - target).abs()
        else:
            values = (mean - target) ** 2
        if mask is None:
            return values.mean()
        mask = mask.to(values.dtype)
        return (values * mask).sum() / mask.sum().clamp_min(1.0)


def _repeat_state(state, times: int):
    """Each batch row's state repeated `times` times along the batch: (L, B, d) -> (L, B * times, d)."""
    if isinstance(state, tuple):
        return tuple(_repeat_state(s, times) for s in state)
    return state.repeat_interleave(times, dim=1)

