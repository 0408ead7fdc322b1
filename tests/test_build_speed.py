"""benchmarks/build_speed.py at toy size: both builds run and are reported."""

from benchmarks import build_speed


def test_build_speed_times_both_builds(capsys):
  build_speed.main(["--train=4", "--test=2", "--repeats=1"])
  out = capsys.readouterr().out
  assert "4 + 2 pairs of 256x256 PNG" in out
  for line in ("build with the overlap check", "build without it"):
    seconds = float(out.split(line)[1].split()[0])
    assert seconds > 0
