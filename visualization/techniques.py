"""The techniques, each a section of the page: it runs the compute (attribution, synthesis,
units, receptive fields, sanity), saves the arrays as `NAME.npz` and draws `NAME.png`.

In the order of the page: filters and top patches (Zeiler & Fergus 2014), t-SNE of the codes
(van der Maaten & Hinton 2008), occlusion (Zeiler & Fergus 2014), saliency and class models
(Simonyan et al. 2014), deconvnet (Zeiler & Fergus 2014), guided backpropagation (Springenberg
et al. 2014), inversion (Mahendran & Vedaldi 2015), Grad-CAM (Selvaraju et al. 2017),
integrated gradients (Sundararajan et al. 2017), SmoothGrad (Smilkov et al. 2017) and the
cascading randomisation check (Adebayo et al. 2018).
"""

from __future__ import annotations

import dataclasses
import pathlib
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

import input_pipeline
import tables
from models.layers import Conv
from visualization import attribution, drawing, receptive, sanity, synthesis, units
from visualization.network import Network, chunked
from visualization.page import Section
from visualization.plan import Plan


@dataclasses.dataclass
class Subject:
  """What every technique reads: the trained network, its settings, the images it explains."""

  network: Network
  config: ml_collections.ConfigDict
  data: input_pipeline.Data
  plan: Plan
  fields: dict[str, receptive.Field | None]
  x: jax.Array  # the explained eval images, in input space
  labels: jax.Array
  class_names: list[str]
  folder: pathlib.Path

  @property
  def settings(self) -> ml_collections.ConfigDict:
    return self.config.visualize

  @property
  def layer(self) -> str:
    """The layer with a spatial map that patches, deconvnet and Grad-CAM look at."""
    return self.plan.layer

  @property
  def label_names(self) -> list[str]:
    """The explained images' class names."""
    return [self.class_names[int(c)] for c in self.labels]

  def pixels(self, x: jax.Array) -> np.ndarray:
    return np.asarray(self.network.pixels(x))

  def save(self, name: str, **arrays: Any) -> None:
    np.savez_compressed(
      self.folder / f"{name}.npz", **{k: np.asarray(v) for k, v in arrays.items()}
    )

  def key(self, name: str) -> jax.Array:
    return jax.random.fold_in(jax.random.key(self.settings.seed), sum(map(ord, name)))


def filters(s: Subject) -> Section:
  convs = [
    l.name
    for l in s.network.model.layers[: s.network.check_layer(s.layer) + 1]
    if isinstance(l, Conv) and l.kernel > 1
  ]
  shown = list(dict.fromkeys([convs[0], convs[-1]]))  # the first layer, and the deepest one
  params = s.network.variables["params"]
  rows, labels, arrays = [], [], {}
  for name in shown:
    kernel = np.asarray(params[name]["kernel"])
    images = units.filter_images(kernel)  # [C_out, k, k, C_in]
    arrays[name] = kernel
    if name == convs[0] and images.shape[-1] in (1, 3):  # colour (or grey) images
      for i in range(0, min(len(images), 64), 16):
        rows.append(list(drawing.to_display(images[i : i + 16])))
        labels.append(f"{name} {i}–{min(i + 16, len(images)) - 1}")
    else:  # one row per input channel (the first 8): the first 16 filters' slices
      for c in range(min(8, images.shape[-1])):
        rows.append([images[f, ..., c] for f in range(min(16, len(images)))])
        labels.append(f"{name} in {c}")
  s.save("filters", **arrays)
  picture = drawing.grid(
    s.folder / "filters.png",
    rows,
    "filters, each scaled from its lowest weight (black) to its highest (white)",
    row_labels=labels,
  )
  return (
    "filters",
    picture.name,
    f"The learned kernels of {' and '.join(shown)}, each filter scaled to [0, 1]; deeper ones "
    "as one slice per input channel.",
    {"layers": ", ".join(shown)},
  )


def patches(s: Subject) -> Section:
  train = s.data.train
  limit = min(s.settings.patch_images or len(train), len(train))

  def batches():
    for first in range(0, limit, s.settings.batch):
      indices = np.arange(first, min(first + s.settings.batch, limit))
      yield first, s.network.inputs(jnp.asarray(train.read(indices)[0]))

  rows, labels, arrays, rates, sizes = [], [], {}, [], []
  for layer in s.plan.patch_layers:
    wanted = s.plan.unit_ids[layer]
    started = time.perf_counter()
    found = units.top_activations(s.network.split(layer)[0], batches(), wanted, s.settings.top_k)
    rates.append(limit / (time.perf_counter() - started))
    field = s.fields[layer]
    sizes.append(f"{layer} {'×'.join(map(str, field.size))}")
    for u, unit in enumerate(wanted):
      pixels = s.pixels(s.network.inputs(jnp.asarray(train.read(found.images[u])[0])))
      cut = [
        units.cut_patch(p, field, *found.positions[u, i], fill=0.5) for i, p in enumerate(pixels)
      ]
      rows.append(list(drawing.to_display(np.stack(cut))))
      labels.append(f"{layer} unit {unit}")
    arrays |= {
      f"{layer}_units": wanted,
      f"{layer}_values": found.values,
      f"{layer}_images": found.images,
      f"{layer}_positions": found.positions,
    }
  s.save("patches", **arrays)
  picture = drawing.grid(
    s.folder / "patches.png", rows, f"top {s.settings.top_k} patches per unit", row_labels=labels
  )
  return (
    "patches",
    picture.name,
    f"For each unit, the {s.settings.top_k} training images (of {limit}) with its strongest "
    f"activation, cut to its receptive field ({', '.join(sizes)}; grey where it runs past the "
    f"image). {min(rates):,.0f} images/s per layer searched.",
    {"layers": ", ".join(s.plan.patch_layers), "top_k": s.settings.top_k, "images": limit},
  )


def tsne(s: Subject) -> Section:
  from sklearn.manifold import TSNE

  penultimate = s.network.layer_names[-2]
  head, _ = s.network.split(penultimate)
  count = min(s.settings.tsne_images, len(s.data.eval))
  images, labels = s.data.eval.read(np.arange(count))
  codes = chunked(
    lambda x: head(s.network.inputs(x)).reshape(len(x), -1), jnp.asarray(images), s.settings.batch
  )
  points = TSNE(
    2,
    perplexity=min(s.settings.tsne_perplexity, count - 1),
    init="pca",
    random_state=s.settings.seed,
  ).fit_transform(codes)
  shown = np.linspace(0, count - 1, min(count, 24)).astype(int)
  s.save("tsne", points=points, labels=labels)
  picture = drawing.scatter(
    s.folder / "tsne.png",
    points,
    labels,
    s.class_names,
    s.pixels(s.network.inputs(jnp.asarray(images[shown]))),
    points[shown],
    f"t-SNE of {penultimate} ({codes.shape[1]} dimensions), {count} eval images",
  )
  return (
    "tsne",
    picture.name,
    f"scikit-learn's t-SNE of the {penultimate} codes of {count} eval images, coloured by "
    "class, with some of the images drawn at their points.",
    {"layer": penultimate, "images": count, "perplexity": s.settings.tsne_perplexity},
  )


def occlusion(s: Subject) -> Section:
  scores = s.network.scores()
  started = time.perf_counter()
  probability, top, rows, cols = attribution.occlusion(
    scores,
    s.x,
    s.labels,
    s.settings.occlusion_patch,
    s.settings.occlusion_stride,
    s.network.grey(),
    s.settings.batch,
  )
  seconds = time.perf_counter() - started
  evaluated = probability.size
  s.save("occlusion", probability=probability, top_class=top, rows=rows, cols=cols)
  pixels = drawing.photo(s.pixels(s.x))
  top_colours, legend = drawing.class_colours(top, s.class_names)
  picture = drawing.grid(
    s.folder / "occlusion.png",
    [[pixels[i], probability[i], top_colours[i]] for i in range(len(s.x))],
    "occlusion",
    row_labels=s.label_names,
    column_labels=["image", "p(true class)", "most likely class"],
    cell=1.6,
    keys=[None, drawing.ColourBar("p(true class)"), legend],
  )
  return (
    "occlusion",
    picture.name,
    f"A {s.settings.occlusion_patch}² square of the dataset's mean colour slid by "
    f"{s.settings.occlusion_stride} pixels: the probability of the true class (dark: the "
    f"square hides what the network needs) and the most likely class at each position. "
    f"{evaluated / seconds:,.0f} occluded images/s.",
    {"patch": s.settings.occlusion_patch, "stride": s.settings.occlusion_stride},
  )


def _beside_images(
  s: Subject,
  name: str,
  arrays: np.ndarray,
  shown: np.ndarray,
  bar: drawing.ColourBar,
  description: str,
  settings: dict,
) -> Section:
  """A picture per explained image, beside the image: saved as `name`.npz and `name`.png."""
  s.save(name, maps=arrays, labels=s.labels)
  picture = drawing.beside_images(
    s.folder / f"{name}.png", s.pixels(s.x), shown, name, s.label_names, bar
  )
  return name, picture.name, description, settings


def _map_section(
  s: Subject, name: str, maps: jax.Array, quantity: str, description: str, settings: dict
) -> Section:
  """Non-negative heat maps [N, H, W] of `quantity`, each divided by its maximum."""
  maps = np.asarray(maps)
  bar = drawing.ColourBar(f"{quantity}\n÷ its per-image maximum", "inferno")
  return _beside_images(s, name, maps, drawing.relative(maps), bar, description, settings)


def _signed_section(
  s: Subject, name: str, grads: jax.Array, quantity: str, description: str, settings: dict
) -> Section:
  """Gradient-like images [N, H, W, C] of `quantity`, each divided by its largest |value|:
  zero drawn grey."""
  grads = np.asarray(grads)
  each = "\n(each colour channel)" if grads.shape[-1] > 1 else ""  # what the bar reads in RGB
  bar = drawing.ColourBar(f"{quantity}\n÷ its per-image max |·|{each}", "gray", -1.0, 1.0)
  return _beside_images(s, name, grads, drawing.signed(grads), bar, description, settings)


def saliency(s: Subject) -> Section:
  maps = attribution.saliency(s.network.scores(), s.x, s.labels)
  return _map_section(
    s,
    "saliency",
    maps,
    "|∂S_c/∂I|",
    "|∂S_c/∂I|, the maximum over channels, for the true class c.",
    {},
  )


def deconvnet(s: Subject) -> Section:
  layer_of = lambda x: s.network.activations("deconvnet")(x)[s.layer]
  if s.plan.chosen_units:
    unit = jnp.full(len(s.x), s.plan.unit_ids[s.layer][0])
  else:  # each image's most active unit
    unit = jnp.argmax(jnp.max(layer_of(s.x), axis=(1, 2)), -1)
  grads = attribution.gradient(layer_of, s.x, unit)
  return _signed_section(
    s,
    "deconvnet",
    grads,
    f"{s.layer} unit's deconvnet projection",
    f"Zeiler & Fergus's deconvnet projection of a {s.layer} unit (the first of unit_ids, else "
    "each image's most active one) "
    "(ReLUs pass positive signals back whatever their input; max pools route to the argmax).",
    {"layer": s.layer},
  )


def guided(s: Subject) -> Section:
  grads = attribution.gradient(s.network.scores("guided"), s.x, s.labels)
  return _signed_section(
    s,
    "guided",
    grads,
    "guided ∂S_c/∂I",
    "Guided backpropagation of the true class: only positive gradients pass a ReLU, and only "
    "where its input was positive.",
    {},
  )


def class_models(s: Subject) -> Section:
  v = s.settings
  classes = jnp.asarray(s.plan.classes)
  images = synthesis.class_models(
    s.network.scores(),
    tuple(s.x.shape[1:]),
    classes,
    s.key("class_models"),
    v.class_model_steps,
    v.class_model_lr,
    v.class_model_l2,
    v.class_model_jitter,
    v.class_model_blur_every,
  )
  s.save("class_models", images=images)
  shown = drawing.to_display(drawing.scaled(images))
  picture = drawing.grid(
    s.folder / "class_models.png",
    [list(shown)],
    "class models",
    column_labels=[s.class_names[c] for c in s.plan.classes],
    cell=1.4,
  )
  return (
    "class_models",
    picture.name,
    "argmax_I S_c(I) − λ‖I‖² by gradient ascent from the mean image (plus noise of σ 0.01), "
    "one image per class.",
    {k: v[f"class_model_{k}"] for k in ("steps", "lr", "l2", "jitter", "blur_every")},
  )


def inversion(s: Subject) -> Section:
  layers = s.plan.invert_layers
  rows, arrays = [], {}
  originals = drawing.to_display(s.pixels(s.x[:4]))
  rows.append(list(originals))
  for layer in layers:
    head, _ = s.network.split(layer)
    found = synthesis.invert(
      head,
      head(s.x[:4]),
      tuple(s.x.shape[1:]),
      s.key(layer),
      s.settings.invert_steps,
      tv_weight=s.settings.invert_tv,
    )
    arrays[layer] = found
    rows.append(list(drawing.to_display(drawing.scaled(found))))
  s.save("inversion", **arrays)
  picture = drawing.grid(
    s.folder / "inversion.png", rows, "inversion", row_labels=["image", *layers], cell=1.4
  )
  return (
    "inversion",
    picture.name,
    "Images whose code at each layer matches the real image's: argmin_x "
    "‖Φ(x) − Φ0‖²/‖Φ0‖² + λ·TV(x), from small noise (Mahendran & Vedaldi 2015).",
    {"layers": ", ".join(layers), "steps": s.settings.invert_steps, "tv": s.settings.invert_tv},
  )


def grad_cam(s: Subject) -> Section:
  maps = attribution.grad_cam(*s.network.split(s.layer), s.x, s.labels)
  return _map_section(
    s,
    "grad_cam",
    maps,
    f"Grad-CAM at {s.layer}",
    f"Grad-CAM of the true class at {s.layer}.",
    {"layer": s.layer},
  )


def integrated_gradients(s: Subject) -> Section:
  attributions = attribution.integrated_gradients(
    s.network.scores(), s.x, s.labels, jnp.zeros_like(s.x), s.settings.ig_steps
  )
  return _map_section(
    s,
    "integrated_gradients",
    jnp.abs(attributions).max(-1),
    "|integrated gradients|",
    "Integrated gradients of the true class from the mean image (zero input), |·| max over "
    "channels; they sum to S(x) − S(baseline).",
    {"steps": s.settings.ig_steps},
  )


def smooth_grad(s: Subject) -> Section:
  grads = attribution.smooth_grad(
    s.network.scores(),
    s.x,
    s.labels,
    s.key("smooth_grad"),
    s.settings.smooth_grad_samples,
    s.settings.smooth_grad_noise,
  )
  return _map_section(
    s,
    "smooth_grad",
    jnp.abs(grads).max(-1),
    "|SmoothGrad|",
    "SmoothGrad: the gradient averaged over noisy copies, |·| max over channels.",
    {"samples": s.settings.smooth_grad_samples, "noise": s.settings.smooth_grad_noise},
  )


def sanity_check(s: Subject) -> Section:
  fresh = s.network.model.init(s.key("sanity"), s.x[:1])["params"]
  explain = {
    "saliency": lambda n: attribution.saliency(n.scores(), s.x, s.labels),
    "guided": lambda n: jnp.abs(attribution.gradient(n.scores("guided"), s.x, s.labels)).max(-1),
    "grad_cam": lambda n: attribution.grad_cam(*n.split(s.layer), s.x, s.labels),
  }
  results = {
    name: sanity.cascading_randomization(s.network, fn, fresh) for name, fn in explain.items()
  }
  layers = [layer for layer, _ in results["saliency"]]
  table = {name: [value for _, value in rows] for name, rows in results.items()}
  s.save("sanity", layers=np.asarray(layers), **{k: np.asarray(v) for k, v in table.items()})
  rows = [
    {"re-initialised down to": layer, **{name: table[name][i] for name in table}}
    for i, layer in enumerate(layers)
  ]
  (s.folder / "sanity.md").write_text(tables.markdown_table(rows) + "\n")
  picture = drawing.line_plot(
    s.folder / "sanity.png",
    layers,
    table,
    "cascading randomisation from the top (Adebayo et al. 2018)",
  )
  return (
    "sanity",
    picture.name,
    "The layers re-initialised one at a time from the top, cumulatively: the mean Spearman "
    "rank correlation of each map with the trained network's (a map that stays near 1 does not "
    "depend on the weights). Table: sanity.md.",
    {"maps": ", ".join(table)},
  )


TECHNIQUES: dict[str, Callable[[Subject], Section]] = {
  "filters": filters,
  "patches": patches,
  "tsne": tsne,
  "occlusion": occlusion,
  "saliency": saliency,
  "deconvnet": deconvnet,
  "guided": guided,
  "class_models": class_models,
  "inversion": inversion,
  "grad_cam": grad_cam,
  "integrated_gradients": integrated_gradients,
  "smooth_grad": smooth_grad,
  "sanity": sanity_check,
}
