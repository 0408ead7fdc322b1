"""nasnet-derain-app in a real browser: headless Chromium (Debian's ``chromium`` and
``chromium-driver``; ``.ci/run`` installs them) uploads a rainy photo and an unreadable
file, waits for the result, and the downloaded photo equals the library's output."""

import argparse
import io
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import jax
import numpy as np
import pytest

pytest.importorskip("gradio")
pytest.importorskip("selenium")

from PIL import Image  # noqa: E402  pylint: disable=g-import-not-at-top

from nasnet_jax import app, derain_command, inference, pretrained  # noqa: E402
from nasnet_jax.data import photos, synthetic_rain  # noqa: E402
from tests.conftest import ROOT  # noqa: E402

TILE = 64  # the test photo is larger: the page runs it in (exact) tiles


def _rainy_photo() -> np.ndarray:
  """A real photo with rendered rain streaks: (120, 160, 3) uint8."""
  photo = photos.square(photos.load_photo("chelsea"), 160)[20:140] / 255.0
  rainy = synthetic_rain.add_rain(jax.random.key(0), photo, "streak", 0.6)
  return np.round(np.asarray(rainy) * 255).astype(np.uint8)


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
  port = _free_port()
  results = tmp_path_factory.mktemp("results")
  log = open(tmp_path_factory.mktemp("log") / "app.log", "w+")
  proc = subprocess.Popen(
    [
      sys.executable,
      "-m",
      "nasnet_jax.app",
      f"--port={port}",
      f"--tile={TILE}",
      f"--output_dir={results}",
    ],
    cwd=ROOT,
    stdout=log,
    stderr=subprocess.STDOUT,
  )
  url = f"http://127.0.0.1:{port}"
  deadline = time.time() + 180
  while True:
    try:
      urllib.request.urlopen(url, timeout=5).read()
      break
    except OSError:
      if proc.poll() is not None or time.time() > deadline:
        log.seek(0)
        proc.kill()
        pytest.fail(f"nasnet-derain-app did not start:\n{log.read()[-3000:]}")
      time.sleep(1)
  yield url
  proc.terminate()
  try:
    proc.wait(timeout=20)
  except subprocess.TimeoutExpired:
    proc.kill()
  log.seek(0)
  assert "open http://127.0.0.1:" in log.read()


@pytest.fixture(scope="module")
def browser():
  chromium = shutil.which("chromium") or shutil.which("chromium-browser")
  driver = shutil.which("chromedriver")
  if not chromium or not driver:
    pytest.fail(
      "the browser test needs Debian's chromium and chromium-driver: "
      "apt-get install chromium chromium-driver (.ci/run installs them)"
    )
  from selenium import webdriver  # pylint: disable=g-import-not-at-top

  options = webdriver.ChromeOptions()
  options.binary_location = chromium
  for argument in (
    "--headless=new",
    "--no-sandbox",
    "--disable-dev-shm-usage",
    "--window-size=1400,1100",
  ):
    options.add_argument(argument)
  chrome = webdriver.Chrome(
    options=options, service=webdriver.ChromeService(executable_path=driver)
  )
  yield chrome
  chrome.quit()


def test_the_page_derains_an_upload_like_the_library(server, browser, tmp_path):
  from selenium.webdriver.common.by import By  # pylint: disable=g-import-not-at-top
  from selenium.webdriver.support import expected_conditions  # pylint: disable=g-import-not-at-top
  from selenium.webdriver.support.ui import WebDriverWait  # pylint: disable=g-import-not-at-top

  rainy = _rainy_photo()
  Image.fromarray(rainy).save(tmp_path / "rainy.png")
  (tmp_path / "broken.png").write_bytes(b"this is not a PNG")
  browser.get(server)
  wait = WebDriverWait(browser, 240)
  upload = wait.until(
    expected_conditions.presence_of_element_located((By.CSS_SELECTOR, "#uploads input[type=file]"))
  )
  upload.send_keys(f"{tmp_path / 'rainy.png'}\n{tmp_path / 'broken.png'}")
  # (The page shows each name's stem and extension on two lines.)
  wait.until(lambda b: "broken" in b.find_element(By.ID, "uploads").text)
  browser.find_element(By.ID, "derain").click()
  link = wait.until(
    expected_conditions.presence_of_element_located(
      (By.CSS_SELECTOR, "#downloads a[href*='rainy_derained.png']")
    )
  )
  status = browser.find_element(By.ID, "status").text
  assert "Derained 1 of 2" in status and "Could not derain broken.png:" in status, status
  assert "/tmp" not in status and "gradio" not in status  # no temporary upload paths
  with urllib.request.urlopen(link.get_attribute("href")) as response:
    downloaded = np.asarray(Image.open(io.BytesIO(response.read())))
  # The library's output with the page's settings (and so its backend: ONNX Runtime on
  # a CPU with the onnx extra installed, else JAX).
  expected = derain_command.build_derainer(
    argparse.Namespace(
      checkpoint=None,
      backend="auto",
      tile=TILE,
      overlap=-1,
      ensemble=False,
      tile_batch=1,
      bf16=False,
    )
  )(rainy)
  np.testing.assert_array_equal(downloaded, expected)
  assert np.abs(expected.astype(int) - rainy.astype(int)).mean() > 0.5  # it did derain
  # The comparison slider shows both images.
  wait.until(lambda b: len(b.find_elements(By.CSS_SELECTOR, "#compare img")) >= 2)
  screenshot = os.environ.get("NASNET_APP_SCREENSHOT")
  if screenshot:  # how docs/images/app.png is made
    browser.save_screenshot(screenshot)


def test_the_job_keeps_format_and_bit_depth_and_reports_bad_files(tmp_path):
  model, params = pretrained()
  job = app.DerainJob(inference.Derainer(model, params), str(tmp_path / "out"))
  rainy16 = (_rainy_photo().astype(np.uint16) * 257)[:40, :48]
  import tifffile  # pylint: disable=g-import-not-at-top

  tifffile.imwrite(tmp_path / "deep.tif", rainy16)
  (tmp_path / "empty.jpg").write_bytes(b"")
  steps = []
  results, failures = job(
    [str(tmp_path / "deep.tif"), str(tmp_path / "empty.jpg")],
    progress=lambda value, desc: steps.append(value),
  )
  [result] = results
  out = tifffile.imread(result["output"])
  assert result["output"].endswith("deep_derained.tif") and out.dtype == np.uint16
  np.testing.assert_array_equal(out, inference.Derainer(model, params)(rainy16))
  assert [name for name, _ in failures] == ["empty.jpg"]
  assert steps[0] == 0 and steps[-1] == 1.0
  assert "Could not derain **empty.jpg**" in app.status_text(results, failures)
