"""`python -m univg` is the `univg` command."""

import sys

from univg.cli.main import main

sys.exit(main())
