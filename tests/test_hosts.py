"""Tests for nasnet_jax/hosts.py in one process (several: tests/test_multihost.py)."""

import pytest

from nasnet_jax import command_line, hosts


def test_one_process_raises_its_own_error_or_nothing():
  assert hosts.failed_hosts(True) == [] and hosts.failed_hosts(False) == [0]
  hosts.raise_on_every_host(None, "the check")
  with pytest.raises(ValueError, match="bad setting"):
    hosts.raise_on_every_host(ValueError("bad setting"), "the check")
  with pytest.raises(PermissionError, match="read-only"):
    hosts.check_on_every_host(lambda: (_ for _ in ()).throw(PermissionError("read-only")), "x")
  hosts.check_on_every_host(lambda: None, "x")


def test_another_hosts_failure_is_a_user_error_naming_the_hosts():
  error = hosts.OtherHostError("--workdir failed on host(s) 1: their own error says why")
  assert command_line.is_user_error(error)
