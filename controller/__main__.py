"""`python -m controller`: the kubohb CLI."""

import sys

from controller.cli import main

sys.exit(main())
