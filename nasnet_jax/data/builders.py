"""TFDS builders for the public deraining benchmarks, read from a ``manual_dir``.

Nothing is downloaded: each builder reads the extracted archive from
``--config.data.manual_dir`` (``download_config.manual_dir`` for TFDS users), which may be
the archive root or the folder above it. Every example has ``rainy`` and ``clean``
(uint8 HxWx3, same size) and ``id`` (the rainy file's path relative to the dataset root).
Stored as ``array_record`` and read with ``tfds.data_source``: no TensorFlow needed.

=================  =========================================  =======================
name               configs / layouts                          splits
=================  =========================================  =======================
rain100l/h         PReNet, Rain200 or JORDER-E (detected)     train, test
spa_data           --                                         train, test
rain_cityscapes    official Cityscapes or DAF-Net (detected)  train, test
mpid               streak, drop, mist                         train, test
raindrop           --                                         train, test_a, test_b
paired_folders     any label; input/target folders            one per folder pair
=================  =========================================  =======================

A rainy image without its clean partner, a listed file that is missing or is a directory,
a size mismatch or an unreadable file is skipped, counted in a warning and written with
its reason to ``skipped.txt`` beside the built dataset; a split of which nothing can be
used is a one-line error naming its folders and a reason (and the full report). Clean
images that appear in two splits (the same pixels, or a resized / re-encoded copy) are
written to ``overlap.txt`` beside it, with a warning (``nasnet_jax.data.overlap``).
16-bit, grayscale, RGBA and JPEG inputs are stored as uint8 RGB (PNG). Building is
deterministic (examples keyed by id) and resumable: the pairs are checked and converted
first, in chunks saved under the TFDS download dir (``nasnet_jax.data.build_cache``), so a
killed build run again redoes only the chunks that were in flight (and TFDS's own
writing, which is a copy); TFDS's ``incomplete.*`` folder that a kill leaves behind does
no harm.
"""

from __future__ import annotations

import abc
import dataclasses
import os
import shutil

import numpy as np
import tensorflow_datasets as tfds
from absl import logging

from nasnet_jax.data import build_cache, layouts, local_build, overlap

SKIPPED_REPORT = "skipped.txt"


class PairedImageBuilder(
  local_build.BuiltLocally, tfds.core.GeneratorBasedBuilder, skip_registration=True
):
  """Base: rainy/clean pairs listed by ``nasnet_jax.data.layouts`` from a manual_dir."""

  VERSION = tfds.core.Version("1.1.0")
  RELEASE_NOTES = {
    "1.0.0": "Initial release.",
    "1.1.0": "overlap.txt: clean images shared between splits.",
  }
  # What the dataset root holds, for error messages.
  ROOT_DESCRIPTION = "dataset"

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
      builder=self,
      description=self.__doc__,
      features=tfds.features.FeaturesDict(
        {
          "rainy": tfds.features.Image(
            shape=(None, None, 3), dtype=np.uint8, encoding_format="png"
          ),
          "clean": tfds.features.Image(
            shape=(None, None, 3), dtype=np.uint8, encoding_format="png"
          ),
          "id": tfds.features.Text(),
        }
      ),
      supervised_keys=("rainy", "clean"),
    )

  @abc.abstractmethod
  def _is_root(self, folder: str) -> bool:
    """Whether ``folder`` is the root of an extracted copy of this dataset."""

  @abc.abstractmethod
  def _listings(self, root: str) -> dict[str, layouts.Listing]:
    """{split: pairs and skipped files} found under the dataset root."""

  def download_and_prepare(self, *args, **kwargs):
    self._final_data_dir = self.data_dir  # during the build, data_dir is a temporary one
    self._conversion_dir = None
    self._overlap = None
    result = super().download_and_prepare(*args, **kwargs)
    if self._overlap:
      self._overlap.log_summary(self.data_dir)
    if self._conversion_dir:  # built: the converted chunks are no longer needed
      shutil.rmtree(self._conversion_dir, ignore_errors=True)
      folder = self._conversion_dir
      for _ in range(3):  # <config>, <name>, nasnet_jax_conversion, if now empty
        folder = os.path.dirname(folder)
        try:
          os.rmdir(folder)
        except OSError:
          break
    return result

  def _manual_root(self, dl_manager) -> str:
    manual_dir = getattr(dl_manager, "_manual_dir", None)
    manual_dir = layouts.check_manual_dir(os.fspath(manual_dir) if manual_dir else None, self.name)
    return layouts.find_root(manual_dir, self._is_root, self.name, self.ROOT_DESCRIPTION)

  def conversion_dir(self, dl_manager) -> str:
    """Where the converted chunks of this build are kept until it has finished."""
    config = self.builder_config.name if self.builder_config else "default"
    return os.path.join(
      os.fspath(dl_manager.download_dir),
      "nasnet_jax_conversion",
      self.name,
      config,
      str(self.version),
    )

  def _split_generators(self, dl_manager):
    root = self._manual_root(dl_manager)
    listings = self._listings(root)
    if not listings:
      raise layouts.LayoutError(
        f"{self.name}: {root} holds no split of the dataset; expected {self.ROOT_DESCRIPTION}"
      )
    self._skipped: dict[str, list[tuple[str, str]]] = {}
    self._overlap = overlap.BuildOverlapCheck(overlap.dataset_name(self), listings)
    self._conversion_dir = self.conversion_dir(dl_manager)
    for split, listing in sorted(listings.items()):
      if not listing.pairs:
        self._fail_empty_split(split, listing, listing.skipped)
    logging.info("%s: reading %s, converted chunks in %s", self.name, root, self._conversion_dir)
    return {
      split: self._generate_examples(split, listing) for split, listing in sorted(listings.items())
    }

  def _generate_examples(self, split: str, listing: layouts.Listing):
    skipped = list(listing.skipped)
    kept = 0
    for example in build_cache.converted_pairs(listing.pairs, split, self._conversion_dir):
      if "skipped" in example:
        skipped.append((example["id"], example["skipped"]))
        continue
      kept += 1
      self._overlap.add(split, example["id"], example.pop("clean_fingerprint"))
      yield example["id"], example
    if not kept:
      self._fail_empty_split(split, listing, skipped)
    self._report_skipped(split, skipped, len(listing.pairs) + len(listing.skipped))
    self._overlap.split_done(split, self.data_dir)

  def _fail_empty_split(
    self, split: str, listing: layouts.Listing, skipped: list[tuple[str, str]]
  ) -> None:
    """Raises a one-line LayoutError for a split with no usable pair (TFDS's own error,
    "No examples were yielded", names neither the folder nor the reason), after writing
    every skipped input with its reason to ``skipped.txt`` in the conversion folder (the
    build's own folder is deleted when it fails)."""
    folders = ", ".join(listing.folders) or "its folders"
    if not skipped:
      raise layouts.LayoutError(
        f"{self.name} {split}: no input images in {folders} (under "
        f"the dataset root); expected {self.ROOT_DESCRIPTION}"
      )
    os.makedirs(self._conversion_dir, exist_ok=True)
    report = os.path.join(self._conversion_dir, SKIPPED_REPORT)
    with open(report, "w") as f:
      f.write("# split\tpath (relative to the dataset root)\treason\n")
      f.writelines(f"{split}\t{path}\t{reason}\n" for path, reason in skipped)
    path, reason = skipped[0]
    raise layouts.LayoutError(
      f"{self.name} {split}: none of the {len(skipped)} inputs in {folders} could be used, "
      f"e.g. {path}: {reason}; every file and reason is in {report}"
    )

  def _report_skipped(self, split: str, skipped, total: int) -> None:
    """Rewrites ``skipped.txt`` (split, path, reason per line) with this split added."""
    self._skipped[split] = skipped
    lines = [
      f"{s}\t{path}\t{reason}\n"
      for s, entries in sorted(self._skipped.items())
      for path, reason in entries
    ]
    with open(os.path.join(self.data_dir, SKIPPED_REPORT), "w") as f:
      f.write("# split\tpath (relative to the dataset root)\treason\n")
      f.writelines(lines)
    if skipped:
      final = getattr(self, "_final_data_dir", self.data_dir)
      message = (
        f"{self.name} {split}: skipped {len(skipped)} of {total} inputs; reasons "
        f"in {os.path.join(final, SKIPPED_REPORT)}"
      )
      logging.warning(message)


def skipped_report(builder: tfds.core.DatasetBuilder) -> list[tuple[str, str, str]]:
  """(split, path, reason) for every input the build of ``builder`` skipped."""
  path = os.path.join(builder.data_dir, SKIPPED_REPORT)
  if not os.path.exists(path):
    return []
  with open(path) as f:
    return [tuple(line.rstrip("\n").split("\t", 2)) for line in f if not line.startswith("#")]


_PNG_NOTE = "Inputs and ground truth must have the same size; anything unpaired is reported."


class _Rain100(PairedImageBuilder, skip_registration=True):
  VARIANT = "L"

  @property
  def ROOT_DESCRIPTION(self):  # noqa: N802
    v = self.VARIANT
    return (
      f"train/RainTrain{v} or test/Rain100{v} (PReNet), or Rain200 split folders "
      "with rain/ and norain/"
    )

  def _is_root(self, folder):
    return layouts.rain100_layout(folder, self.VARIANT) is not None

  def _listings(self, root):
    return layouts.rain100_listings(root, self.VARIANT)


_RAIN100_INSTRUCTIONS = (
  """\
Rain100{v} (Yang et al., JORDER, CVPR 2017). Any of these layouts, extracted into manual_dir:
1. PReNet's copy (https://github.com/csdwren/PReNet, "datasets"):
     train/RainTrain{v}/rain-N.png, norain-N.png   test/Rain100{v}/norain-NNN.png,
     test/Rain100{v}/rainy/rain-NNN.png
2. Rain200{v} (https://github.com/flyywh/JORDER-E-Deep-Image-Deraining-Visual-Analysis):
     <train folder>/rain/X2/norain-Nx2.png with <train folder>/norain/norain-N.png, and the
     same for a folder whose name says "test" (JORDER-E's own data/{{train,test}}/small/
     {{rain,norain}} too).
"""
  + _PNG_NOTE
)


class Rain100l(_Rain100):
  """Rain100L / Rain200L: light synthetic rain streaks (PReNet, Rain200 or JORDER-E layout)."""

  VARIANT = "L"
  MANUAL_DOWNLOAD_INSTRUCTIONS = _RAIN100_INSTRUCTIONS.format(v="L")


class Rain100h(_Rain100):
  """Rain100H / Rain200H: heavy synthetic rain streaks (PReNet, Rain200 or JORDER-E layout)."""

  VARIANT = "H"
  MANUAL_DOWNLOAD_INSTRUCTIONS = _RAIN100_INSTRUCTIONS.format(v="H")


class SpaData(PairedImageBuilder):
  """SPA-Data (Wang et al., SPANet, CVPR 2019): real rain, the paper's SPA-REAL."""

  MANUAL_DOWNLOAD_INSTRUCTIONS = """\
SPA-Data from https://stevewongv.github.io/derain-project.html. Concatenate
real_world.zip.00 ... .11 (cat real_world.zip.* > real_world.zip), unzip it and the test
set into manual_dir:
  real_world/000/000-f/000-f_x_y.png, real_world_gt/000/000_x_y.png, real_world.txt
  real_test_1000/rain/NNN.png, real_test_1000/gt/NNNgt.png
Lines of real_world.txt that point at a directory or a missing file are skipped and reported.
"""
  ROOT_DESCRIPTION = "real_world.txt or real_test_1000/"

  def _is_root(self, folder):
    return layouts.spa_is_root(folder)

  def _listings(self, root):
    return layouts.spa_listings(root)


class RainCityscapes(PairedImageBuilder):
  """RainCityscapes (Hu et al., DAF-Net, CVPR 2019): rain streaks and fog over Cityscapes.

  The paper's split: train = 9 cities of leftImg8bit_rain/train (9,432 images), test =
  the val cities lindau and munster (1,188 images).
  """

  MANUAL_DOWNLOAD_INSTRUCTIONS = """\
From https://www.cityscapes-dataset.com/downloads/ (login): leftImg8bit_trainval_rain.zip and
leftImg8bit_trainvaltest.zip, both unzipped into manual_dir:
  leftImg8bit_rain/{train,val}/<city>/<name>_leftImg8bit_rain_alpha_A_beta_B_dropsize_D_pattern_P.png
  leftImg8bit/{train,val}/<city>/<name>_leftImg8bit.png
or DAF-Net's copy (https://github.com/xw-hu/DAF-Net): train/, test/ and image/ folders.
"""
  ROOT_DESCRIPTION = "leftImg8bit_rain/ (official) or train|test/ with image/ (DAF-Net)"

  def _is_root(self, folder):
    return layouts.cityscapes_layout(folder) is not None

  def _listings(self, root):
    return layouts.cityscapes_listings(root)


@dataclasses.dataclass
class MpidConfig(tfds.core.BuilderConfig):
  task: str = "streak"


class Mpid(PairedImageBuilder):
  """MPID (Li et al., CVPR 2019), reorganised as the NASNet authors did: streak, drop, mist."""

  BUILDER_CONFIGS = [
    MpidConfig(name=t, description=f"MPID rain {t}s", task=t) for t in ("streak", "drop", "mist")
  ]
  MANUAL_DOWNLOAD_INSTRUCTIONS = """\
MPID from https://github.com/lsy17096535/Single-Image-Deraining, reorganised per task:
  MPID/<task>/{train,test}/data/<id>_rain.<ext>  with  MPID/<task>/{train,test}/gt/<id>_clean.<ext>
  (or gt/<id>.<ext>; for mist the whole stem is the id), task in streak, drop, mist.
Point manual_dir at MPID/ or the folder above it. Other layouts: use paired_folders.
"""

  @property
  def ROOT_DESCRIPTION(self):  # noqa: N802
    return f"{self.builder_config.task}/{{train,test}}/data/"

  def _is_root(self, folder):
    return layouts.mpid_is_root(folder, self.builder_config.task)

  def _listings(self, root):
    return layouts.mpid_listings(root, self.builder_config.task)


class Raindrop(PairedImageBuilder):
  """Raindrop (Qian et al., DeRaindrop, CVPR 2018): raindrops on the lens."""

  MANUAL_DOWNLOAD_INSTRUCTIONS = """\
From https://github.com/rui1996/DeRaindrop (Google Drive links in its README), unzipped:
  train/data/N_rain.png with train/gt/N_clean.png, test_a/data, test_a/gt, test_b/data,
  test_b/gt (JPEG in test_b).
"""
  ROOT_DESCRIPTION = "train|test_a|test_b/data/"

  def _is_root(self, folder):
    return layouts.raindrop_is_root(folder)

  def _listings(self, root):
    return layouts.raindrop_listings(root)


@dataclasses.dataclass
class PairedFoldersConfig(tfds.core.BuilderConfig):
  """``name`` is a label of the user's choice (it names the build folder)."""

  folder_pairs: tuple[tuple[str, str], ...] = layouts.FOLDER_PAIRS


class PairedFolders(PairedImageBuilder):
  """Any rainy/clean folder pairs: Rain13K, Test100, Test2800, DDN Rain1400, ...

  Every folder below manual_dir that holds an ``input/`` and a ``target/`` folder (or
  ``rainy_image/``+``ground_truth/``, ``rain/``+``norain/``, ``data/``+``gt/``,
  ``rainy/``+``clean/``) becomes a split named after that folder. Inputs pair with the
  target of the same basename, else by the DDN rule (``i_j.jpg`` -> ``i.jpg``).
  ``paired_folders/<label>`` builds under its own label, e.g. ``paired_folders/rain13k``.
  """

  BUILDER_CONFIGS = [PairedFoldersConfig(name="default")]
  MANUAL_DOWNLOAD_INSTRUCTIONS = """\
Any folders of pairs, e.g. Restormer's Datasets/train/Rain13K/{input,target} and
Datasets/test/{Test100,Rain100H,Rain100L,Test1200,Test2800}/{input,target}
(https://github.com/swz30/Restormer/blob/main/Deraining/README.md), or DDN's Rain1400
rainy_image/ with ground_truth/. Pass the top folder as manual_dir.
"""
  ROOT_DESCRIPTION = "folder with input/ and target/ subfolders"

  def _is_root(self, folder):
    return True  # splits are whatever folder pairs lie below manual_dir

  def _listings(self, root):
    return layouts.paired_folder_listings(root, self.builder_config.folder_pairs)


BUILDERS = (
  "rain100l",
  "rain100h",
  "spa_data",
  "rain_cityscapes",
  "mpid",
  "raindrop",
  "paired_folders",
)
