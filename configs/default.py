"""The paper's recipe (NASNet, Qin & Wang): every dataset config overrides this.

Batch 2, random 240x240 crops with flips and rot90, L1 + (1 - SSIM), RAdam (0.9, 0.999)
with lr 2e-4 cosine-annealed to 0 over 300k steps.
"""

import ml_collections
from ml_collections import config_dict

from nasnet_jax import models


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.seed = 0

  # NASNet at the paper's size (3 stages x 18 blocks x 64 features, neuron attention,
  # fused stages): the defaults of nasnet_jax.models.NASNet, whose attributes document
  # each field. dtype "bfloat16" for mixed precision; conv_impl "cpu" for XLA:CPU's
  # fastest forms, "xla" for lax.conv.
  config.model = ml_collections.ConfigDict(models.default_model_config("nasnet"))

  config.data = ml_collections.ConfigDict()
  config.data.name = "synthetic_rain/mixed"  # a TFDS name (with config)
  config.data.data_dir = config_dict.placeholder(str)  # TFDS data_dir (None: default)
  config.data.manual_dir = config_dict.placeholder(str)  # where downloaded archives lie
  config.data.train_split = "train"
  config.data.eval_split = "test"
  config.data.crop_size = 240
  config.data.random_flip = True
  config.data.random_rotate = True
  config.data.pad_small_images = True  # reflect-pad images smaller than the crop (warns once)
  # Leave out of training the examples whose clean image the build found in another
  # split (overlap.txt beside the build: the same pixels or a resized / re-encoded copy).
  # Off: published splits stay as published.
  config.data.drop_test_overlap = False
  # Train on several datasets at once: entries (name, weight[, manual_dir[, split]]),
  # e.g. (("rain100h", 1.0, "/data/rain100"), ("raindrop", 1.0, "/data/raindrop")).
  # Empty: train on data.name alone. Evaluation always uses data.name / data.eval_split.
  config.data.mixture = ()
  # Fraction of each batch whose rainy input is re-rendered on device with fresh
  # synthetic rain over its clean image (0 disables), the rain type used, and for "mixed"
  # the relative odds of (streak, drop, mist).
  config.data.synthetic_rain_fraction = 0.0
  config.data.synthetic_rain_type = "mixed"
  config.data.synthetic_rain_weights = (1.0, 1.0, 1.0)
  # Fraction of training pairs made rain-free (rainy = clean), so that a photo without
  # rain is given back unchanged.
  config.data.clean_fraction = 0.0
  # The same random gamma, white balance and brightness for rainy and clean (before any
  # synthetic rain is rendered), and crops of crop_size * s (s log-uniform in the range)
  # resized to crop_size. When synthetic rain is rendered on the fly, random_flip and
  # random_rotate are applied on device after it (nasnet_jax.data.augment).
  config.data.photometric_augmentation = False
  config.data.scale_range = (1.0, 1.0)
  config.data.num_threads = 2
  config.data.prefetch = 4  # host batches read ahead by grain's threads
  config.data.device_prefetch = 2  # batches already on the devices ahead of the step

  config.batch_size = 2  # global, over all devices and hosts
  config.total_steps = 300_000
  # "l1_ssim" (NASNet's), "l1" or "charbonnier" (nasnet_jax.losses.image_loss). Images a
  # network sows as "stage_outputs" (DualStageNet's stage 1) add this weight times theirs.
  config.loss = "l1_ssim"
  config.intermediate_loss_weight = 1.0
  config.optimizer = "radam"  # or "adamw" (with weight_decay)
  config.weight_decay = 0.0
  # Learning rate: linear warmup, constant for constant_steps, then cosine to the end rate.
  config.learning_rate = 2e-4
  config.warmup_steps = 0
  config.constant_steps = 0
  config.end_learning_rate = 0.0
  config.adam_b1 = 0.9
  config.adam_b2 = 0.999

  # Periods in steps; 0 disables the periodic action (the last step still logs,
  # evaluates and checkpoints).
  config.log_every_steps = 100
  config.eval_every_steps = 5_000
  config.checkpoint_every_steps = 5_000
  config.keep_checkpoints = 3

  config.eval = ml_collections.ConfigDict()
  config.eval.protocols = ("y8", "rgb")  # the first is the headline number
  config.eval.max_images = 0  # 0: the whole split
  config.eval.num_sample_images = 4  # rainy | derained | clean strips per eval
  # Inference (nasnet_jax.inference): 0 runs whole images; else tiles of this core size
  # with `overlap` pixels of context (-1: the receptive-field radius, exact tiling).
  config.eval.tile = 0
  config.eval.overlap = -1
  config.eval.ensemble = False  # x8 flips/rotations, averaged
  config.eval.dtype = "float32"  # or "bfloat16"
  # A folder of real rainy photos without ground truth (SPA-Data's real test without its
  # ground truth, Internet-Data, your own): `evaluate.py --split=real_rain` derains them
  # and scores input vs output with the no-reference niqe and brisque (docs/evaluation.md).
  config.eval.real_rain_dir = config_dict.placeholder(str)
  return config


def ddsa_model() -> ml_collections.ConfigDict:
  """config.model for DDSA at nasnet_jax.models.DDSA's defaults (docs/ddsa.md says what
  is inferred)."""
  return ml_collections.ConfigDict(models.default_model_config("ddsa"))


def use_ddsa_recipe(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """DDSA with DRSformer's training recipe (docs/ddsa.md): L1, AdamW lr 3e-4 (weight decay
  1e-4), constant for 92k steps then cosine to 1e-6 at 300k, 128x128 crops with flips
  and rotations. Batch 8 is our choice (the note gives none)."""
  config.model = ddsa_model()
  config.loss = "l1"
  config.optimizer = "adamw"
  config.weight_decay = 1e-4
  config.learning_rate = 3e-4
  config.constant_steps = 92_000
  config.end_learning_rate = 1e-6
  config.total_steps = 300_000
  config.data.crop_size = 128
  config.batch_size = 8
  return config


def dual_stage_model() -> ml_collections.ConfigDict:
  """config.model for DualStageNet at nasnet_jax.models.DualStageNet's defaults
  (docs/dual_stage.md says what is inferred: the paper gives the structure, not the
  sizes)."""
  return ml_collections.ConfigDict(models.default_model_config("dual_stage"))


def use_dual_stage_recipe(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """DualStageNet, trained as DDSA (DRSformer's recipe: AdamW lr 3e-4, weight decay 1e-4,
  constant 92k steps then cosine to 1e-6 at 300k, 128x128 crops, batch 8) with the
  Charbonnier loss on both the intermediate and the final image (docs/dual_stage.md's
  inferred loss; the paper reports no recipe)."""
  use_ddsa_recipe(config)
  config.model = dual_stage_model()
  config.loss = "charbonnier"
  config.intermediate_loss_weight = 1.0
  return config


# Variants every paper-recipe dataset config takes after ":" (configs/spa_real.py:gpu).
DATASET_VARIANTS = ("", "gpu")
GPU_BATCH = 16


def with_variant(
  config: ml_collections.ConfigDict, variant: str, config_file: str
) -> ml_collections.ConfigDict:
  """``config`` as is (variant "") or for one GPU ("gpu", ``for_gpu``)."""
  if variant in ("", None):
    return config
  if variant == "gpu":
    return for_gpu(config)
  raise ValueError(
    f"{config_file}:{variant}: the variants are {config_file} (the paper's "
    f"recipe) and {config_file}:gpu"
  )


def for_gpu(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The recipe sized for one modern GPU (or TPU chip) instead of the paper's batch of 2.

  * bfloat16 computation, float32 parameters and optimizer state (``model.dtype``);
  * a batch of ``GPU_BATCH`` (16) 240x240 crops, which keeps a GPU busy where 2 leave
    it mostly idle; ``batch_size`` is global, so on N devices pass
    ``--config.batch_size=16N`` (and scale the learning rate as below);
  * the learning rate scaled by the square root of the batch ratio (sqrt(16 / 2) = 2.83,
    2e-4 -> 5.66e-4), the usual rule for Adam-type optimizers. It is written down, not
    tuned: no GPU has trained this recipe here yet;
  * 8 input threads reading 8 batches ahead, 2 batches on the device ahead of the step;
  * ``--config.model.remat=True`` recomputes each block in the backward pass if the
    paper's net does not fit in memory at this batch (not measured on a GPU yet).
  """
  ratio = GPU_BATCH / config.batch_size
  config.model.dtype = "bfloat16"
  config.batch_size = GPU_BATCH
  config.learning_rate = float(config.learning_rate) * ratio**0.5
  config.data.num_threads = 8
  config.data.prefetch = 8
  config.data.device_prefetch = 2
  return config
