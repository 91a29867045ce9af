"""Command-line tools: python -m jaxpr_gan.tools.<name> (edit, export, convert, judge, bench,
bench_fid, race)."""

import os

# The repository's root: default paths of files the tools write or read (docs/, configs/), so
# that they run from any directory.
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
