"""Imports published weights (torchvision, timm, Caffe) as a convzoo run.

  .venv/bin/python import_weights.py --source=SOURCE:NETWORK --file=PATH --workdir=DIR

SOURCE:NETWORK is torchvision:{alexnet, vgg11…vgg19[_bn], googlenet, resnet18…resnet152},
timm:{resnet18…resnet152, vgg11…vgg19[_bn]}[.TAG] (e.g. timm:resnet50.a1_in1k), or
caffe:{bvlc_alexnet, caffenet, bvlc_googlenet, resnet50, resnet101, resnet152, vgg16, vgg19}.
PATH is a .pth or .safetensors state_dict (torchvision, timm) or a .caffemodel (Caffe); it is
read without PyTorch or Caffe and can run no code. DIR gets config.json (the network as a
convzoo variant and the input convention its weights expect), a checkpoint and imported.json
(the source, the file's sha256, the published accuracy); eval.py, predict.py, visualize.py
and --config.init_from take it like any trained run. Nothing is written unless every tensor
finds its place. docs/weights.md lists what each import should reproduce.
"""

from absl import flags

import cli
import parallel
from weights import importing, sources


def main() -> str | None:
  importing.import_weights(FLAGS.source, FLAGS.file, FLAGS.workdir, parallel.announce)
  return None


if __name__ == "__main__":
  flags.DEFINE_string("source", None, f"the published network: {sources.FORMAT}", required=True)
  flags.DEFINE_string("file", None, "the weights: .pth, .safetensors or .caffemodel", required=True)
  flags.DEFINE_string("workdir", None, "a new folder for the imported run", required=True)
  FLAGS = flags.FLAGS
  cli.run(main)
