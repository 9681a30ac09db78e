"""`python -m mmsa_atsuko ...` is `python run.py ...` (and the `mmsa-atsuko` console command)."""
import sys

from .cli import main

sys.exit(main())
