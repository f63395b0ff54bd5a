r"""Builds a dataset of tfds_builders/ from the command line, without TensorFlow.

  python -m sleepjax.data.build tfds_builders/sleep_edf --config sleep_cassette \
      --manual_dir /path/to/sleep-edf --data_dir ~/tensorflow_datasets

The same arguments as `tfds build DATASET_DIR`. TFDS 4.9.10's own `tfds` command imports TensorFlow,
Apache Beam and mlcroissant at start-up (none of which sleepjax needs); this command builds with
`sleepjax.data.pipeline.prepare` instead and prints the per-split summary (subjects, recordings,
epochs per stage) and the build report (dropped epochs by reason, failed recordings).

With --beam_pipeline_options the PSG builders build one night per Apache Beam element (the
`beam` extra), e.g. on 2 local processes:

  python -m sleepjax.data.build tfds_builders/synthetic_psg --config default \
      --beam_pipeline_options=direct_num_workers=2,direct_running_mode=multi_processing

(docs/building.md has Dataflow, Spark and Flink examples.)

The dataset folder is imported as a module (`tfds_builders/sleep_edf` -> `tfds_builders.sleep_edf`),
which registers its builder; sleepjax itself has no import of tfds_builders.
"""

from __future__ import annotations

import argparse
import importlib
import json
import pathlib
import sys

from sleepjax.data import downstream_pipeline
from sleepjax.data import errors
from sleepjax.data import pipeline
from sleepjax.data import summary


def module_name(dataset: str) -> tuple[str, str]:
  """('tfds_builders.sleep_edf', 'sleep_edf') from a folder path or a dotted module name."""
  path = pathlib.Path(dataset)
  if path.exists():
    parts = path.resolve().relative_to(pathlib.Path.cwd().resolve()).parts
    return ".".join(parts), parts[-1]
  return dataset, dataset.rsplit(".", 1)[-1]


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], prog="python -m sleepjax.data.build")
  parser.add_argument("dataset", help="dataset folder (tfds_builders/sleep_edf) or module (tfds_builders.sleep_edf)")
  parser.add_argument("--config", default=None, help="builder config, e.g. sleep_cassette (default: the first)")
  parser.add_argument("--manual_dir", default=None, help="folder with manually downloaded files")
  parser.add_argument("--data_dir", default=None, help="TFDS data dir (default: $TFDS_DATA_DIR or ~/tensorflow_datasets)")
  parser.add_argument("--rebuild", action="store_true",
                      help="build again although a build exists (e.g. after the manual files changed)")
  parser.add_argument("--beam_pipeline_options", default=None,
                      help="build through Apache Beam with these comma-separated options, e.g. "
                           "direct_num_workers=2,direct_running_mode=multi_processing (docs/building.md)")
  args = parser.parse_args(argv)

  module, name = module_name(args.dataset)
  try:
    importlib.import_module(module)
  except ModuleNotFoundError as e:
    parser.error(f"cannot import {module!r} for {args.dataset!r}: {e} (run from the repository root)")
  if args.beam_pipeline_options is not None:
    try:
      pipeline.beam_pipeline_options(args.beam_pipeline_options)
    except (ValueError, ImportError) as e:
      parser.error(str(e))
  try:
    builder = pipeline.prepare(name, args.data_dir, config=args.config, manual_dir=args.manual_dir,
                               rebuild=args.rebuild, beam_pipeline_options=args.beam_pipeline_options)
  except errors.RecordingError as e:
    # Bad inputs (no usable night, duplicates, a stale build): one line, no traceback.
    print(f"{parser.prog}: error: {' '.join(str(e).split())}", file=sys.stderr)
    return 1
  full_name = builder.info.full_name
  summaries = {split: summary.split_summary(builder.as_data_source(split=split),
                                           class_names=downstream_pipeline.class_names(builder.info))
               for split in builder.info.splits}
  print(summary.format_summary(f"{full_name} in {builder.data_dir}", summaries))
  report = builder.info.metadata.get("build_report") if builder.info.metadata else None
  if report:
    for split, rep in report.items():
      short = {k: rep[k] for k in ("n_recordings", "n_failed", "n_epochs_total", "n_kept", "dropped",
                                   "failures") if k in rep}
      print(f"build report [{split}]: {json.dumps(short)}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
