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

A spec-driven builder takes the dataset spec (tfds_builders/psg_folder/README.md):

  python -m sleepjax.data.build tfds_builders/psg_folder --spec SPEC.json --manual_dir DIR

Errors print one line naming the file and the problem (the traceback with --verbose); a
manual_dir that does not exist is an error, never a download. --overwrite builds again.

The dataset folder is imported as a module (`tfds_builders/sleep_edf` -> `tfds_builders.sleep_edf`),
which registers its builder; sleepjax itself has no import of tfds_builders.
"""

from __future__ import annotations

import argparse
import importlib
import json
import pathlib
import sys
import traceback

from sleepjax.data import downstream_pipeline
from sleepjax.data import errors
from sleepjax.data import pipeline
from sleepjax.data import summary


def module_name(dataset: str) -> tuple[str, str]:
  """('tfds_builders.sleep_edf', 'sleep_edf') from a folder path (absolute or relative) or a module.

  A folder is named by its path from the nearest folder on sys.path (or the working directory)
  that holds it, e.g. /abs/repo/tfds_builders/sleep_edf -> tfds_builders.sleep_edf; when none
  holds it, its parent folder is put on sys.path.
  """
  path = pathlib.Path(dataset)
  if path.is_dir():
    path = path.resolve()
    roots = [pathlib.Path(p or ".").resolve() for p in [str(pathlib.Path.cwd()), *sys.path]]
    for root in roots:
      try:
        parts = path.relative_to(root).parts
      except ValueError:
        continue
      if parts:
        return ".".join(parts), parts[-1]
    # Not under any import root: import it from its parent (a package folder of its own).
    sys.path.insert(0, str(path.parents[1]))
    parts = path.relative_to(path.parents[1]).parts
    return ".".join(parts), parts[-1]
  return dataset, dataset.rsplit(".", 1)[-1]


def _error(prog: str, e: BaseException) -> str:
  return f"{prog}: error: {' '.join(str(e).split())}"


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], prog="python -m sleepjax.data.build")
  parser.add_argument("dataset", help="dataset folder (tfds_builders/sleep_edf, relative or absolute) or "
                                      "module (tfds_builders.sleep_edf)")
  parser.add_argument("--config", default=None, help="builder config, e.g. sleep_cassette (default: the first)")
  parser.add_argument("--spec", default=None,
                      help="dataset spec (JSON) of a spec-driven builder: tfds_builders/psg_folder")
  parser.add_argument("--manual_dir", default=None, help="folder with manually downloaded files")
  parser.add_argument("--data_dir", default=None, help="TFDS data dir (default: $TFDS_DATA_DIR or ~/tensorflow_datasets)")
  parser.add_argument("--overwrite", "--rebuild", dest="rebuild", action="store_true",
                      help="build again although a build exists (e.g. after the manual files changed)")
  parser.add_argument("--verbose", action="store_true", help="print the traceback of an error")
  parser.add_argument("--beam_pipeline_options", default=None,
                      help="build through Apache Beam with these comma-separated options, e.g. "
                           "direct_num_workers=2,direct_running_mode=multi_processing (docs/building.md)")
  args = parser.parse_args(argv)
  try:
    return _run(parser, args)
  except Exception as e:  # pylint: disable=broad-except
    # Bad inputs (a missing folder, no usable night, a stale build...): one line naming the file
    # and the problem; the traceback only with --verbose.
    if args.verbose:
      traceback.print_exc()
    print(_error(parser.prog, e), file=sys.stderr)
    return 1


def _run(parser, args) -> int:
  module, name = module_name(args.dataset)
  try:
    mod = importlib.import_module(module)
  except ModuleNotFoundError as e:
    parser.error(f"cannot import {module!r} for {args.dataset!r}: {e} (run from the repository root)")
  if args.beam_pipeline_options is not None:
    try:
      pipeline.beam_pipeline_options(args.beam_pipeline_options)
    except (ValueError, ImportError) as e:
      parser.error(str(e))
  if args.manual_dir is not None and not pathlib.Path(args.manual_dir).exists():
    # Never a silent fallback to a download (sleep_edf would fetch 8 GB from PhysioNet).
    raise errors.RecordingError(args.manual_dir, "manual_dir does not exist" + _expected(mod))
  config = args.config
  if args.spec is not None:
    if not hasattr(mod, "config_from_spec"):
      parser.error(f"{module} takes no --spec (only spec-driven builders: tfds_builders/psg_folder)")
    config = mod.config_from_spec(args.spec)
  elif hasattr(mod, "config_from_spec"):
    parser.error(f"{module} needs --spec SPEC.json (tfds_builders/psg_folder/README.md)")
  builder = pipeline.prepare(name, args.data_dir, config=config, manual_dir=args.manual_dir,
                             rebuild=args.rebuild, beam_pipeline_options=args.beam_pipeline_options)
  full_name = builder.info.full_name
  summaries = {split: summary.split_summary(builder.as_data_source(split=split),
                                           class_names=downstream_pipeline.class_names(builder.info))
               for split in builder.info.splits}
  print(summary.format_summary(f"{full_name} in {builder.data_dir}", summaries))
  report = builder.info.metadata.get("build_report") if builder.info.metadata else None
  if report:
    for split, rep in report.items():
      short = {k: rep[k] for k in ("n_recordings", "n_failed", "n_epochs_total", "n_kept", "dropped",
                                   "failures", "n_missing_channels", "untyped_labels") if k in rep}
      print(f"build report [{split}]: {json.dumps(short)}")
  return 0


def _expected(mod) -> str:
  """" (expected: ...)" from the builder's manual download instructions, when it has them."""
  builder_cls = getattr(mod, "Builder", None)
  text = getattr(builder_cls, "MANUAL_DOWNLOAD_INSTRUCTIONS", "") or ""
  text = " ".join(text.split())
  return f" (expected: {text})" if text else ""


if __name__ == "__main__":
  sys.exit(main())
