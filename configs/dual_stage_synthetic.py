"""Demo: a small DualStageNet on the built-in synthetic rain; trains on a 2-core CPU in
minutes.

  python train.py --config=configs/dual_stage_synthetic.py --workdir=workdirs/dual_stage_synthetic --cpu_devices=2

The data and rain rendering are configs/synthetic.py's (fresh rain every step, on
device); the network is DualStageNet at 16 channels with two blocks per stage, trained
with the Charbonnier loss on both of its outputs and AdamW.
"""

from configs import default, synthetic


def get_config():
  config = synthetic.get_config()
  config.model = default.dual_stage_model()
  config.model.update(features=16, heads=2, stage1_blocks=2, stage2_blocks=2, clusters=16)
  config.loss = "charbonnier"
  config.intermediate_loss_weight = 1.0
  config.optimizer = "adamw"
  config.weight_decay = 1e-4
  config.learning_rate = 1e-3
  config.end_learning_rate = 1e-5
  # 600 steps: training and the in-training evaluation in minutes on a 2-core CPU.
  config.total_steps = 600
  config.checkpoint_every_steps = 300
  config.eval_every_steps = 600
  return config
