"""Every config variant validates; bad configs are rejected in one line before any data is built."""

import os
import pathlib
import subprocess
import sys

import pytest

from configs import pretrain
from configs import sleepmg
from configs import transfer
from sleepjax.train import config as config_lib
from sleepjax.train import finetune as finetune_trainer
from sleepjax.train import pretrain as pretrain_trainer
from sleepjax.train import sleepmg as sleepmg_trainer

REPO = pathlib.Path(__file__).resolve().parents[1]
PRETRAIN_VARIANTS = (None, *pretrain.VARIANTS[1:])
CONFIGS = ([(pretrain, pretrain_trainer, v) for v in PRETRAIN_VARIANTS]
           + [(sleepmg, sleepmg_trainer, v) for v in (None, "tiny", "tiny,toy", "full", "large", "naivemg")]
           + [(transfer, finetune_trainer, v) for v in transfer.VARIANTS])


@pytest.mark.parametrize("module,trainer,variant", CONFIGS,
                         ids=[f"{m.__name__.split('.')[-1]}:{v}" for m, _, v in CONFIGS])
def test_every_variant_validates_and_keeps_paths_overridable(module, trainer, variant):
  c = module.get_config(variant)
  trainer.validate_config(c)
  # A None-valued plain field cannot be overridden by --config.x=...; placeholders keep a type.
  for field in ("data_dir", "manual_dir"):
    assert c.data.get_ref(field).get_type() is str, field


@pytest.mark.parametrize("variant", PRETRAIN_VARIANTS)
def test_pretrain_windows_hold_whole_patches(variant):
  c = pretrain.get_config(variant)
  cfg = config_lib.encoder_config(c.model)
  assert cfg.embed_dim % cfg.num_heads == 0 and cfg.embed_dim % cfg.pooling_heads == 0
  assert (c.data.window_epochs * 30 * cfg.sfreq) % cfg.patch_size == 0
  if variant and variant.startswith("transfer"):
    assert cfg.patch_size == cfg.sfreq  # 1-s patches: 4-s wake windows hold 4 tokens.


@pytest.mark.parametrize("module,name", [(pretrain, "configs/pretrain.py"), (sleepmg, "configs/sleepmg.py"),
                                         (transfer, "configs/transfer.py")])
def test_unknown_variant_lists_the_valid_ones(module, name):
  with pytest.raises(config_lib.ConfigError, match=f"unknown {name} variant 'nope'; variants: .*tiny"):
    module.get_config("nope")


def test_misspelled_fields_and_unknown_names_are_rejected_with_the_field():
  c = pretrain.get_config("tiny")
  c.unlock()
  c.stpes = 3
  with pytest.raises(config_lib.ConfigError, match="unknown config field 'stpes'.*did you mean 'steps'"):
    pretrain_trainer.validate_config(c)
  c = pretrain.get_config("tiny")
  c.optimizer.name = "adamx"
  with pytest.raises(config_lib.ConfigError, match="optimizer.name"):
    pretrain_trainer.validate_config(c)
  c = sleepmg.get_config("tiny")
  c.methods = ("sleepmg", "attnsleep")
  with pytest.raises(config_lib.ConfigError, match="methods: unknown \\['attnsleep'\\]"):
    sleepmg_trainer.validate_config(c)
  c = transfer.get_config("tiny")
  c.strategies = ("scratch", "probe")
  with pytest.raises(config_lib.ConfigError, match="strategies"):
    finetune_trainer.validate_config(c)
  for field, value in (("steps", -1), ("log_every", 0), ("checkpoint_every", 0), ("keep_checkpoints", 0)):
    c = pretrain.get_config("tiny")
    c[field] = value
    with pytest.raises(config_lib.ConfigError, match=f"config.{field} must be an integer >= 1"):
      pretrain_trainer.validate_config(c)
  c = pretrain.get_config("tiny")
  c.seeds = (0, 1)
  with pytest.raises(config_lib.ConfigError, match="one seed per workdir"):
    pretrain_trainer.validate_config(c)


@pytest.mark.parametrize("args,message", [
    (["--config=configs/pretrain.py:tiny", "--config.stepz=3"],
     "unknown config field --config.stepz; did you mean 'steps'?"),
    (["--config=configs/pretrain.py:tinyy"], "unknown configs/pretrain.py variant 'tinyy'; variants:"),
    (["--config=configs/pretrain.py:tiny", "--config.optimizer.name=adamx"], "optimizer.name must be one of"),
    (["--config=configs/pretrain.py:tiny", "--config.log_every=0"], "config.log_every must be an integer >= 1"),
    (["--config=configs/sleepmg.py:tiny", "--config.methods=('sleepmg','attnsleep')"], "unknown ['attnsleep']"),
    (["--config=configs/nope.py"], "config file 'configs/nope.py' not found"),
])
def test_cli_rejects_a_bad_config_in_one_line_before_any_work(args, message, tmp_path):
  env = dict(os.environ, TFDS_DATA_DIR=str(tmp_path / "tfds"))
  out = subprocess.run([sys.executable, "-m", "sleepjax.main", *args, f"--workdir={tmp_path / 'w'}"], cwd=REPO,
                       env=env, capture_output=True, text=True, timeout=300)
  assert out.returncode == 2, out.stderr[-2000:]
  lines = out.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith("sleepjax: error: ") and message in lines[0], out.stderr[-2000:]
  assert not (tmp_path / "tfds").exists() and not (tmp_path / "w").exists()  # Nothing built, nothing written.
