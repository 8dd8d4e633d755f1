"""The model-neutral base of every experiment: each config file names its network with
`models.set_model` (which adds that family's fields) and changes a few lines of this.

Every field is documented here; `--config.FIELD=VALUE` overrides any of them.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()

  config.model = ml_collections.ConfigDict()
  config.model.name = ""  # a registered network: models.set_model(config, NAME)
  config.model.activation = ""  # "" = the network's own; relu, tanh, sigmoid, leaky_relu, swish
  config.model.kernel_init = "he"  # he, glorot, gaussian, lecun_uniform
  config.model.norm = "default"  # default (the paper's), lrn, batch, none
  config.model.remove = ""  # layers to remove, e.g. "f6" or "fc7,conv4"
  config.model.widths = ""  # widths to change, e.g. "f6=120" or "fc6=2048,fc7=2048"
  # Batch norm (where model.norm gives it): Flax's momentum (PyTorch's 0.1 is 0.9 here) and ε.
  config.model.batch_norm_momentum = 0.9
  config.model.batch_norm_epsilon = 1e-5
  config.model.dtype = "float32"  # compute dtype: float32 or bfloat16
  # auto: on the CPU, convolutions whose passes use the formulation measured fastest per layer
  # shape (models/conv.py); XLA's own elsewhere. Or xla, cpu.
  config.model.conv_impl = "auto"

  config.dataset = ml_collections.ConfigDict()
  config.dataset.name = "fashion_mnist"
  config.dataset.data_dir = ""  # "" = $TFDS_DATA_DIR, else <repo>/data/tfds
  config.dataset.train_split = "train"
  config.dataset.eval_split = "test"
  config.dataset.classes = ""  # "": all; else the classes kept, relabelled 0…k−1, e.g. "0-4"
  # Host preprocessing to one stored uint8 shape (Krizhevsky et al. 2012, §2): resize, crop, pad.
  config.dataset.resize = 0  # 0: keep; else the shorter side (or both, resize_mode=warp)
  config.dataset.resize_mode = "shorter_side"
  config.dataset.center_crop = 0  # 0: none; else the central square kept, e.g. 256
  config.dataset.pad = 0  # pixels of zeros added on every side
  config.dataset.crop_size = 0  # the square crop the network sees; 0: the stored image
  # standardize (− mean, ÷ std), mean (− mean only, as AlexNet), *_per_pixel, none
  config.dataset.normalization = "standardize"
  config.dataset.color_stats = (
    ""  # "": computed (in-memory data) / the tool's file; "imagenet"; a path
  )
  # The input convention of published weights (import_weights.py sets these; docs/weights.md):
  # conv1's channel order, the pixel units, and a fixed per-channel mean and std in that order
  # and those units, used instead of the colour statistics' (e.g. Caffe: bgr, 255, (104, 117, 123)).
  config.dataset.channel_order = "rgb"  # rgb or bgr
  config.dataset.pixel_range = 1.0  # 1.0: pixels in [0, 1]; 255.0: in 0–255
  config.dataset.mean = ()
  config.dataset.std = ()
  config.dataset.num_workers = 0  # host decode threads; 0: one per core
  config.dataset.cache_gb = 4.0  # splits up to this size are held in memory

  # dataset.name=synthetic: deterministic random images, for smoke runs and benchmarks.
  config.dataset.synthetic = ml_collections.ConfigDict()
  config.dataset.synthetic.image_size = 256
  config.dataset.synthetic.channels = 3
  config.dataset.synthetic.num_classes = 1000
  config.dataset.synthetic.train_examples = 2048
  config.dataset.synthetic.eval_examples = 500
  config.dataset.synthetic.seed = 0

  # Training augmentation on the device, each switchable (Krizhevsky et al. 2012 §4.1).
  config.augment = ml_collections.ConfigDict()
  config.augment.random_crop = False  # random crop_size crops (else the centre crop)
  config.augment.flip = False  # horizontal reflections
  config.augment.pca_lighting = 0.0  # σ of the PCA colour shift; 0: off (AlexNet: 0.1)

  config.eval = ml_collections.ConfigDict()
  config.eval.ten_crop = False  # also the 10-crop protocol (corners, centre, mirrored)

  config.optimizer = ml_collections.ConfigDict()
  config.optimizer.learning_rate = 0.05  # peak, for batch_size 128
  config.optimizer.momentum = 0.9
  config.optimizer.nesterov = False
  config.optimizer.weight_decay = 5e-4  # added to the gradient, as Krizhevsky et al. 2012 §5
  # Fine-tuning (docs/finetuning.md): layer/parameter patterns, e.g. frozen="c1,c3", lr_multipliers=
  # "output=0.1,*=0.01" (first match wins; others ×1); linear_probe trains the head alone.
  config.optimizer.frozen = ""
  config.optimizer.lr_multipliers = ""
  config.optimizer.linear_probe = False

  config.schedule = ml_collections.ConfigDict()
  config.schedule.name = "cosine"  # constant, cosine, step, plateau
  config.schedule.warmup_epochs = 0.5
  config.schedule.step_epochs = (6, 9)  # "step": multiply by step_factor at these epochs
  config.schedule.step_factor = 0.1  # "step" and "plateau": the factor of each division
  # "plateau": multiply by step_factor when the eval top-1 error has not improved by more than
  # plateau_threshold points for plateau_patience evaluations (the AlexNet/VGG/ResNet recipe).
  config.schedule.plateau_patience = 2
  config.schedule.plateau_threshold = 0.1

  config.batch_size = 128
  config.eval_batch_size = 1000
  config.num_epochs = 12
  config.num_train_steps = -1  # -1: derived from num_epochs
  config.eval_every_steps = 1875  # every 4 epochs at batch 128
  config.checkpoint_every_steps = 1875
  config.keep_checkpoints = 3
  config.log_every_steps = 100
  config.seed = 0
  config.init_from = ""  # a workdir: start from its newest checkpoint (new head re-initialised)
  config.init_reset = ""  # with init_from: layers to re-initialise anyway, e.g. "output"

  # Data parallelism: the global batch is split across the devices (jax.pmap). On CPU the host
  # is split into $CONVZOO_CPU_DEVICES devices (default: one per core up to 8;
  # benchmarks/devices.py).
  config.num_devices = 0  # 0: every local device; else the first N
  config.distributed = ml_collections.ConfigDict()
  config.distributed.enabled = False  # jax.distributed.initialize (or $CONVZOO_DISTRIBUTED=1)
  config.distributed.coordinator_address = ""  # "": from the cluster environment
  config.distributed.num_processes = 0  # 0: from the cluster environment
  config.distributed.process_id = -1  # -1: from the cluster environment

  # visualize.py (docs/visualization.md): what it draws of a trained run, each technique's settings.
  config.visualize = ml_collections.ConfigDict()
  config.visualize.only = ""  # techniques, e.g. "occlusion,saliency"; "": all (visualization/)
  config.visualize.images = 8  # eval images the per-image maps are drawn for
  config.visualize.layer = ""  # for patches, deconvnet units, Grad-CAM; "": last spatial one
  config.visualize.units = 8  # the layer's first N channels get top-k patches
  config.visualize.unit_ids = ""  # or these channels, e.g. "3,17,40" (also deconvnet's unit)
  config.visualize.patch_layers = ""  # layers searched for patches, e.g. "c3,s4"; "": layer
  config.visualize.classes = ""  # class ids or names for class models, e.g. "0,Bag"; "": all
  config.visualize.top_k = 9  # patches per unit (Zeiler & Fergus 2014, Fig. 2: 9)
  config.visualize.patch_images = 0  # training images searched for patches; 0: all
  config.visualize.batch = 256  # images (or occluded copies) per forward pass
  config.visualize.occlusion_patch = 8  # side of the grey square, in input pixels
  config.visualize.occlusion_stride = 2
  config.visualize.tsne_images = 2000  # eval images embedded by t-SNE (scikit-learn)
  config.visualize.tsne_perplexity = 30.0
  config.visualize.class_model_steps = 200  # gradient ascent from zeros (Simonyan et al. 2014)
  config.visualize.class_model_lr = 1.0
  config.visualize.class_model_l2 = 0.01  # λ of −λ‖I‖²
  config.visualize.class_model_jitter = 2  # random shift, pixels (Yosinski et al. 2015); 0: off
  config.visualize.class_model_blur_every = 4  # Gaussian blur every N steps; 0: off
  config.visualize.invert_layers = ""  # codes to invert; "": every fourth layer and the last
  config.visualize.invert_steps = 300  # Adam steps (Mahendran & Vedaldi 2015)
  config.visualize.invert_tv = 1e-3  # λ of the total-variation prior
  config.visualize.ig_steps = 64  # integrated gradients: trapezoid intervals from a black image
  config.visualize.smooth_grad_samples = 32
  config.visualize.smooth_grad_noise = 0.15  # σ as a fraction of each image's value range
  config.visualize.seed = 0
  return config
