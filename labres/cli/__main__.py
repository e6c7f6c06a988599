"""`python -m labres.cli`: the same as the `labres` command."""
import sys

from . import main

sys.exit(main())
