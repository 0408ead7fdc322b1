"""The general NASNet that ships inside the package (``nasnet_jax.pretrained()``).

A NASNet of 2 stages x 4 blocks x 40 features (440,603 parameters; receptive-field
radius 31 px, against the demo's 18), trained on the built-in synthetic rain as the demo
is (fresh rain of all three types every step, rescaled and recoloured crops, flips and
rotations after the rain), in three stages run one after the other in the same workdir.
Each stage resumes the previous one's last checkpoint and raises the share of rain-free
pairs, so that the network learns to leave a photo without rain alone:

  python train.py --config=configs/general.py:1 --workdir=workdirs/general --cpu_devices=2
  python train.py --config=configs/general.py:2 --workdir=workdirs/general --cpu_devices=2
  python train.py --config=configs/general.py:3 --workdir=workdirs/general --cpu_devices=2

====  =============  ===================  ================================================
stage steps          rain-free pairs      learning rate
====  =============  ===================  ================================================
1     0 -> 4,000     40 %                 1e-3 after 100 warmup steps, cosine to 0 at 4,000
2     4,000 -> 5,000 60 %                 the same cosine stretched to 5,000 (1e-4 -> 0)
3     5,000 -> 6,000 75 %                 stretched to 6,000 (7e-5 -> 0)
====  =============  ===================  ================================================

A killed stage resumes with its own command. Stage 1 alone returned clean photos 2-4
grey levels darker (a small local network cannot tell light mist from no mist, and
hedges); ``docs/pretrained.md`` has the scores of every stage and how the model was
exported.
"""

from configs import synthetic

# stage -> (last step, fraction of rain-free pairs)
STAGES = {"1": (4000, 0.4), "2": (5000, 0.6), "3": (6000, 0.75)}
VARIANTS = tuple(STAGES)


def get_config(stage: str = "1"):
  if str(stage) not in STAGES:
    raise ValueError(
      f"configs/general.py:{stage}: the stages are {sorted(STAGES)}; run "
      "configs/general.py:1, then :2, then :3 in the same workdir"
    )
  total_steps, clean_fraction = STAGES[str(stage)]
  config = synthetic.get_config()
  config.model.stages = 2
  config.model.blocks = 4
  config.model.features = 40
  config.data.clean_fraction = clean_fraction
  config.data.scale_range = (0.5, 2.0)
  config.batch_size = 4
  config.total_steps = total_steps
  config.learning_rate = 1e-3
  config.warmup_steps = 100
  config.log_every_steps = 100
  config.eval_every_steps = 1000
  config.checkpoint_every_steps = 250
  config.keep_checkpoints = 2
  config.eval.max_images = 8
  return config
