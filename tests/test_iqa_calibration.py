"""benchmarks/iqa_calibration.py on two stand-in images (the real calibration images are
not redistributable): the official table read as IQA-PyTorch writes it, the differences,
the rounding variants and the one-line errors."""

import numpy as np
import pytest
from PIL import Image

from benchmarks import iqa_calibration
from nasnet_jax import no_reference as nr
from nasnet_jax.data import photos

OFFICIAL = """Method,I01.bmp,I02.bmp
brisque,10.5,20.25
brisque_matlab,70.68,-2.36
niqe,3.5,4.5
niqe_matlab,7.20,2.99
"""


@pytest.fixture(scope="module")
def calibration(tmp_path_factory):
  root = tmp_path_factory.mktemp("calibration")
  images = root / "dist_dir"
  images.mkdir()
  photo = photos.load_photo("coffee")[:120, :140]
  quantised = (photo // 64 * 60 + 30).astype(np.uint8)  # colour-quantised: many flat windows
  Image.fromarray(photo).save(images / "I01.bmp")
  Image.fromarray(quantised).save(images / "I02.bmp")
  (root / "results_official.csv").write_text(OFFICIAL)
  return str(images), str(root / "results_official.csv"), {"I01": photo, "I02": quantised}


def test_scores_are_set_beside_the_authors_values(calibration):
  images, official, originals = calibration
  rows = iqa_calibration.calibrate(images, official, variants=3)
  assert [r["image"] for r in rows] == ["I01", "I02"]
  first, second = rows
  assert first["niqe"] == nr.niqe(originals["I01"]) and first["niqe_matlab"] == 3.5
  assert second["brisque"] == nr.brisque(originals["I02"]) and second["brisque_matlab"] == 20.25
  assert second["flat"] > first["flat"]
  # Flat windows are where the variants part: none on the photo, a spread on the other.
  spread = [high - low for low, high in (r["adding_to_one"] for r in rows)]
  assert first["flat"] == 0 and spread[0] == 0 and spread[1] > 0
  # Without flat windows the exact 0 changes nothing and other factors next to nothing.
  assert first["exact_zero"] == first["brisque"] - 10.5
  assert first["svd"] == pytest.approx(first["brisque"] - 10.5, abs=1e-3)
  table = iqa_calibration.markdown(rows)
  assert f"| I02 | {second['niqe']:.4f} | 4.5000 |" in table
  assert "| image | BRISQUE − MATLAB: ours | flat windows exact 0 |" in table


def test_the_variants_change_only_the_rounding():
  factor = iqa_calibration.factors_adding_to_one(np.random.default_rng(1))
  assert sum(factor) == 1.0 and not np.array_equal(factor, nr.gaussian_factor())
  np.testing.assert_allclose(factor, nr.gaussian_factor(), rtol=1e-15)
  column, row = iqa_calibration.svd_factors()
  np.testing.assert_allclose(
    np.outer(column, row), np.outer(*[nr.gaussian_factor()] * 2), atol=1e-16
  )


def test_wrong_inputs_are_one_line_errors(calibration, tmp_path):
  images, official, _ = calibration
  (tmp_path / "other.csv").write_text("Method,I01.bmp\npsnr,1\n")
  with pytest.raises(ValueError, match=r"has no row \['brisque', 'niqe'\]: expected"):
    iqa_calibration.calibrate(images, str(tmp_path / "other.csv"))
  with pytest.raises(FileNotFoundError, match=r"lacks \['I01', 'I02'\]: pass ResultsCalibra"):
    iqa_calibration.calibrate(str(tmp_path), official)
