"""The CPU forms of the convolutions equal lax.conv_general_dilated, gradients included."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nasnet_jax.models import DDSA, NASNet, convolution
from nasnet_jax.models.convolution import conv_general_dilated_for, cpu_conv

DN = jax.lax.ConvDimensionNumbers((0, 3, 1, 2), (3, 2, 0, 1), (0, 3, 1, 2))


@pytest.mark.parametrize(
  "kernel_shape, groups, padding",
  [
    ((3, 3, 4, 5), 1, "SAME"),  # full 3x3, Cin != Cout
    ((1, 1, 4, 6), 1, "SAME"),  # pointwise
    ((3, 3, 1, 4), 4, "SAME"),  # depthwise
    ((3, 3, 1, 4), 4, ((0, 2), (1, 0))),  # depthwise, uneven explicit padding
    ((2, 4, 4, 3), 1, ((1, 0), (2, 1))),  # even-sized full kernel
    ((3, 3, 4, 3), 1, "VALID"),
    ((3, 3, 64, 64), 1, "SAME"),  # wide enough for the per-tap kernel gradient
    ((3, 3, 2, 4), 2, "SAME"),  # grouped, neither: falls back to lax
  ],
)
def test_cpu_conv_equals_lax_with_gradients(kernel_shape, groups, padding):
  x = jax.random.normal(jax.random.key(0), (2, 10, 13, kernel_shape[2] * groups))
  k = jax.random.normal(jax.random.key(1), kernel_shape)

  def f(conv, x, k):
    y = conv(x, k, (1, 1), padding, dimension_numbers=DN, feature_group_count=groups)
    return jnp.sum(jnp.sin(y)), y

  (ref_loss, ref_y), ref_grads = jax.value_and_grad(
    lambda x, k: f(jax.lax.conv_general_dilated, x, k), (0, 1), has_aux=True
  )(x, k)
  (loss, y), grads = jax.jit(
    jax.value_and_grad(lambda x, k: f(cpu_conv, x, k), (0, 1), has_aux=True)
  )(x, k)
  assert y.shape == ref_y.shape
  np.testing.assert_allclose(y, ref_y, rtol=1e-4, atol=1e-4)
  for a, b in zip(grads, ref_grads):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
  "kernel_shape, groups",
  [
    ((3, 3, 1, 4), 4),  # depthwise
    ((3, 3, 64, 64), 1),  # full, per-tap kernel gradient
  ],
)
def test_cpu_conv_supports_every_jax_transformation(kernel_shape, groups):
  """jvp, jacfwd, vmap of grad and Hessian-vector products agree with lax (a library used inside JAX
  pipelines must allow forward mode as well as reverse)."""
  x = jax.random.normal(jax.random.key(0), (2, 5, 6, kernel_shape[2] * groups))
  k = jax.random.normal(jax.random.key(1), kernel_shape) * 0.1

  def loss(conv, x, k):
    return jnp.sum(
      jnp.sin(conv(x, k, (1, 1), "SAME", dimension_numbers=DN, feature_group_count=groups))
    )

  def check(transform):
    got = transform(lambda x, k: loss(cpu_conv, x, k))
    want = transform(lambda x, k: loss(jax.lax.conv_general_dilated, x, k))
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
      np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-4)

  check(lambda f: jax.jvp(f, (x, k), (jnp.cos(x), jnp.cos(k))))
  # jacfwd batches the jvp (vmap); two directions keep it small.
  check(lambda f: jax.jit(jax.jacfwd(lambda a: f(x * a[0], k * a[1])))(jnp.ones(2)))
  check(lambda f: jax.vmap(jax.grad(f, 1), (0, None))(x[:, None], k))
  # Hessian-vector product, forward over reverse.
  check(lambda f: jax.jvp(jax.grad(f, (0, 1)), (x, k), (jnp.cos(x), jnp.cos(k))))


def test_strided_conv_falls_back_to_lax():
  x = jax.random.normal(jax.random.key(0), (1, 9, 9, 3))
  k = jax.random.normal(jax.random.key(1), (3, 3, 3, 2))
  got = cpu_conv(x, k, (2, 2), "SAME", dimension_numbers=DN)
  ref = jax.lax.conv_general_dilated(x, k, (2, 2), "SAME", dimension_numbers=DN)
  np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)


def test_bfloat16_gradients_keep_their_dtypes():
  x = jax.random.normal(jax.random.key(0), (1, 8, 8, 4), jnp.bfloat16)
  for shape, groups in (((3, 3, 4, 4), 1), ((3, 3, 1, 4), 4), ((1, 1, 4, 4), 1)):
    k = jax.random.normal(jax.random.key(1), shape, jnp.bfloat16)
    gx, gk = jax.grad(
      lambda x, k: jnp.sum(
        cpu_conv(x, k, (1, 1), "SAME", dimension_numbers=DN, feature_group_count=groups).astype(
          jnp.float32
        )
      ),
      (0, 1),
    )(x, k)
    assert gx.dtype == gk.dtype == jnp.bfloat16


def test_impls_give_the_same_network_and_unknown_impl_is_an_error():
  x = jax.random.uniform(jax.random.key(0), (1, 12, 10, 3))
  model = NASNet(stages=1, blocks=2, features=8, conv_impl="cpu")
  params = model.init(jax.random.key(1), x)
  loss = lambda m: jax.value_and_grad(lambda p: jnp.mean(m.apply(p, x) ** 2))(params)
  (v_cpu, g_cpu), (v_xla, g_xla) = loss(model), loss(model.clone(conv_impl="xla"))
  np.testing.assert_allclose(v_cpu, v_xla, rtol=1e-5)
  for a, b in zip(jax.tree.leaves(g_cpu), jax.tree.leaves(g_xla)):
    np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5)
  assert conv_general_dilated_for("xla") is jax.lax.conv_general_dilated
  with pytest.raises(ValueError, match="conv_impl must be one of"):
    conv_general_dilated_for("fast")
  with pytest.raises(ValueError, match="conv_impl must be one of"):
    NASNet(stages=1, blocks=1, features=4, conv_impl="fast").init(jax.random.key(0), x)


def test_auto_picks_the_form_per_platform_when_lowered_not_from_the_default_backend():
  """One jax.export made on this CPU: its CPU program has the CPU forms (no grouped
  convolution for the depthwise 3x3), its CUDA and TPU programs XLA's grouped convolution.
  Before, "auto" read jax.default_backend() and gave every platform the CPU forms."""
  model = NASNet(stages=1, blocks=1, features=8)  # conv_impl="auto"
  x = jnp.zeros((1, 12, 10, 3))
  params = model.init(jax.random.key(1), x)
  grouped = "feature_group_count = 8"

  def program(platform):
    exported = jax.export.export(jax.jit(model.apply), platforms=(platform,))(params, x)
    return exported.mlir_module()

  assert grouped not in program("cpu")
  assert grouped in program("cuda") and grouped in program("tpu")
  # And as a library user calls it, on this CPU: the CPU forms, differentiable.
  assert grouped not in jax.jit(model.apply).lower(params, x).as_text()
  grads = jax.grad(lambda p: jnp.mean(model.apply(p, x) ** 2))(params)
  assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads))


def test_layouts_other_than_nhwc_fall_back_to_lax():
  # NCHW/OIHW, lax's default; read as NHWC/HWIO these shapes would look like a 1x1 conv.
  x = jax.random.normal(jax.random.key(0), (1, 1, 6, 3))
  k = jax.random.normal(jax.random.key(1), (1, 1, 3, 3))
  np.testing.assert_allclose(
    cpu_conv(x, k, (1, 1), "SAME"),
    jax.lax.conv_general_dilated(x, k, (1, 1), "SAME"),
    rtol=1e-5,
    atol=1e-5,
  )
  xh = jnp.transpose(x, (0, 2, 3, 1))
  kh = jnp.transpose(k, (2, 3, 1, 0))
  by_name = cpu_conv(xh, kh, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
  np.testing.assert_allclose(
    by_name, cpu_conv(xh, kh, (1, 1), "SAME", dimension_numbers=DN), rtol=1e-5, atol=1e-5
  )


def test_compiler_options_turn_ynn_off_only_for_narrow_networks_on_cpu(monkeypatch):
  monkeypatch.delenv("XLA_FLAGS", raising=False)
  narrow, wide = NASNet(features=32), NASNet(features=64)
  assert convolution.compiler_options(narrow, "cpu") == {convolution.YNN_FLAG: ""}
  assert convolution.compiler_options(wide, "cpu") is None
  assert convolution.compiler_options(narrow, "gpu") is None
  assert convolution.compiler_options(narrow.clone(conv_impl="xla"), "cpu") is None
  assert convolution.compiler_options(DDSA(features=16), "cpu") is None  # it helps DDSA
  monkeypatch.setenv("XLA_FLAGS", f"--{convolution.YNN_FLAG}=dot")  # the user's choice wins
  assert convolution.compiler_options(narrow, "cpu") is None


def test_compiler_options_compile_and_keep_the_result(monkeypatch):
  monkeypatch.delenv("XLA_FLAGS", raising=False)
  model = NASNet(stages=1, blocks=1, features=8)
  x = jax.random.uniform(jax.random.PRNGKey(0), (1, 24, 24, 3))
  params = model.init(jax.random.PRNGKey(1), x)["params"]
  options = convolution.compiler_options(model, "cpu")
  apply = lambda p, x: model.apply({"params": p}, x)  # noqa: E731
  with_options = jax.jit(apply, compiler_options=options).lower(params, x).compile()
  assert "ynn_fusion" not in with_options.as_text()
  np.testing.assert_allclose(with_options(params, x), jax.jit(apply)(params, x), atol=1e-5)
