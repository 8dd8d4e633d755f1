"""Images made by optimisation: class models (Simonyan et al. 2014, §2) and the inversion of a
layer's code (Mahendran & Vedaldi 2015)."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax

Array = jax.Array


def gaussian_blur(x: Array, sigma: float) -> Array:
  """A separable Gaussian blur of [N, H, W, C] images, per channel (radius 2σ)."""
  radius = max(1, int(2 * sigma + 0.5))
  taps = jnp.exp(-0.5 * (jnp.arange(-radius, radius + 1) / sigma) ** 2)
  taps = taps / taps.sum()
  channels = x.shape[-1]

  def along(x: Array, kernel_shape: tuple[int, int]) -> Array:
    kernel = jnp.tile(taps.reshape(*kernel_shape, 1, 1), (1, 1, 1, channels))
    return jax.lax.conv_general_dilated(
      x,
      kernel,
      (1, 1),
      "SAME",
      dimension_numbers=("NHWC", "HWIO", "NHWC"),
      feature_group_count=channels,
    )

  return along(along(x, (len(taps), 1)), (1, len(taps)))


def class_models(
  scores: Callable[[Array], Array],
  shape: tuple[int, int, int],
  classes: Array,
  key: Array,
  steps: int = 200,
  learning_rate: float = 1.0,
  l2: float = 1e-2,
  jitter: int = 0,
  blur_every: int = 0,
  blur_sigma: float = 0.5,
  start_noise: float = 1e-2,
) -> Array:
  """argmax_I S_c(I) − λ‖I‖² by gradient ascent from (nearly) zeros, one image per class, all
  classes in one batch [len(classes), *shape]. Optional regularisers (Yosinski et al. 2015): a
  random shift of up to `jitter` pixels before each gradient, a Gaussian blur every
  `blur_every`.

  The start is zero plus noise of σ = `start_noise`: at exactly zero (the mean image) a ReLU
  network whose first-layer biases are all negative has every unit off and a zero gradient,
  and the ascent never moves (the trained default LeNet-5 is such a network).
  """

  def objective(images: Array, shift: Array) -> Array:
    moved = jnp.roll(images, shift, axis=(1, 2))
    chosen = jnp.take_along_axis(scores(moved), classes[:, None], -1)
    return chosen.sum() - l2 * jnp.sum(images**2)

  def step(images: Array, inputs: tuple[Array, Array]) -> tuple[Array, None]:
    i, step_key = inputs
    shift = jax.random.randint(step_key, (2,), -jitter, jitter + 1) if jitter else jnp.zeros(2, int)
    images = images + learning_rate * jax.grad(objective)(images, shift)
    if blur_every:
      images = jax.lax.cond(
        (i + 1) % blur_every == 0, lambda x: gaussian_blur(x, blur_sigma), lambda x: x, images
      )
    return images, None

  start_key, key = jax.random.split(key)
  start = start_noise * jax.random.normal(start_key, (len(classes), *shape), jnp.float32)
  images, _ = jax.lax.scan(step, start, (jnp.arange(steps), jax.random.split(key, steps)))
  return images


def total_variation(x: Array, beta: float = 2.0) -> Array:
  """Σ ((∂_y x)² + (∂_x x)²)^(β/2) per image [N] (Mahendran & Vedaldi 2015, eq. 5)."""
  dy = x[:, 1:, :-1] - x[:, :-1, :-1]
  dx = x[:, :-1, 1:] - x[:, :-1, :-1]
  return jnp.sum((dy**2 + dx**2 + 1e-8) ** (beta / 2), axis=(1, 2, 3))


def invert(
  code_of: Callable[[Array], Array],
  codes: Array,
  shape: tuple[int, int, int],
  key: Array,
  steps: int = 300,
  learning_rate: float = 0.05,
  tv_weight: float = 1e-3,
) -> Array:
  """argmin_x ‖Φ(x) − Φ0‖²/‖Φ0‖² + λ·TV(x) for every code Φ0 of `codes` (Φ = `code_of`),
  from small noise, with Adam; [len(codes), *shape]."""
  norms = jnp.sum(codes**2, axis=tuple(range(1, codes.ndim))) + 1e-12

  def loss(x: Array) -> Array:
    distance = jnp.sum((code_of(x) - codes) ** 2, axis=tuple(range(1, codes.ndim))) / norms
    return jnp.sum(distance + tv_weight * total_variation(x))

  optimizer = optax.adam(learning_rate)
  start = 0.01 * jax.random.normal(key, (len(codes), *shape))

  def step(carry: tuple, _: None) -> tuple[tuple, None]:
    x, state = carry
    updates, state = optimizer.update(jax.grad(loss)(x), state, x)
    return (optax.apply_updates(x, updates), state), None

  (x, _), _ = jax.lax.scan(step, (start, optimizer.init(start)), None, length=steps)
  return x
