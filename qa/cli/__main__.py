"""`python -m qa.cli ...` runs the `dataset-qa` command."""

import sys

from qa.cli import main

sys.exit(main())
