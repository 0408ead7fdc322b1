"""Where each public deraining dataset keeps its image pairs on disk.

Pure Python, no TFDS: every function here walks an extracted archive and returns which
rainy file goes with which clean file, plus what it had to skip and why. The TFDS
builders in ``nasnet_jax.data.builders`` turn these listings into datasets. The layouts
are the public archives' trees as extracted, each documented below; every id is the rainy
file's path relative to the dataset root, with ``/`` separators.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable, Iterable

from nasnet_jax.image_io import is_image_file


class LayoutError(ValueError):
  """The folder does not hold the dataset in any layout we know."""


@dataclasses.dataclass(frozen=True)
class Pair:
  id: str  # the rainy file's path relative to the dataset root
  rainy: str  # absolute paths
  clean: str


@dataclasses.dataclass
class Listing:
  """The pairs of one split, and the files that could not be paired (path, reason)."""

  pairs: list[Pair] = dataclasses.field(default_factory=list)
  skipped: list[tuple[str, str]] = dataclasses.field(default_factory=list)
  folders: list[str] = dataclasses.field(default_factory=list)  # the rainy folders read


def natural_key(text: str):
  """Sort key that orders "rain-2" before "rain-10"."""
  return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", text)]


def _rel(root: str, path: str) -> str:
  return os.path.relpath(path, root).replace(os.sep, "/")


def _subdirs(folder: str) -> list[str]:
  try:
    names = sorted(os.listdir(folder), key=natural_key)
  except OSError:
    return []
  return [n for n in names if not n.startswith(".") and os.path.isdir(os.path.join(folder, n))]


def _files(folder: str) -> list[str]:
  """Visible plain files of ``folder`` in natural order."""
  try:
    names = sorted(os.listdir(folder), key=natural_key)
  except OSError:
    return []
  return [n for n in names if not n.startswith(".") and not os.path.isdir(os.path.join(folder, n))]


def _child(folder: str, name: str) -> str | None:
  """``folder/name`` matched case-insensitively, or None."""
  exact = os.path.join(folder, name)
  if os.path.isdir(exact):
    return exact
  for sub in _subdirs(folder):
    if sub.lower() == name.lower():
      return os.path.join(folder, sub)
  return None


def _stem_index(folder: str) -> dict[str, str]:
  """Image files of ``folder`` by stem (first one in natural order wins)."""
  index = {}
  for name in _files(folder):
    if is_image_file(name):
      index.setdefault(os.path.splitext(name)[0], name)
  return index


def check_manual_dir(manual_dir: str | None, dataset: str) -> str:
  """``manual_dir`` as an absolute path, or a one-line error saying what to do."""
  if not manual_dir:
    raise LayoutError(
      f"{dataset}: no manual_dir given; download the dataset (see the "
      "dataset table in docs/datasets.md) and pass "
      "--config.data.manual_dir=FOLDER"
    )
  path = os.path.abspath(os.path.expanduser(manual_dir))
  if not os.path.isdir(path):
    raise LayoutError(
      f"{dataset}: manual_dir {path} does not exist; pass "
      "--config.data.manual_dir=FOLDER where you extracted the archive"
    )
  if not any(not n.startswith(".") for n in os.listdir(path)):
    raise LayoutError(
      f"{dataset}: manual_dir {path} is empty; extract the archive "
      "there (see the dataset table in docs/datasets.md)"
    )
  return path


def find_root(
  manual_dir: str, is_root: Callable[[str], bool], dataset: str, looking_for: str
) -> str:
  """The dataset root: ``manual_dir`` itself or one of its immediate subfolders."""
  if is_root(manual_dir):
    return manual_dir
  for sub in _subdirs(manual_dir):
    if is_root(os.path.join(manual_dir, sub)):
      return os.path.join(manual_dir, sub)
  raise LayoutError(
    f"{dataset}: found no {looking_for} in {manual_dir} or its "
    "subfolders; point --config.data.manual_dir at the extracted archive"
  )


def _pair_folder(
  root: str,
  rainy_dir: str,
  clean_dir: str,
  listing: Listing,
  clean_stems: Callable[[str], Iterable[str]],
  is_input: Callable[[str], bool] = lambda name: True,
) -> None:
  """Adds every input image of ``rainy_dir`` with its partner in ``clean_dir``.

  ``clean_stems(rainy_stem)`` yields the candidate clean stems, tried in order with any
  image extension. Files of ``rainy_dir`` for which ``is_input`` is false are not inputs
  (e.g. PReNet's ``rainstreak-N.png``) and are passed over without a report.
  """
  clean_index = _stem_index(clean_dir) if os.path.isdir(clean_dir) else {}
  listing.folders.append(_rel(root, rainy_dir))
  for name in _files(rainy_dir):
    path = os.path.join(rainy_dir, name)
    if not is_input(name):
      continue
    if not is_image_file(name):
      listing.skipped.append((_rel(root, path), "not an image file"))
      continue
    stem = os.path.splitext(name)[0]
    candidates = list(dict.fromkeys(clean_stems(stem)))
    match = next((clean_index[c] for c in candidates if c in clean_index), None)
    if match is None:
      wanted = " or ".join(_rel(root, os.path.join(clean_dir, c)) + ".*" for c in candidates)
      listing.skipped.append((_rel(root, path), f"no clean partner ({wanted})"))
      continue
    listing.pairs.append(Pair(_rel(root, path), path, os.path.join(clean_dir, match)))


# --- Rain100L / Rain100H ---------------------------------------------------------------

_PRENET_RAIN = re.compile(r"^rain-(\d+)$")


def _rain100_prenet_dirs(root: str, variant: str) -> dict[str, str]:
  dirs = {}
  train = os.path.join(root, "train", f"RainTrain{variant}")
  test = os.path.join(root, "test", f"Rain100{variant}")
  if os.path.isdir(train):
    dirs["train"] = train
  if os.path.isdir(test):
    dirs["test"] = test
  return dirs


def _variant_of(name: str) -> str | None:
  tokens = re.split(r"[^a-z0-9]+", name.lower())
  if "heavy" in tokens or "h" in tokens or name.lower().endswith("heavy"):
    return "H"
  if "light" in tokens or "l" in tokens or name.lower().endswith("light"):
    return "L"
  return None


def _rain200_pair_dir(split_dir: str) -> str | None:
  """The folder holding ``rain/`` and ``norain/`` in a Rain200 split root (maybe nested)."""
  for folder in [split_dir] + [os.path.join(split_dir, s) for s in _subdirs(split_dir)]:
    if _child(folder, "rain") and _child(folder, "norain"):
      return folder
  return None


def _rain200_split_dirs(root: str, variant: str) -> dict[str, str]:
  """{split: folder with rain/ and norain/} for Rain200 and JORDER-E layouts."""
  found: dict[str, list[str]] = {"train": [], "test": []}
  for base in (root, os.path.join(root, "data")):
    for sub in _subdirs(base):
      pair_dir = _rain200_pair_dir(os.path.join(base, sub))
      if pair_dir is None:
        continue
      for split in found:
        if split in sub.lower():
          found[split].append((sub, pair_dir))
  dirs = {}
  for split, candidates in found.items():
    if not candidates:
      continue
    own = [c for c in candidates if _variant_of(c[0]) == variant]
    neutral = [c for c in candidates if _variant_of(c[0]) is None]
    chosen = own or neutral
    if len(chosen) > 1:
      names = ", ".join(c[0] for c in chosen)
      raise LayoutError(
        f"rain100{variant.lower()}: several {split} folders in {root} "
        f"({names}); keep one, or point manual_dir at its parent alone"
      )
    if chosen:
      dirs[split] = chosen[0][1]
  return dirs


def rain100_layout(root: str, variant: str) -> str | None:
  """ "prenet", "rain200" or None for a candidate root of Rain100L/H (variant "L"/"H")."""
  if _rain100_prenet_dirs(root, variant):
    return "prenet"
  try:
    if _rain200_split_dirs(root, variant):
      return "rain200"
  except LayoutError:
    return "rain200"  # found, but ambiguous: rain100_listings says why
  return None


def rain100_listings(root: str, variant: str) -> dict[str, Listing]:
  """Rain100L/H splits in the PReNet, Rain200 or JORDER-E layout."""
  layout = rain100_layout(root, variant)
  listings = {}
  if layout == "prenet":
    for split, folder in _rain100_prenet_dirs(root, variant).items():
      listing = Listing()
      if split == "train":
        inputs = folder
      else:  # test inputs live in rainy/ (some copies keep them beside the ground truth)
        inputs = _child(folder, "rainy") or folder
      _pair_folder(
        root,
        inputs,
        folder,
        listing,
        lambda stem: ["no" + stem],
        is_input=lambda name: bool(_PRENET_RAIN.match(os.path.splitext(name)[0])),
      )
      listings[split] = listing
  elif layout == "rain200":
    for split, folder in _rain200_split_dirs(root, variant).items():
      listing = Listing()
      rain = _child(folder, "rain")
      inputs = _child(rain, "X2") or rain
      _pair_folder(
        root,
        inputs,
        _child(folder, "norain"),
        listing,
        lambda stem: [re.sub(r"x2$", "", stem), stem, re.sub(r"^rain-", "norain-", stem)],
      )
      listings[split] = listing
  return listings


# --- SPA-Data -----------------------------------------------------------------------------


def spa_is_root(folder: str) -> bool:
  return os.path.isfile(os.path.join(folder, "real_world.txt")) or os.path.isdir(
    os.path.join(folder, "real_test_1000")
  )


def spa_listings(root: str) -> dict[str, Listing]:
  """Train from ``real_world.txt`` (one "<rain> <gt>" pair a line), test from
  ``real_test_1000/{rain,gt}`` (``NNN.png`` with ``NNNgt.png``)."""
  listings = {}
  list_file = os.path.join(root, "real_world.txt")
  if os.path.isfile(list_file):
    listing = Listing(folders=["real_world.txt"])
    with open(list_file) as f:
      for number, line in enumerate(f, 1):
        parts = line.split()
        if not parts:
          continue
        if len(parts) != 2:
          listing.skipped.append(
            (f"real_world.txt:{number}", f"expected '<rain path> <gt path>', got {line.strip()!r}")
          )
          continue
        rainy, clean = (os.path.join(root, p.lstrip("/")) for p in parts)
        rel = _rel(root, rainy)
        problem = None
        if os.path.isdir(rainy):
          problem = f"real_world.txt:{number} lists a directory, not an image"
        elif not os.path.isfile(rainy):
          problem = f"real_world.txt:{number} lists a file that does not exist"
        elif not os.path.isfile(clean):
          problem = f"real_world.txt:{number}: its ground truth {_rel(root, clean)} does not exist"
        if problem:
          listing.skipped.append((rel, problem))
        else:
          listing.pairs.append(Pair(rel, rainy, clean))
    listings["train"] = listing
  test = os.path.join(root, "real_test_1000")
  if os.path.isdir(test):
    listing = Listing()
    _pair_folder(
      root,
      _child(test, "rain") or os.path.join(test, "rain"),
      _child(test, "gt") or os.path.join(test, "gt"),
      listing,
      lambda stem: [stem + "gt", stem],
    )
    listings["test"] = listing
  return listings


# --- RainCityscapes ---------------------------------------------------------------------------

CITYSCAPES_TRAIN_CITIES = (
  "aachen",
  "bochum",
  "bremen",
  "cologne",
  "dusseldorf",
  "erfurt",
  "hanover",
  "jena",
  "weimar",
)
CITYSCAPES_TEST_CITIES = ("lindau", "munster")


def cityscapes_layout(folder: str) -> str | None:
  """ "official" (leftImg8bit_rain + leftImg8bit), "dafnet" (train/test + image) or None."""
  if os.path.isdir(os.path.join(folder, "leftImg8bit_rain")):
    return "official"
  if os.path.isdir(os.path.join(folder, "image")) and (
    os.path.isdir(os.path.join(folder, "train")) or os.path.isdir(os.path.join(folder, "test"))
  ):
    return "dafnet"
  return None


def _cityscapes_clean_stem(stem: str) -> list[str]:
  """``<city>_<seq>_<frame>_leftImg8bit_rain_alpha_…`` (official) or
  ``<city>_<seq>_<frame>_rain_alpha_…`` (DAF-Net's copy) -> the ground truth's stem:
  the part before ``_rain_``, then that with ``_leftImg8bit`` added."""
  cut = stem.find("_rain_")
  if cut < 0:
    return []
  base = stem[:cut]
  return [base] if base.endswith("_leftImg8bit") else [base, base + "_leftImg8bit"]


def cityscapes_listings(root: str) -> dict[str, Listing]:
  """The paper's split: train from 9 cities, test from the val cities lindau, munster."""
  listings = {}
  if cityscapes_layout(root) == "official":
    clean_root = os.path.join(root, "leftImg8bit")
    if not os.path.isdir(clean_root):
      raise LayoutError(
        f"rain_cityscapes: {clean_root} is missing: extract "
        "leftImg8bit_trainvaltest.zip (the ground truth) beside "
        "leftImg8bit_rain/"
      )
    for split, folder, cities in (
      ("train", "train", CITYSCAPES_TRAIN_CITIES),
      ("test", "val", CITYSCAPES_TEST_CITIES),
    ):
      rain_split = os.path.join(root, "leftImg8bit_rain", folder)
      if not os.path.isdir(rain_split):
        continue
      listing = Listing()
      for city in cities:
        city_dir = os.path.join(rain_split, city)
        if os.path.isdir(city_dir):
          _pair_folder(
            root, city_dir, os.path.join(clean_root, folder, city), listing, _cityscapes_clean_stem
          )
      listings[split] = listing
  else:
    for split in ("train", "test"):
      folder = os.path.join(root, split)
      if os.path.isdir(folder):
        listing = Listing()
        _pair_folder(root, folder, os.path.join(root, "image"), listing, _cityscapes_clean_stem)
        listings[split] = listing
  return listings


# --- MPID and Raindrop ---------------------------------------------------------------------


def _data_gt_stems(stem: str) -> list[str]:
  """``N_rain`` -> ``N_clean`` or ``N``; a stem without ``_rain`` (mist) -> itself."""
  if stem.endswith("_rain"):
    return [stem[: -len("_rain")] + "_clean", stem[: -len("_rain")]]
  if "_rain" in stem:
    return [stem.replace("_rain", "_clean"), stem.replace("_rain", ""), stem]
  return [stem, stem + "_clean"]


def _data_gt_listing(root: str, split_dir: str) -> Listing:
  listing = Listing()
  _pair_folder(
    root,
    _child(split_dir, "data"),
    _child(split_dir, "gt") or os.path.join(split_dir, "gt"),
    listing,
    _data_gt_stems,
  )
  return listing


def _has_data_dir(split_dir: str | None) -> bool:
  return bool(split_dir) and _child(split_dir, "data") is not None


def mpid_is_root(folder: str, task: str) -> bool:
  task_dir = _child(folder, task)
  return bool(task_dir) and any(_has_data_dir(_child(task_dir, s)) for s in ("train", "test"))


def mpid_listings(root: str, task: str) -> dict[str, Listing]:
  """``<task>/{train,test}/data/<id>_rain.*`` with ``gt/<id>_clean.*`` (or ``gt/<id>.*``)."""
  task_dir = _child(root, task)
  return {
    split: _data_gt_listing(root, _child(task_dir, split))
    for split in ("train", "test")
    if _has_data_dir(_child(task_dir, split))
  }


RAINDROP_SPLITS = ("train", "test_a", "test_b")


def raindrop_is_root(folder: str) -> bool:
  return any(_has_data_dir(_child(folder, s)) for s in RAINDROP_SPLITS)


def raindrop_listings(root: str) -> dict[str, Listing]:
  """``{train,test_a,test_b}/data/N_rain.*`` with ``gt/N_clean.*``."""
  return {
    split: _data_gt_listing(root, _child(root, split))
    for split in RAINDROP_SPLITS
    if _has_data_dir(_child(root, split))
  }


# --- Generic input/target folders ---------------------------------------------------------

# (input folder, target folder) names recognised by ``paired_folders``, tried in order.
FOLDER_PAIRS = (
  ("input", "target"),
  ("rainy_image", "ground_truth"),
  ("rain", "norain"),
  ("data", "gt"),
  ("rainy", "clean"),
  ("inputs", "targets"),
)
_DDN_SUFFIX = re.compile(r"^(.*)_\d+$")


def _generic_stems(stem: str) -> list[str]:
  """Same basename; else the DDN rule ``{i}_{j}`` -> ``{i}``; else ``_rain`` -> ``_clean``."""
  out = [stem]
  m = _DDN_SUFFIX.match(stem)
  if m:
    out.append(m.group(1))
  out.extend(_data_gt_stems(stem))
  return out


def _folder_pair(folder: str, names) -> tuple[str, str] | None:
  for inp, tgt in names:
    a, b = _child(folder, inp), _child(folder, tgt)
    if a and b:
      return a, b
  return None


def split_name(relpath: str, taken: set[str]) -> str:
  """A TFDS split name (``\\w+``) for a folder: its own name, made unique with its parents'."""
  parts = [p for p in relpath.replace(os.sep, "/").split("/") if p not in ("", ".")] or ["all"]
  for n in range(1, len(parts) + 1):
    name = re.sub(r"\W+", "_", "_".join(parts[-n:])).strip("_") or "all"
    if name not in taken:
      return name
  raise LayoutError(f"paired_folders: cannot name a split for folder {relpath!r}")


def paired_folder_listings(
  root: str, folder_pairs=FOLDER_PAIRS, max_depth: int = 4
) -> dict[str, Listing]:
  """Every folder (up to ``max_depth`` below ``root``) holding an input/target pair of
  subfolders becomes a split, named after that folder (``Datasets/test/Test100`` ->
  ``Test100``; the root itself -> ``all``)."""
  listings: dict[str, Listing] = {}
  found = []

  def walk(folder: str, depth: int):
    pair = _folder_pair(folder, folder_pairs)
    if pair:
      found.append((folder, pair))
      return
    if depth < max_depth:
      for sub in _subdirs(folder):
        walk(os.path.join(folder, sub), depth + 1)

  walk(root, 0)
  for folder, (inp, tgt) in found:
    name = split_name(os.path.relpath(folder, root), set(listings))
    listing = Listing()
    _pair_folder(root, inp, tgt, listing, _generic_stems)
    listings[name] = listing
  return listings
