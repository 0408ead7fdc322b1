"""What every network promises, checked for each: finite gradients at any image size."""

import jax
import jax.numpy as jnp
import pytest

from nasnet_jax.models import DDSA, DualStageNet, NASNet, init_params

# Small, but every part of each network (the padded paths included).
TINY_NETWORKS = {
    "nasnet": lambda: NASNet(stages=2, blocks=1, features=8),
    "ddsa": lambda: DDSA(features=8, blocks=(1, 1, 1), heads=(1, 2, 2), refinement_blocks=0,
                         sparse_ratios=(1 / 2, 3 / 4)),
    "dual_stage": lambda: DualStageNet(features=8, heads=2, stage1_blocks=2, stage2_blocks=2,
                                       clusters=4, group_size=16),
}


@pytest.mark.parametrize("name", sorted(TINY_NETWORKS))
def test_gradients_are_finite_at_sizes_that_need_padding(name):
  """13 x 19 is a multiple of no network's window or level: the padded path's backward
  pass (a normalisation of all-zero padding, a fully masked softmax) must not give NaN,
  and the gradient must reach every parameter."""
  model = TINY_NETWORKS[name]()
  params = init_params(model, jax.random.key(1))
  x = jax.random.uniform(jax.random.key(0), (2, 13, 19, 3))

  def loss(p):
    out = model.apply({"params": p}, x)
    return jnp.mean(jnp.abs(out - x))

  grads = jax.jit(jax.grad(loss))(params)
  bad = [jax.tree_util.keystr(path) for path, g in jax.tree_util.tree_leaves_with_path(grads)
         if not bool(jnp.all(jnp.isfinite(g)))]
  assert not bad, f"{name}: non-finite gradients in {bad[:5]}"
  assert float(sum(jnp.sum(jnp.abs(g)) for g in jax.tree.leaves(grads))) > 0
