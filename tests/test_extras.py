"""Tests for nasnet_jax/extras.py: a missing optional dependency names its extra."""

import json

import pytest

from nasnet_jax import command_line, extras


def test_an_installed_module_is_returned():
  assert extras.require("json", "onnx", "ONNX export") is json


def test_a_missing_module_names_the_extra_to_install():
  with pytest.raises(
    extras.MissingExtraError,
    match=r"^ONNX export needs no_such_module_xyz, which is not installed: "
    r"pip install 'nasnet-jax\[onnx\]'$",
  ) as info:
    extras.require("no_such_module_xyz", "onnx", "ONNX export")
  assert isinstance(info.value, command_line.USER_ERRORS)  # one line, no traceback
