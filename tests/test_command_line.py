"""What every command shares: one-line user errors, config-field suggestions, quiet logs."""

import logging

import pytest

from nasnet_jax import command_line


def test_user_errors_become_one_line_and_bugs_keep_their_traceback(capsys):
  def bad_setting():
    raise ValueError("config.batch_size=0 must be >= 1\n(the global batch)")

  with pytest.raises(SystemExit) as info:
    command_line.run(bad_setting)
  assert info.value.code == 1
  assert capsys.readouterr().err == "error: config.batch_size=0 must be >= 1 (the global batch)\n"

  def missing():
    raise KeyError("no such dataset 'x'")

  with pytest.raises(KeyError):  # not a user error: the traceback stays
    command_line.run(missing)
  assert command_line.one_line(KeyError("a\n  b")) == "a b"  # no quotes, one line


@pytest.mark.parametrize(
  "error, argv, expected",
  [
    (
      AttributeError(
        KeyError("'learnin_rate'\nDid you mean \"learning_rate\" instead of \"learnin_rate\"?")
      ),
      ["train.py", "--config=c.py", "--config.learnin_rate=1e-3"],
      "--config.learnin_rate: the config has no field 'learnin_rate'; did you mean "
      "--config.learning_rate?",
    ),
    (
      KeyError("'modle'\nDid you mean \"model\" instead of \"modle\"?"),
      ["--config.modle.stages=2"],
      "--config.modle.stages: the config has no field 'modle'; did you mean --config.model.stages?",
    ),
    (
      AttributeError("'zzzz'"),
      ["--config.zzzz=1"],
      "--config.zzzz: the config has no field 'zzzz'; see the config file for its fields",
    ),
    (AttributeError("'NoneType' object has no attribute 'x'"), ["--workdir=w"], None),
  ],
)
def test_a_misspelt_config_field_names_the_flag_and_the_closest_field(error, argv, expected):
  assert command_line._config_field_error(error, argv) == expected


def test_quiet_keeps_warnings_and_drops_the_harmless_lines():
  from absl import logging as absl_logging  # pylint: disable=g-import-not-at-top

  from nasnet_jax import log_filters  # pylint: disable=g-import-not-at-top

  command_line.quiet()
  assert absl_logging.get_verbosity() == absl_logging.WARNING
  assert any(isinstance(f, log_filters.DropHarmless) for f in logging.getLogger("absl").filters)
  command_line.quiet(verbose=True)
  assert absl_logging.get_verbosity() == absl_logging.INFO
  command_line.quiet()
