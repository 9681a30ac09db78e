#!/usr/bin/env python
"""python run.py -m atsuko -d sims   (see `python run.py --help` and `python run.py list`)."""
import sys

from mmsa_atsuko.cli import main

if __name__ == "__main__":
    sys.exit(main())
