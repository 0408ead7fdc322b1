"""The paper's ablations on SPA-Data (Tables 7 and 9): lr 1e-4 for 200k steps.

  python train.py --config=configs/ablations/spa_data.py:plainnet --workdir=DIR --config.data.manual_dir=/data/spa

The part after ``:`` picks the network (paper's PSNR / SSIM on SPA-Data):

* ``nasnet``    -- NASNet itself, the reference row (41.14 dB / 0.9843);
* ``plainnet``  -- every neuron attention removed (Table 7: 40.85 / 0.9841);
* ``senet``     -- each neuron attention replaced by squeeze-and-excitation with reduction
  16, which the paper does not state (Table 7: 40.93 / 0.9838);
* ``directnet`` -- no stage-level concatenation and fusion (Table 9: 40.95 / 0.9840).
"""

from configs import spa_real

VARIANTS = {
  "nasnet": {},
  "plainnet": {"attention": "none"},
  "senet": {"attention": "se"},
  "directnet": {"fuse_stages": False},
}


def get_config(variant: str = "nasnet"):
  if variant not in VARIANTS:
    raise ValueError(
      f"configs/ablations/spa_data.py:{variant}: unknown ablation; use one "
      f"of {', '.join(VARIANTS)} (e.g. configs/ablations/spa_data.py:senet)"
    )
  config = spa_real.get_config()
  config.learning_rate = 1e-4
  config.total_steps = 200_000
  for field, value in VARIANTS[variant].items():
    config.model[field] = value
  return config
