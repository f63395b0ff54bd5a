"""Every config variant builds, and the fields users override from the command line can be overridden."""

import pytest

from configs import pretrain
from configs import sleepmg

PRETRAIN_VARIANTS = (None, "tiny", "dreams", "sleep_edf", "clinical", "transfer", "transfer_paper")


@pytest.mark.parametrize("variant", PRETRAIN_VARIANTS)
def test_pretrain_variants(variant):
  c = pretrain.get_config(variant)
  assert c.task == "pretrain"
  # A None-valued plain field cannot be overridden by --config.x=...; placeholders keep a type.
  for field in ("data_dir", "manual_dir"):
    assert c.data.get_ref(field).get_type() is str, field
  from sleepjax.train import pretrain as trainer
  cfg = trainer.encoder_config(c)
  assert cfg.embed_dim % cfg.num_heads == 0
  # Windows hold a whole number of patches.
  assert (c.data.window_epochs * 30 * cfg.sfreq) % cfg.patch_size == 0
  if variant and variant.startswith("transfer"):
    assert cfg.patch_size == cfg.sfreq  # 1-s patches: 4-s wake windows hold 4 tokens.


def test_sleepmg_paths_are_overridable():
  c = sleepmg.get_config("tiny")
  for field in ("data_dir", "manual_dir"):
    assert c.data.get_ref(field).get_type() is str, field


def test_unknown_pretrain_variant():
  with pytest.raises(ValueError, match="unknown"):
    pretrain.get_config("nope")
