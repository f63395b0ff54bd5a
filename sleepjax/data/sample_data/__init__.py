"""Real sample recordings shipped with the package (README.md here gives source and licence)."""

from __future__ import annotations

import pathlib

_HERE = pathlib.Path(__file__).resolve().parent


def sc4001_excerpt() -> tuple[pathlib.Path, pathlib.Path]:
  """The real Sleep-EDF SC4001E0 excerpt: (PSG EDF path, EDF+ hypnogram path).

  The PSG holds the first 300 s of the night (3 channels at 100 Hz, 4 at 1 Hz; all Wake); the
  hypnogram is the night's full expert scoring (R&K). Source: PhysioNet Sleep-EDF Expanded 1.0.0
  (Kemp et al. 2000), ODC-By 1.0.
  """
  return _HERE / "SC4001E0-PSG-excerpt.edf", _HERE / "SC4001EC-Hypnogram.edf"
