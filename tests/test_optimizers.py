"""Tests for nasnet_jax/optimizers.py: the schedule's phases and the optimizer choice."""

import numpy as np
import optax
import pytest

from nasnet_jax import optimizers
from tests.conftest import tiny_config


def test_learning_rate_schedule_warmup_constant_cosine():
  config = tiny_config("unused")
  config.update(
    learning_rate=1.0, total_steps=100, warmup_steps=10, constant_steps=40, end_learning_rate=0.01
  )
  schedule = optimizers.make_schedule(config)
  np.testing.assert_allclose(
    [schedule(s) for s in (0, 5, 10, 30, 50, 75, 100)],
    [0.0, 0.5, 1.0, 1.0, 1.0, 0.505, 0.01],
    atol=1e-6,
  )
  config.update(warmup_steps=0, constant_steps=0, end_learning_rate=0.0)  # the paper's
  np.testing.assert_allclose(optimizers.make_schedule(config)(50), 0.5, atol=1e-6)
  config.optimizer = "sgd"
  with pytest.raises(ValueError, match="config.optimizer='sgd'"):
    optimizers.make_optimizer(config)


def test_adamw_applies_its_weight_decay():
  config = tiny_config("unused")
  config.update(optimizer="adamw", weight_decay=0.5, learning_rate=0.1, total_steps=10)
  tx, schedule = optimizers.make_optimizer(config)
  assert float(schedule(0)) == pytest.approx(0.1)
  params = {"w": np.ones(3, np.float32)}
  updates, _ = tx.update({"w": np.zeros(3, np.float32)}, tx.init(params), params)
  # No gradient: only the decay moves the weights, by lr * weight_decay * w.
  np.testing.assert_allclose(optax.apply_updates(params, updates)["w"], 0.95, rtol=1e-6)
  config.weight_decay = 0.0
  tx, _ = optimizers.make_optimizer(config)
  updates, _ = tx.update({"w": np.zeros(3, np.float32)}, tx.init(params), params)
  np.testing.assert_allclose(optax.apply_updates(params, updates)["w"], 1.0)
