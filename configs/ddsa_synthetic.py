"""Demo: a small DDSA on the built-in synthetic rain; trains on a 2-core CPU in minutes.

  python train.py --config=configs/ddsa_synthetic.py --workdir=workdirs/ddsa_synthetic --cpu_devices=2

The data and rain rendering are configs/synthetic.py's (fresh rain every step, on device);
the network is DDSA at 16 channels over three levels, trained with its L1 loss and AdamW.
"""

from configs import default, synthetic


def get_config():
  config = synthetic.get_config()
  config.model = default.ddsa_model()
  config.model.update(features=16, blocks=(1, 2, 2), heads=(1, 2, 4), refinement_blocks=1)
  config.loss = "l1"
  config.optimizer = "adamw"
  config.weight_decay = 1e-4
  config.learning_rate = 1e-3
  config.end_learning_rate = 1e-5
  # 600 steps: training and the in-training evaluation in minutes on a 2-core CPU.
  config.total_steps = 600
  config.checkpoint_every_steps = 300
  config.eval_every_steps = 600
  return config
