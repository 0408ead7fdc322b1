"""Scoring protocols against independent numpy references."""

import math

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from nasnet_jax import metrics


@pytest.fixture(scope="module")
def pair():
  rng = np.random.default_rng(0)
  # A smooth image plus texture, and a degraded copy: realistic SSIM values, not ~0.
  yy, xx = np.mgrid[0:42, 0:53]
  base = 120 + 60 * np.sin(xx / 7.0)[..., None] * np.cos(yy / 9.0)[..., None]
  gt = np.clip(base + rng.normal(0, 12, (42, 53, 3)), 0, 255).astype(np.uint8)
  pred = np.clip(gt.astype(float) + rng.normal(0, 9, gt.shape) + 4, 0, 255).astype(np.uint8)
  return pred, gt


def np_psnr(a, b, peak):
  return 10 * math.log10(peak**2 / np.mean((a.astype(float) - b.astype(float)) ** 2))


def np_ssim(a, b, window, data_range, sample_covariance=False):
  """Mean SSIM over the 'valid' positions of ``window`` (weights summing to 1)."""
  k = window.shape[0]
  pa = sliding_window_view(a.astype(float), (k, k))
  pb = sliding_window_view(b.astype(float), (k, k))
  mu_a = np.einsum("ijkl,kl->ij", pa, window)
  mu_b = np.einsum("ijkl,kl->ij", pb, window)
  var_a = np.einsum("ijkl,kl->ij", pa * pa, window) - mu_a**2
  var_b = np.einsum("ijkl,kl->ij", pb * pb, window) - mu_b**2
  cov = np.einsum("ijkl,kl->ij", pa * pb, window) - mu_a * mu_b
  if sample_covariance:
    n = k * k
    var_a, var_b, cov = (v * n / (n - 1) for v in (var_a, var_b, cov))
  c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
  s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
  return s.mean()


def gaussian_window(size=11, sigma=1.5):
  x = np.arange(size) - size // 2
  g = np.exp(-(x**2) / (2 * sigma**2))
  w = np.outer(g, g)
  return w / w.sum()


def matlab_y_reference(img, rounded):
  r, g, b = (img[..., i].astype(float) for i in range(3))
  y = 16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255  # in [16, 235]
  return np.round(y) if rounded else y / 255


def test_y8(pair):
  pred, gt = pair
  yp, yg = matlab_y_reference(pred, True), matlab_y_reference(gt, True)
  assert metrics.psnr(pred, gt, "y8") == pytest.approx(np_psnr(yp, yg, 255), abs=1e-9)
  assert metrics.ssim(pred, gt, "y8") == pytest.approx(
    np_ssim(yp, yg, gaussian_window(), 255), abs=2e-5
  )


def test_ydouble(pair):
  pred, gt = pair
  yp, yg = matlab_y_reference(pred, False), matlab_y_reference(gt, False)
  assert metrics.psnr(pred, gt, "ydouble") == pytest.approx(np_psnr(yp, yg, 1), abs=1e-9)
  assert metrics.ssim(pred, gt, "ydouble") == pytest.approx(
    np_ssim(yp * 255, yg * 255, gaussian_window(), 255), abs=2e-5
  )


def _pair_of_size(h, w, seed):
  rng = np.random.default_rng(seed)
  yy, xx = np.mgrid[0:h, 0:w]
  base = 120 + 60 * np.sin(xx / 17.0)[..., None] * np.cos(yy / 23.0)[..., None]
  gt = np.clip(base + rng.normal(0, 12, (h, w, 3)), 0, 255).astype(np.uint8)
  pred = np.clip(gt.astype(float) + rng.normal(0, 9, gt.shape) + 4, 0, 255).astype(np.uint8)
  return pred, gt


def ssim_m_downsample_reference(img):
  """Wang's ssim.m (2009) downsampling written out step by step: MATLAB's round (halves
  away from zero), imfilter's 'symmetric' borders and kernel centre floor((f + 1) / 2)
  (1-based), the f x f mean, then img(1:f:end, 1:f:end)."""
  m, n = img.shape
  f = max(1, int(math.floor(min(m, n) / 256 + 0.5)))
  if f == 1:
    return img, f
  centre = (f + 1) // 2

  def mirror(i, size):  # 'symmetric': ... b a | a b c | c b ...
    while i < 0 or i >= size:
      i = -i - 1 if i < 0 else 2 * size - 1 - i
    return i

  out = np.zeros_like(img)
  for u in range(1, f + 1):  # imfilter correlates: out(i) += h(u) img(i + u - c)
    rows = [mirror(i + u - centre, m) for i in range(m)]
    for v in range(1, f + 1):
      cols = [mirror(j + v - centre, n) for j in range(n)]
      out += img[np.ix_(rows, cols)] / (f * f)
  return out[::f, ::f], f


@pytest.mark.parametrize(
  "h, w, f", [(45, 50, 1), (384, 391, 2), (401, 384, 2), (640, 645, 3)]
)  # 640 / 256 = 2.5: MATLAB rounds up
def test_ydouble_ds_downsamples_like_ssim_m(h, w, f):
  pred, gt = _pair_of_size(h, w, seed=h)
  yp, yg = matlab_y_reference(pred, False) * 255, matlab_y_reference(gt, False) * 255
  (dp, fp), (dg, _) = ssim_m_downsample_reference(yp), ssim_m_downsample_reference(yg)
  assert fp == f
  np.testing.assert_allclose(metrics.downsample_like_ssim_m(yp), dp, atol=1e-9)
  assert metrics.ssim(pred, gt, "ydouble_ds") == pytest.approx(
    np_ssim(dp, dg, gaussian_window(), 255), abs=2e-5
  )
  assert metrics.psnr(pred, gt, "ydouble_ds") == metrics.psnr(pred, gt, "ydouble")
  if f == 1:
    assert metrics.ssim(pred, gt, "ydouble_ds") == metrics.ssim(pred, gt, "ydouble")
  else:  # the downsampling moves SSIM (upward: the box filter averages the noise away)
    assert metrics.ssim(pred, gt, "ydouble_ds") > metrics.ssim(pred, gt, "ydouble") + 1e-3


def test_matlab_round_takes_halves_away_from_zero():
  assert [metrics.matlab_round(x) for x in (0.5, 1.5, 2.5, -2.5, 2.4999)] == [1, 2, 3, -3, 2]


def test_rgb(pair):
  pred, gt = pair
  assert metrics.psnr(pred, gt, "rgb") == pytest.approx(np_psnr(pred, gt, 255), abs=1e-9)
  uniform = np.full((7, 7), 1 / 49)
  ref = np.mean(
    [np_ssim(pred[..., c], gt[..., c], uniform, 255, sample_covariance=True) for c in range(3)]
  )
  assert metrics.ssim(pred, gt, "rgb") == pytest.approx(ref, abs=1e-6)


def test_deraindrop(pair):
  pred, gt = pair
  h, w = 40, 52  # multiples of 4
  y = lambda im: np.round(im[:h, :w].astype(float) @ [0.299, 0.587, 0.114])
  yp, yg = y(pred), y(gt)
  # OpenCV's fixed-point Y may differ from the float formula by one level at ties.
  assert np.abs(metrics.opencv_y(pred[:h, :w]).astype(int) - yp).max() <= 1
  assert metrics.psnr(pred, gt, "deraindrop") == pytest.approx(np_psnr(yp, yg, 255), abs=0.05)
  uniform = np.full((7, 7), 1 / 49)
  assert metrics.ssim(pred, gt, "deraindrop") == pytest.approx(
    np_ssim(yp, yg, uniform, 255, sample_covariance=True), abs=2e-3
  )


def test_protocols_differ_and_identical_images_are_perfect(pair):
  pred, gt = pair
  # (ydouble_ds differs from ydouble in SSIM on large images only: tested above.)
  values = {p: metrics.psnr(pred, gt, p) for p in metrics.PROTOCOLS if p != "ydouble_ds"}
  assert len({round(v, 3) for v in values.values()}) == len(values)
  for p in metrics.PROTOCOLS:
    assert metrics.psnr(gt, gt, p) == math.inf
    assert metrics.ssim(gt, gt, p) == pytest.approx(1.0, abs=1e-6)


def test_bad_inputs():
  a = np.zeros((20, 20, 3), np.uint8)
  with pytest.raises(ValueError, match="differ in size"):
    metrics.psnr(a, np.zeros((20, 21, 3), np.uint8))
  with pytest.raises(ValueError, match="uint8"):
    metrics.psnr(a.astype(np.float32), a)
  with pytest.raises(ValueError, match="unknown protocol"):
    metrics.psnr(a, a, "yuv")


def test_to_uint8_rounds_and_clips():
  np.testing.assert_array_equal(
    metrics.to_uint8(np.array([-0.1, 0.5, 0.998, 1.2])), [0, 128, 254, 255]
  )
