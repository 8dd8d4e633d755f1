"""The published networks convzoo imports: each a convzoo network plus config fields (a variant,
its normalisation, its batch-norm epsilon) and the input convention its weights were trained with.

  torchvision:NAME   torchvision state_dicts (.pth or .safetensors with the same names)
  timm:NAME[.TAG]    timm's safetensors of the same families (resnet50.a1_in1k, vgg16.tv_in1k)
  caffe:NAME         Caffe caffemodels of the papers' own networks

How each differs from the paper's network is written where the variant lives: models/alexnet.py,
googlenet.py, resnet.py and models/layers.py (LRN constants).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import config_values
from models import googlenet as googlenet_family
from models import resnet as resnet_family
from models import vgg as vgg_family
from weights import caffe_names, torch_names

# torchvision's published weights read RGB in [0, 1] standardised by the ImageNet mean and std,
# resized to 256 and centre-cropped to 224 (torchvision's ImageClassification transform).
TORCHVISION_INPUT = {
  "channel_order": "rgb",
  "pixel_range": 1.0,
  "normalization": "standardize",
  "mean": (0.485, 0.456, 0.406),
  "std": (0.229, 0.224, 0.225),
  "resize": 256,
  "resize_mode": "shorter_side",
  "center_crop": 256,
  "crop_size": 224,
}
# torchvision's GoogLeNet has transform_input on with its published weights: it turns the
# ImageNet-standardised input into (x − 0.5)/0.5 per channel, which is this normalisation.
GOOGLENET_INPUT = TORCHVISION_INPUT | {"mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5)}
# Caffe's read BGR in 0–255 minus a mean pixel (BVLC: 104, 117, 123), from ImageNet resized to
# 256×256 regardless of aspect (the BVLC LMDBs), then centre-cropped.
CAFFE_INPUT = {
  "channel_order": "bgr",
  "pixel_range": 255.0,
  "normalization": "mean",
  "mean": (104.0, 117.0, 123.0),
  "std": (),
  "resize": 256,
  "resize_mode": "warp",
  "center_crop": 0,
  "crop_size": 224,
}
# He et al. test on the shorter side resized to 256 (their mean image is close to the BVLC mean
# pixel, which is what convzoo subtracts); Simonyan & Zisserman publish their mean pixel.
HE_INPUT = CAFFE_INPUT | {"resize_mode": "shorter_side", "center_crop": 256}
VGG_CAFFE_INPUT = HE_INPUT | {"mean": (103.939, 116.779, 123.68)}

NUM_CLASSES = 1000  # every published network here classifies ImageNet-1k


@dataclasses.dataclass(frozen=True)
class Recipe:
  """How one published network becomes a convzoo run."""

  model: dict[str, Any]  # config.model fields: name, family fields, norm, batch-norm epsilon
  dataset: dict[str, Any]  # config.dataset fields: input convention and crops
  # (Transfer, the network's layer table, whether the file has auxiliary heads) → {caffe layer:
  # convzoo path} of the convolutions to check (Caffe), or None.
  transfer: Callable[..., Any]
  published: str  # single-crop top-1/top-5 accuracy % on ImageNet val, as published; "" unknown
  # Caffe: (whether the file has auxiliary heads) → {Caffe layer: convzoo path} of the
  # convolutions whose definitions are checked before anything is copied.
  caffe_convs: Callable[[bool], dict] | None = None


def vgg_conv_names(configuration: str) -> list[str]:
  """convzoo's convolution names of a VGG in order, "pool" after each stage."""
  names = []
  for stage, entries in enumerate(vgg_family.CONFIGS[configuration], start=1):
    names += [f"conv{stage}_{i}" for i in range(1, len(entries) + 1)] + ["pool"]
  return names


INCEPTIONS = [name for name, row in googlenet_family.INCEPTION_TABLE if row is not None]
VGG_CONFIGURATIONS = {"vgg11": "a", "vgg13": "b", "vgg16": "d", "vgg19": "e"}
# Published single-crop accuracies (top-1/top-5 %): torchvision's model documentation.
TORCHVISION_VGG = {
  "vgg11": "69.02/88.63",
  "vgg13": "69.93/89.25",
  "vgg16": "71.59/90.38",
  "vgg19": "72.38/90.88",
  "vgg11_bn": "70.37/89.81",
  "vgg13_bn": "71.59/90.36",
  "vgg16_bn": "73.36/91.52",
  "vgg19_bn": "74.22/91.84",
}
TORCHVISION_RESNET = {
  18: "69.76/89.08",
  34: "73.31/91.42",
  50: "76.13/92.86",
  101: "77.37/93.55",
  152: "78.31/94.05",
}
HE_RESNET = {50: "75.3/92.2", 101: "76.4/92.9", 152: "77.0/93.3"}  # their README, 224 centre crop


def torch_recipes(timm: bool) -> dict[str, Recipe]:
  """torchvision's names (timm=False) or timm's architecture names (timm=True)."""
  recipes = {}
  for name, configuration in VGG_CONFIGURATIONS.items():
    convs = vgg_conv_names(configuration)
    for bn in (False, True):
      recipes[name + ("_bn" if bn else "")] = Recipe(
        {"name": f"vgg_{configuration}", "norm": "batch" if bn else "none"},
        TORCHVISION_INPUT,
        lambda t, table, aux, convs=convs, bn=bn: torch_names.vgg(t, convs, bn, timm),
        "" if timm else TORCHVISION_VGG[name + ("_bn" if bn else "")],
      )
  for depth, (block, blocks) in resnet_family.IMAGENET_STAGES.items():
    recipes[f"resnet{depth}"] = Recipe(
      {"name": f"resnet{depth}", "variant": "torchvision", "norm": "batch"},
      TORCHVISION_INPUT,
      lambda t, table, aux, blocks=blocks, block=block: torch_names.resnet(
        t, blocks, block == "bottleneck"
      ),
      "" if timm else TORCHVISION_RESNET[depth],
    )
  if not timm:  # timm has no AlexNet or GoogLeNet
    recipes["alexnet"] = Recipe(
      {"name": "alexnet", "variant": "torchvision", "norm": "none"},
      TORCHVISION_INPUT,
      lambda t, table, aux: torch_names.alexnet(t),
      "56.52/79.07",
    )
    recipes["googlenet"] = Recipe(
      {"name": "googlenet", "variant": "torchvision", "norm": "batch", "batch_norm_epsilon": 1e-3},
      GOOGLENET_INPUT,
      lambda t, table, aux: torch_names.googlenet(t, INCEPTIONS, aux),
      "69.78/89.53",
    )
  return recipes


def caffe_recipes() -> dict[str, Recipe]:
  bvlc_alexnet = {"name": "alexnet", "variant": "paper", "groups": 2, "lrn": "caffe", "norm": "lrn"}
  recipes = {
    "bvlc_alexnet": Recipe(
      bvlc_alexnet | {"lrn_order": "relu_lrn_pool"},
      CAFFE_INPUT | {"crop_size": 227},
      lambda t, table, aux: caffe_names.alexnet(t),
      "57.1/80.2",
      lambda aux: caffe_names.alexnet_convs(),
    ),
    "caffenet": Recipe(  # BVLC's reference CaffeNet: pool before norm
      bvlc_alexnet | {"lrn_order": "pool_lrn"},
      CAFFE_INPUT | {"crop_size": 227},
      lambda t, table, aux: caffe_names.alexnet(t),
      "57.4/80.4",
      lambda aux: caffe_names.alexnet_convs(),
    ),
    "bvlc_googlenet": Recipe(
      {"name": "googlenet", "variant": "paper", "lrn": "caffe", "norm": "lrn"},
      CAFFE_INPUT,
      lambda t, table, aux: caffe_names.googlenet(t, INCEPTIONS, aux),
      "68.7/88.9",
      lambda aux: caffe_names.googlenet_convs(INCEPTIONS, aux),
    ),
  }
  for depth, published in HE_RESNET.items():
    blocks = resnet_family.IMAGENET_STAGES[depth][1]
    recipes[f"resnet{depth}"] = Recipe(
      {"name": f"resnet{depth}", "variant": "paper", "norm": "batch"},
      HE_INPUT,
      lambda t, table, aux, depth=depth, blocks=blocks: caffe_names.resnet(t, depth, blocks),
      published,
      lambda aux, depth=depth, blocks=blocks: caffe_names.resnet_convs(depth, blocks),
    )
  for name in ("vgg16", "vgg19"):
    convs = [c for c in vgg_conv_names(VGG_CONFIGURATIONS[name]) if c != "pool"]
    recipes[name] = Recipe(
      {"name": f"vgg_{VGG_CONFIGURATIONS[name]}", "norm": "none"},
      VGG_CAFFE_INPUT,
      lambda t, table, aux, convs=convs: caffe_names.vgg(t, convs),
      "",
      lambda aux, convs=convs: caffe_names.vgg_convs(convs),
    )
  return recipes


SOURCES: dict[str, dict[str, Recipe]] = {
  "torchvision": torch_recipes(timm=False),
  "timm": torch_recipes(timm=True),
  "caffe": caffe_recipes(),
}
FORMAT = "SOURCE:NETWORK, e.g. torchvision:resnet50, timm:resnet50.a1_in1k or caffe:bvlc_alexnet"


def parse(spec: str) -> tuple[str, str, Recipe]:
  """ "timm:resnet50.a1_in1k" → ("timm", "resnet50.a1_in1k", its Recipe); a ValueError naming
  the bad part and what is allowed."""
  source, colon, network = spec.partition(":")
  if not colon or not network:
    raise ValueError(f"--source {spec!r} is not {FORMAT}")
  recipes = config_values.choose("weights source", source, SOURCES)
  architecture = network.partition(".")[0] if source == "timm" else network
  return source, network, config_values.choose(f"{source} network", architecture, recipes)
