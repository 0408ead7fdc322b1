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
  with pytest.raises(KeyError):          # not a user error: the traceback stays
    command_line.run(missing)
  assert command_line.one_line(KeyError("a\n  b")) == "a b"   # no quotes, one line


@pytest.mark.parametrize("error, argv, expected", [
    (AttributeError(KeyError("'learnin_rate'\nDid you mean \"learning_rate\" instead of "
                             "\"learnin_rate\"?")),
     ["train.py", "--config=c.py", "--config.learnin_rate=1e-3"],
     "--config.learnin_rate: the config has no field 'learnin_rate'; did you mean "
     "--config.learning_rate?"),
    (KeyError("'modle'\nDid you mean \"model\" instead of \"modle\"?"),
     ["--config.modle.stages=2"],
     "--config.modle.stages: the config has no field 'modle'; did you mean "
     "--config.model.stages?"),
    (AttributeError("'zzzz'"), ["--config.zzzz=1"],
     "--config.zzzz: the config has no field 'zzzz'; see the config file for its fields"),
    (AttributeError("'NoneType' object has no attribute 'x'"), ["--workdir=w"], None),
])
def test_a_misspelt_config_field_names_the_flag_and_the_closest_field(error, argv, expected):
  assert command_line._config_field_error(error, argv) == expected


def test_quiet_drops_only_the_known_harmless_lines():
  command_line.quiet()
  drop = command_line._DropHarmless()
  record = lambda message: logging.LogRecord("absl", logging.WARNING, "f", 1, message, (),
                                             None)
  assert not drop.filter(record("OpenCV is not installed. We recommend using OpenCV"))
  assert not drop.filter(record("Unable to initialize backend 'tpu': not found"))
  assert not drop.filter(record("CheckpointManagerOptions.read_only=True, setting create=False."))
  assert not drop.filter(record("Given directory is read only=/w/checkpoints"))
  assert drop.filter(record("rain100h train: skipped 3 of 10 inputs; reasons in x"))
