"""Tests for nasnet_jax/config_checks.py: one-line errors before anything is built."""

import pytest

from nasnet_jax import config_checks
from tests.conftest import tiny_config


@pytest.mark.parametrize(
  "override, message",
  [
    ({"learning_rate": -1.0}, r"config.learning_rate=-1.0 must be > 0"),
    ({"learning_rate": 0.0}, r"config.learning_rate=0.0 must be > 0"),
    ({"total_steps": 0}, r"config.total_steps=0 must be >= 1"),
    ({"batch_size": 0}, r"config.batch_size=0 must be >= 1"),
    ({"data.crop_size": -8}, r"config.data.crop_size=-8 must be >= 1"),
    ({"keep_checkpoints": 0}, r"config.keep_checkpoints=0 must be >= 1"),
    ({"warmup_steps": -5}, r"config.warmup_steps=-5 must be >= 0"),
    ({"data.scale_range": (2.0, 1.0)}, r"config.data.scale_range=\(2.0, 1.0\)"),
    ({"loss": "l2"}, r"config.loss='l2' is unknown"),
    # The cosine phase would rise from the peak to the end rate.
    (
      {"learning_rate": 1e-4, "end_learning_rate": 1e-3},
      r"config.end_learning_rate=0.001 must be <= config.learning_rate=0.0001",
    ),
  ],
)
def test_numeric_settings_are_checked_before_anything_is_built(override, message):
  config = tiny_config(None, **override)
  with pytest.raises(ValueError, match=message) as info:
    config_checks.check_config(config)
  assert "\n" not in str(info.value)


def test_mixture_entries_fill_in_the_data_defaults():
  config = tiny_config(
    None,
    **{
      "data.manual_dir": "/data/default",
      "data.train_split": "train",
      "data.mixture": (("rain100h", 2, "/data/h"), ("rain100l", 0.5, "", "test")),
    },
  )
  entries = config_checks.mixture_entries(config)
  assert entries == [
    config_checks.MixtureEntry("rain100h", 2.0, "/data/h", "train"),
    config_checks.MixtureEntry("rain100l", 0.5, "/data/default", "test"),
  ]
  assert config_checks.mixture_entries(tiny_config(None)) == []


@pytest.mark.parametrize(
  "mixture, message",
  [
    (("rain100h",), r"config.data.mixture\[0\]='rain100h': expected \(name, weight"),
    ((("rain100h", "heavy"),), r"config.data.mixture\[0\]: weight 'heavy' must be a number"),
    ((("rain100h", -1.0),), r"weight -1.0 must be a number >= 0"),
    ((("rain100h", 0.0), ("rain100l", 0)), r"the weights sum to 0"),
  ],
)
def test_a_bad_mixture_is_a_one_line_error(mixture, message):
  with pytest.raises(ValueError, match=message) as info:
    config_checks.mixture_entries(tiny_config(None, **{"data.mixture": mixture}))
  assert "\n" not in str(info.value)


def test_a_batch_that_does_not_split_over_the_devices_names_a_multiple():
  config_checks.check_batch_size(8, 4)
  with pytest.raises(
    ValueError, match="config.batch_size=6 does not divide over 4 devices; use a multiple of 4"
  ):
    config_checks.check_batch_size(6, 4)
