"""``python -m dagops.sync``: the sync agent's command line (see dagops.sync.agent)."""

import sys

from dagops.sync.agent import main

sys.exit(main())
