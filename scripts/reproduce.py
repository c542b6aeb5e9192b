"""Reproduce the four papers into one report.

  python -m scripts.reproduce --tier=quick --workdir=runs/reproduce
  python -m scripts.reproduce --tier=quick --workdir=runs/reproduce --from_existing
  python -m scripts.reproduce ... --only=mnist_direct,fgsm --readme=README.md

Runs every job of ``fooljax.runs.reproduce.JOBS`` at the tier's settings
(``quick``: all in <= 30 min on a 2-core CPU; ``full``: the settings
BUILD_NOTES.md reports; ``paper``: the papers' budgets, for an accelerator),
each in ``WORKDIR/<job>`` (resumed, or skipped with a reason), then writes
``REPORT.md``, ``report.html`` and ``report.json`` into WORKDIR.
``--from_existing`` runs nothing and rebuilds the report from WORKDIR.
``--readme`` rewrites the README's generated headline block. Bad flags: one
line, exit status 2, nothing written. Exit status 1 if any job failed.
"""

from __future__ import annotations

import sys

from absl import flags

from fooljax.errors import FooljaxError
from fooljax.runs import report, reproduce
from fooljax.runs.cli import run_main

flags.DEFINE_string("tier", "quick", "quick, full or paper.")
flags.DEFINE_string("workdir", "runs/reproduce", "Root of the jobs' work directories.")
flags.DEFINE_bool("from_existing", False, "Run nothing; rebuild the report only.")
flags.DEFINE_list(
    "only", [], "Run only these jobs (comma list); the report covers all."
)
flags.DEFINE_string("readme", "", "README to rewrite the headline block of.")
FLAGS = flags.FLAGS


def main(argv) -> None:
    del argv
    reproduce.check_tier(FLAGS.tier)
    only = reproduce.parse_only(",".join(FLAGS.only))
    if FLAGS.readme:
        report.check_readme(FLAGS.readme)
    failed = []
    if FLAGS.from_existing:
        state = reproduce.read_state(FLAGS.workdir)
        if state is None:
            raise FooljaxError(
                f"--from_existing: {FLAGS.workdir} has no reproduce.json "
                "(run without --from_existing first)"
            )
        if state.get("tier") != FLAGS.tier:
            raise FooljaxError(
                f"--from_existing: {FLAGS.workdir} holds a '{state.get('tier')}' "
                f"tier run, not '{FLAGS.tier}'"
            )
    else:
        state = reproduce.run(FLAGS.tier, FLAGS.workdir, only)
        failed = [n for n, r in state["jobs"].items() if r.get("status") == "failed"]
    paths = report.write_report(FLAGS.workdir)
    print("report: " + ", ".join(paths))
    if FLAGS.readme:
        report.update_readme(FLAGS.readme, report.read_report_json(FLAGS.workdir))
        print(f"headline table written into {FLAGS.readme}")
    if failed:
        print(f"failed jobs: {', '.join(failed)}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    run_main(main)
