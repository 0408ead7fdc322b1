"""Tests for nasnet_jax/training_eval.py: the evaluation inside the training loop."""

import numpy as np

from nasnet_jax import image_io, training_eval
from tests.conftest import tiny_config


def test_sample_strips_keep_the_order_of_the_images(tmp_path, monkeypatch):
  """Several local devices score images on threads that finish in any order: the strip
  rows follow the image order all the same."""

  def reversed_evaluate(model, params, examples, protocols, on_image=None, options=None):
    del model, params, protocols, options
    examples = list(examples)
    for i in reversed(range(len(examples))):  # the last image finishes first
      on_image(i, examples[i], examples[i]["clean"])
    return [
      {"id": ex["id"], "psnr_y8": 30.0, "input_psnr_y8": 20.0, "ssim_y8": 0.9, "input_ssim_y8": 0.8}
      for ex in examples
    ]

  monkeypatch.setattr(training_eval.evaluation, "evaluate_model", reversed_evaluate)
  shades = (10, 120, 240)
  source = [
    {
      "rainy": np.full((4, 5, 3), v, np.uint8),
      "clean": np.full((4, 5, 3), v, np.uint8),
      "id": f"img{v}",
    }
    for v in shades
  ]
  config = tiny_config(None, **{"eval.num_sample_images": 3})
  training_eval.evaluate_during_training(config, None, None, source, str(tmp_path), 7)
  strip = image_io.read_image(str(tmp_path / "samples" / "step_00000007.png"))
  assert strip.shape == (12, 15, 3)
  assert [int(strip[4 * r, 0, 0]) for r in range(3)] == list(shades)
