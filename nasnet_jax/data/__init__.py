"""Datasets (TFDS builders, registered on import) and the grain input pipeline."""

from nasnet_jax.data import builders, layouts, overlap, synthetic_rain
from nasnet_jax.data.overlap import overlap_report
from nasnet_jax.data.pipeline import (
  Mixture,
  RandomCropFlipRotate,
  eval_examples,
  get_builder,
  get_data_source,
  train_dataset,
  train_iterator,
)
from nasnet_jax.data.synthetic_rain import RAIN_TYPES, add_rain, add_rain_batch
from nasnet_jax.data.synthetic_rain_builder import SyntheticRain

__all__ = [
  "Mixture",
  "RAIN_TYPES",
  "RandomCropFlipRotate",
  "builders",
  "get_builder",
  "layouts",
  "overlap",
  "overlap_report",
  "SyntheticRain",
  "add_rain",
  "add_rain_batch",
  "eval_examples",
  "get_data_source",
  "synthetic_rain",
  "train_dataset",
  "train_iterator",
]
