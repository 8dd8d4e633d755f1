"""Which input pixels matter for a class or a unit: gradients under the three backward rules,
Grad-CAM, integrated gradients, SmoothGrad and occlusion.

Every function takes a pure function of a batch (class scores [N, K], or a layer's output
[N, h, w, K] or [N, K]) and a batch of inputs, and returns arrays; images are independent
(inference mode), so a batch's gradient is each image's own. Deconvnet and guided
backpropagation are `gradient` of a function built with that backward rule
(`Network.scores("guided")`): the rule lives in the network's own activation, so no ReLU
escapes it.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array
Fn = Callable[[Array], Array]


def target_score(outputs: Array, targets: Array) -> Array:
  """Each image's score for its target [N]: a class score, or for a spatial layer the
  strongest activation of unit `target` over the positions (the one Zeiler & Fergus project)."""
  if outputs.ndim == 4:
    return jnp.max(outputs[jnp.arange(len(targets)), :, :, targets], axis=(1, 2))
  return jnp.take_along_axis(outputs, targets[:, None], -1)[:, 0]


def gradient(fn: Fn, x: Array, targets: Array) -> Array:
  """∂ target score / ∂x for every image [N, H, W, C] (under `fn`'s backward rule)."""
  return jax.grad(lambda x: target_score(fn(x), targets).sum())(x)


def saliency(fn: Fn, x: Array, targets: Array) -> Array:
  """|∂S_c/∂I|, the maximum over colour channels [N, H, W] (Simonyan et al. 2014, §3.1)."""
  return jnp.max(jnp.abs(gradient(fn, x, targets)), axis=-1)


def grad_cam(head: Fn, tail: Fn, x: Array, classes: Array) -> Array:
  """Grad-CAM (Selvaraju et al. 2017): ReLU(Σ_k α_k A_k), α_k the mean over positions of
  ∂S_c/∂A_k, for the layer `head` ends at; resized to the input [N, H, W]."""
  activations = head(x)
  if activations.ndim != 4:
    raise ValueError(
      f"Grad-CAM needs a layer with a spatial map; its output is {activations.shape}"
    )
  grads = jax.grad(lambda a: target_score(tail(a), classes).sum())(activations)
  weights = grads.mean(axis=(1, 2), keepdims=True)
  cam = jax.nn.relu((weights * activations).sum(-1))
  return jax.image.resize(cam, (len(x), *x.shape[1:3]), "bilinear")


def integrated_gradients(
  fn: Fn, x: Array, targets: Array, baseline: Array, steps: int = 64
) -> Array:
  """(x − x′)·∫₀¹ ∂S(x′ + α(x − x′))/∂x dα (Sundararajan et al. 2017), by the trapezoid
  rule over `steps` intervals; one batch of gradients at a time, so memory stays that of
  one gradient whatever `steps`. Σ attributions ≈ S(x) − S(x′) (completeness)."""
  baseline = jnp.broadcast_to(baseline, x.shape)

  def accumulate(total: Array, i: Array) -> tuple[Array, None]:
    alpha = i / steps
    weight = jnp.where((i == 0) | (i == steps), 0.5, 1.0) / steps
    return total + weight * gradient(fn, baseline + alpha * (x - baseline), targets), None

  total, _ = jax.lax.scan(accumulate, jnp.zeros_like(x), jnp.arange(steps + 1))
  return (x - baseline) * total


def smooth_grad(
  fn: Fn, x: Array, targets: Array, key: Array, samples: int = 32, noise: float = 0.15
) -> Array:
  """The gradient averaged over `samples` noisy copies, σ = noise × each image's value range
  (Smilkov et al. 2017), one batch at a time."""
  spread = noise * (x.max(axis=(1, 2, 3), keepdims=True) - x.min(axis=(1, 2, 3), keepdims=True))

  def accumulate(total: Array, sample_key: Array) -> tuple[Array, None]:
    noisy = x + spread * jax.random.normal(sample_key, x.shape)
    return total + gradient(fn, noisy, targets), None

  total, _ = jax.lax.scan(accumulate, jnp.zeros_like(x), jax.random.split(key, samples))
  return total / samples


def occlusion_positions(size: int, patch: int, stride: int) -> np.ndarray:
  """Top (or left) edges of the square: every `stride` pixels, the last flush with the edge."""
  edges = list(range(0, max(size - patch, 0) + 1, stride))
  if edges[-1] != max(size - patch, 0):
    edges.append(size - patch)
  return np.asarray(edges)


def occlusion(
  scores: Fn,
  x: Array,
  classes: Array,
  patch: int,
  stride: int,
  fill: Array,
  batch: int = 256,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
  """Zeiler & Fergus (2014, §4.2): a `patch`² square of `fill` (the dataset's mean colour)
  slid over each image; at every position the probability of the image's class and the most
  likely class. Returns (probability [N, Py, Px], top class [N, Py, Px], the squares' rows
  [Py] and columns [Px]); positions are evaluated `batch` occluded images at a time."""
  n, height, width, _ = x.shape
  rows = occlusion_positions(height, patch, stride)
  cols = occlusion_positions(width, patch, stride)
  corners = np.stack(np.meshgrid(rows, cols, indexing="ij"), -1).reshape(-1, 2)

  @jax.jit
  def evaluate(images: Array, image_classes: Array, tops: Array, lefts: Array) -> tuple:
    ys, xs = jnp.arange(height)[None, :, None], jnp.arange(width)[None, None, :]
    inside = (
      (ys >= tops[:, None, None])
      & (ys < tops[:, None, None] + patch)
      & (xs >= lefts[:, None, None])
      & (xs < lefts[:, None, None] + patch)
    )
    occluded = jnp.where(inside[..., None], fill, images)
    logits = scores(occluded)
    probability = jnp.take_along_axis(jax.nn.softmax(logits, -1), image_classes[:, None], -1)
    return probability[:, 0], jnp.argmax(logits, -1)

  # Every (image, position) pair once, in chunks of `batch`; the last chunk is padded so that
  # one compiled shape serves all.
  pairs = np.stack(np.meshgrid(np.arange(n), np.arange(len(corners)), indexing="ij"), -1)
  pairs = pairs.reshape(-1, 2)
  padded = -len(pairs) % batch
  pairs = np.concatenate([pairs, np.repeat(pairs[-1:], padded, 0)])
  probabilities, tops_found = [], []
  for start in range(0, len(pairs), batch):
    image, position = pairs[start : start + batch].T
    probability, top = evaluate(
      x[image], classes[image], corners[position, 0], corners[position, 1]
    )
    probabilities.append(np.asarray(probability))
    tops_found.append(np.asarray(top))
  shape = (n, len(rows), len(cols))
  probability = np.concatenate(probabilities)[: n * len(corners)].reshape(shape)
  top = np.concatenate(tops_found)[: n * len(corners)].reshape(shape)
  return probability, top, rows, cols
