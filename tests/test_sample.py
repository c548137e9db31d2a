import numpy as np
import pytest

from charrnn.checkpoint import Checkpoint
from charrnn.config import ModelConfig, TrainConfig
from charrnn.data import DataError, Vocab
from charrnn.model import forward, init_params, zero_state
from charrnn.sample import Stepper, generate


@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_stepper_matches_the_training_forward(cell, layers, rng):
    """The batch-1 sampler's fused path against model.forward over the same ids."""
    params = init_params(cell, 7, 8, layers, rng, dtype=np.float64)
    for p in params.values():
        p += rng.standard_normal(p.shape) * 0.2
    ids = rng.integers(0, 7, 12)
    logits, _, _ = forward(params, cell, ids[None, :], zero_state(cell, layers, 1, 8, np.float64))
    stepper = Stepper(params, cell)
    stepped = np.stack([stepper.step(i).copy() for i in ids])
    np.testing.assert_allclose(stepped, logits, rtol=1e-10, atol=1e-12)


def _ckpt(rng, cell="lstm"):
    vocab = Vocab.from_text("abcdefgh\n")
    return Checkpoint(params=init_params(cell, len(vocab), 16, 2, rng), vocab=vocab,
                      model_cfg=ModelConfig(model=cell, hidden_size=16), train_cfg=TrainConfig())


def test_same_rng_seed_same_text_and_only_vocabulary_characters(rng):
    ckpt = _ckpt(rng)
    a = "".join(generate(ckpt, "ab", 100, rng=np.random.default_rng(5)))
    b = "".join(generate(ckpt, "ab", 100, rng=np.random.default_rng(5)))
    c = "".join(generate(ckpt, "ab", 100, rng=np.random.default_rng(6)))
    assert a == b and a != c and len(a) == 100
    assert set(a) <= set(ckpt.vocab.chars)


def test_low_temperature_approaches_greedy(rng):
    ckpt = _ckpt(rng)
    ckpt.params["Why"] *= 100  # an untrained model's logits are near ties; make them distinct
    greedy = "".join(generate(ckpt, "a", 40, greedy=True))
    cold = "".join(generate(ckpt, "a", 40, temperature=1e-4, rng=np.random.default_rng(0)))
    assert cold == greedy


def test_seed_outside_vocabulary_is_refused(rng):
    with pytest.raises(DataError) as e:
        next(generate(_ckpt(rng), "aZ", 5))
    assert str(e.value) == "seed has characters not in the model's vocabulary: 'Z'"
