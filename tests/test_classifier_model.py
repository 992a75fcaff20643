"""The sequence classifier: padding never changes a prediction (each cell, both directions, each pooling)."""

import pytest
import torch

from rnnkit.models.classifier import POOLINGS, ClassifierConfig, SequenceClassifier
from rnnkit.models.recurrent import RecurrentConfig


def classifier(cell="lstm", bidirectional=False, pooling="last", **kwargs):
    encoder = RecurrentConfig(cell=cell, hidden_size=6, num_layers=2, bidirectional=bidirectional)
    config = ClassifierConfig(num_classes=3, embedding_size=5, pooling=pooling, encoder=encoder, **kwargs)
    return SequenceClassifier(config).eval()


def probabilities(model, inputs, lengths):
    with torch.no_grad():
        return torch.softmax(model(inputs, torch.as_tensor(lengths)), dim=-1)


@pytest.mark.parametrize("pooling", POOLINGS)
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn", "mingru"])
def test_alone_and_in_a_padded_batch_agree(cell, bidirectional, pooling):
    torch.manual_seed(0)
    model = classifier(cell, bidirectional, pooling, vocab_size=40)
    lengths = [9, 4, 1, 6]
    tokens = torch.randint(1, 40, (4, 9))
    tokens[1, 4:] = 7  # padding of any value is never read
    batch = probabilities(model, tokens, lengths)
    for i, n in enumerate(lengths):
        alone = probabilities(model, tokens[i : i + 1, :n], [n])
        torch.testing.assert_close(batch[i], alone[0], atol=1e-6, rtol=0)


@pytest.mark.parametrize("pooling", POOLINGS)
def test_numeric_features_alone_and_in_a_batch_agree(pooling):
    torch.manual_seed(1)
    model = classifier("lstm", True, pooling, num_features=3)
    x = torch.randn(3, 8, 3)
    x[2, 5:] = 1e6  # large padding changes nothing
    batch = probabilities(model, x, [8, 2, 5])
    for i, n in enumerate([8, 2, 5]):
        alone = probabilities(model, x[i : i + 1, :n], [n])[0]
        torch.testing.assert_close(batch[i], alone, atol=1e-6, rtol=0)


def test_attention_weights_are_zero_on_padding_and_sum_to_one():
    model = classifier(pooling="attention", vocab_size=20)
    probabilities(model, torch.randint(1, 20, (2, 5)), [5, 2])
    weights = model.attention_weights
    assert weights[1, 2:].abs().sum() == 0
    torch.testing.assert_close(weights.sum(dim=1), torch.ones(2))


def test_loss_given_targets():
    model = classifier(vocab_size=20)
    logits, loss = model(torch.randint(1, 20, (2, 5)), torch.tensor([5, 3]), torch.tensor([0, 2]))
    assert logits.shape == (2, 3) and loss.ndim == 0


@pytest.mark.parametrize("kwargs, message", [
    ({"pooling": "sum"}, "model.pooling must be one of"),
    ({"vocab_size": 10, "num_features": 3}, "both set"),
    ({"dropout": 1.0}, "model.dropout must be a probability"),
])
def test_config_errors_name_the_key(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ClassifierConfig(**kwargs)


def test_sizes_must_be_known():
    with pytest.raises(ValueError, match="num_classes and model.vocab_size or model.num_features"):
        SequenceClassifier(ClassifierConfig())


def test_wrong_input_kind_is_refused():
    with pytest.raises(ValueError, match="reads token ids"):
        classifier(vocab_size=20)(torch.randn(1, 3), torch.tensor([3]))
    with pytest.raises(ValueError, match=r"reads features \(B, T, 3\)"):
        classifier(num_features=3)(torch.randn(1, 3, 2), torch.tensor([3]))
