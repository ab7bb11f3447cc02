"""Summarize a sweep: python scripts/summarize.py <sweep dir> [--out DIR]; see normlab.report."""

import sys

from normlab.report.__main__ import main

if __name__ == "__main__":
    sys.exit(main())
