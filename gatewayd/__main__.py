"""`python -m gatewayd`: the same as the `gatewayd` console script."""

import sys

from gatewayd.cli.main import main

sys.exit(main())
