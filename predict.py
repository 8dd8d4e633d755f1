"""Classifies images with a run, trained or imported (import_weights.py).

  .venv/bin/python predict.py --workdir=DIR [--top=5] [--ten_crop] IMAGE [IMAGE ...]
  .venv/bin/python predict.py --workdir=DIR --images=FILE.npy [--save_logits=OUT.npy]

Reads DIR/config.json and DIR's newest checkpoint. Image files (JPEG, PNG, …) go through the
run's evaluation preprocessing: resize and centre crop, or with --ten_crop the four corners,
the centre and their mirrors, whose softmax outputs are averaged. A .npy of uint8 [N, H, W, C]
images already at the network's input size gets the normalisation only. Prints each image's
top classes with their names and probabilities; --save_logits writes the scores [N, classes]:
the logits, or with --ten_crop the log of the averaged softmax outputs. The work is done by
prediction.py.
"""

import pathlib

import numpy as np
from absl import flags

import cli
import parallel
import prediction
from models import conv


def main(arguments: list[str]) -> str:
  if FLAGS.top < 1:
    raise ValueError(f"--top {FLAGS.top} must be at least 1")
  if bool(arguments) == bool(FLAGS.images):
    raise ValueError("give image files, or --images=FILE.npy, not both and not neither")
  if FLAGS.images and FLAGS.ten_crop:
    raise ValueError("--ten_crop needs image files: a .npy's images are already at the crop size")
  paths = [pathlib.Path(a) for a in ([FLAGS.images] if FLAGS.images else arguments)]
  missing = [str(p) for p in paths if not p.is_file()]
  if missing:
    raise ValueError(f"no such file: {', '.join(missing)}")
  if FLAGS.save_logits and not pathlib.Path(FLAGS.save_logits).parent.is_dir():
    raise ValueError(f"--save_logits {FLAGS.save_logits}: its folder does not exist")
  classifier = prediction.load(FLAGS.config, FLAGS.workdir, parallel.announce)
  if FLAGS.images:
    images = prediction.read_npy(paths[0], classifier)
    labels = [f"{paths[0]}[{i}]" for i in range(len(images))]
  else:
    images = np.stack([prediction.read_image(path, classifier) for path in paths])
    labels = [str(path) for path in paths]
  # The run's convolution routes where it recorded them (models/conv.py); read, never written.
  with conv.RouteBook(pathlib.Path(FLAGS.workdir) / conv.ROUTES_FILE, parallel.announce, False):
    scores = prediction.class_scores(
      classifier, images, FLAGS.ten_crop, already_cropped=bool(FLAGS.images)
    )
  if FLAGS.save_logits:
    np.save(FLAGS.save_logits, scores.astype(np.float32))
  probabilities = np.exp(scores - scores.max(axis=1, keepdims=True))
  probabilities /= probabilities.sum(axis=1, keepdims=True)
  top = min(FLAGS.top, len(classifier.class_names))
  return prediction.top_lines(classifier.class_names, probabilities, labels, top)


if __name__ == "__main__":
  cli.define_workdir_and_its_config("a run's folder, trained or imported")
  flags.DEFINE_integer("top", 5, "classes shown per image")
  flags.DEFINE_bool("ten_crop", False, "average the ten crops' softmax outputs")
  flags.DEFINE_string("images", None, "a .npy of uint8 [N, H, W, C] images at the input size")
  flags.DEFINE_string("save_logits", None, "write the class scores [N, classes] here (.npy)")
  FLAGS = flags.FLAGS
  cli.run(main, takes_arguments=True)
