"""`python -m pipelines.cli`: the `ev-ingest` command."""

import sys

from pipelines.cli.main import main

sys.exit(main())
