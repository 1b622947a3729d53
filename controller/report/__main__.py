"""``python -m controller.report SWEEP_URL ...``: the report without the rest of the CLI."""

import sys

from controller.report.command import main

sys.exit(main())
