"""torchvision's and timm's state_dict names → convzoo's variables, per family.

Each function reads the source's tensors through a `conversions.Transfer` and fills the convzoo
network's variables; the layouts are converted in `conversions`. The names follow
torchvision/models/{alexnet,vgg,googlenet,resnet}.py and timm/models/{vgg,resnet}.py.
"""

from __future__ import annotations

from weights.conversions import Transfer, conv_kernel, dense_kernel

BN_SUFFIX = "_bn"  # models/layers.py: a convolution's batch norm is named after it


def conv(t: Transfer, source: str, target: tuple[str, ...], bias: bool = True) -> None:
  """A convolution `source`.weight (and .bias) into convzoo's `target` layer."""
  t.put(("params", *target, "kernel"), conv_kernel(t.take(f"{source}.weight")), f"{source}.weight")
  if bias:
    t.put(("params", *target, "bias"), t.take(f"{source}.bias"), f"{source}.bias")


def batch_norm(t: Transfer, source: str, target: tuple[str, ...], conv_bias: str = "") -> None:
  """PyTorch's BatchNorm2d `source` into convzoo's `target`_bn.

  A bias of the convolution before it (torchvision's VGG-BN keeps one) is folded into the
  running mean, BN(Wx + b) = γ(Wx − (μ − b))/σ + β: convzoo's convolutions drop their bias
  under batch norm."""
  *scope, layer = target
  bn = (*scope, layer + BN_SUFFIX)
  mean = t.take(f"{source}.running_mean")
  if conv_bias:
    mean = mean - t.take(conv_bias)
  t.put(("params", *bn, "scale"), t.take(f"{source}.weight"), f"{source}.weight")
  t.put(("params", *bn, "bias"), t.take(f"{source}.bias"), f"{source}.bias")
  t.put(("batch_stats", *bn, "mean"), mean, f"{source}.running_mean")
  t.put(("batch_stats", *bn, "var"), t.take(f"{source}.running_var"), f"{source}.running_var")
  t.skip([f"{source}.num_batches_tracked"])  # bookkeeping, not a weight


def dense(t: Transfer, source: str, target: str, channels_first: tuple | None = None) -> None:
  weight = t.take(f"{source}.weight")
  t.put(("params", target, "kernel"), dense_kernel(weight, channels_first), f"{source}.weight")
  t.put(("params", target, "bias"), t.take(f"{source}.bias"), f"{source}.bias")


def alexnet(t: Transfer) -> None:
  """torchvision's AlexNet: features.{0,3,6,8,10} are conv1–5; classifier.{1,4,6} fc6–8, fc6
  reading the 256×6×6 map."""
  for index, name in zip(
    (0, 3, 6, 8, 10), ("conv1", "conv2", "conv3", "conv4", "conv5"), strict=True
  ):
    conv(t, f"features.{index}", (name,))
  dense(t, "classifier.1", "fc6", (256, 6, 6))
  dense(t, "classifier.4", "fc7")
  dense(t, "classifier.6", "fc8")


def vgg(t: Transfer, conv_names: list[str], batch_norm_layers: bool, timm: bool) -> None:
  """torchvision's and timm's VGG: `features` is a Sequential of conv (→ BN) → ReLU, and a max
  pool after each stage; conv_names are convzoo's in order, with "pool" where a pool sits."""
  index = 0
  for name in conv_names:
    if name == "pool":
      index += 1
      continue
    if batch_norm_layers:
      conv(t, f"features.{index}", (name,), bias=False)
      batch_norm(t, f"features.{index + 1}", (name,), conv_bias=f"features.{index}.bias")
      index += 3
    else:
      conv(t, f"features.{index}", (name,))
      index += 2
  if timm:  # timm's ConvMlp: fc6 as a 7×7 convolution, fc7 as a 1×1 (timm/models/vgg.py)
    dense(t, "pre_logits.fc1", "fc6")
    dense(t, "pre_logits.fc2", "fc7")
    dense(t, "head.fc", "fc8")
  else:
    dense(t, "classifier.0", "fc6", (512, 7, 7))
    dense(t, "classifier.3", "fc7")
    dense(t, "classifier.6", "fc8")


def resnet(t: Transfer, blocks_per_stage: tuple[int, ...], bottleneck: bool) -> None:
  """torchvision's (and timm's, same names) ResNet: conv1/bn1, layer{s}.{b}.conv{k}/bn{k},
  downsample.0/1 (the projection shortcut), fc."""
  conv(t, "conv1", ("conv1",), bias=False)
  batch_norm(t, "bn1", ("conv1",))
  for stage, count in enumerate(blocks_per_stage, start=1):
    for block in range(count):
      source, target = f"layer{stage}.{block}", f"stage{stage}_block{block + 1}"
      for k in range(1, 4 if bottleneck else 3):
        conv(t, f"{source}.conv{k}", (target, f"conv{k}"), bias=False)
        batch_norm(t, f"{source}.bn{k}", (target, f"conv{k}"))
      if t.has(f"{source}.downsample.0.weight"):
        conv(t, f"{source}.downsample.0", (target, "projection"), bias=False)
        batch_norm(t, f"{source}.downsample.1", (target, "projection"))
  dense(t, "fc", "fc")


INCEPTION_BRANCHES = {  # torchvision's branch → convzoo's convolution
  "branch1": "1x1",
  "branch2.0": "3x3_reduce",
  "branch2.1": "3x3",
  "branch3.0": "5x5_reduce",
  "branch3.1": "5x5",
  "branch4.1": "pool_proj",
}


def googlenet(t: Transfer, inceptions: list[str], aux: bool) -> None:
  """torchvision's GoogLeNet: BasicConv2d = conv (no bias) + BN everywhere; conv2/conv3 are
  convzoo's conv2_reduce/conv2; inception3a… → inception_3a…; aux1/aux2 heads; fc."""
  for source, target in (("conv1", "conv1"), ("conv2", "conv2_reduce"), ("conv3", "conv2")):
    conv(t, f"{source}.conv", (target,), bias=False)
    batch_norm(t, f"{source}.bn", (target,))
  for name in inceptions:
    source = name.replace("_", "")
    for branch, target in INCEPTION_BRANCHES.items():
      conv(t, f"{source}.{branch}.conv", (name, target), bias=False)
      batch_norm(t, f"{source}.{branch}.bn", (name, target))
  for head in ("aux1", "aux2"):
    if aux:
      conv(t, f"{head}.conv.conv", (head, "conv"), bias=False)
      batch_norm(t, f"{head}.conv.bn", (head, "conv"))
      fc1 = t.take(f"{head}.fc1.weight")  # reads the 128×4×4 map
      t.put(("params", head, "fc", "kernel"), dense_kernel(fc1, (128, 4, 4)), f"{head}.fc1.weight")
      t.put(("params", head, "fc", "bias"), t.take(f"{head}.fc1.bias"), f"{head}.fc1.bias")
      t.put(("params", head, "linear", "kernel"), dense_kernel(t.take(f"{head}.fc2.weight")))
      t.put(("params", head, "linear", "bias"), t.take(f"{head}.fc2.bias"), f"{head}.fc2.bias")
  dense(t, "fc", "linear")
