"""benchmarks/build_speed.py at toy size: both builds and the search run and are reported."""

from benchmarks import build_speed


def test_build_speed_times_both_builds(capsys):
  build_speed.main(["--train=4", "--test=2", "--repeats=1", "--search_train=50", "--search_test=5"])
  out = capsys.readouterr().out
  assert "4 + 2 pairs of 256x256 PNG" in out
  for line in ("build with the overlap check", "build without it"):
    seconds = float(out.split(line)[1].split()[0])
    assert seconds > 0
  # The search finds the one planted copy (checked inside) and reports its time.
  assert float(out.split("50 train + 5 test fingerprints")[1].split()[0]) >= 0
