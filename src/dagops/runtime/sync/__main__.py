"""``python -m dagops.runtime.sync``: the sync agent's command line (see dagops.runtime.sync.agent)."""

import sys

from dagops.runtime.sync.agent import main

sys.exit(main())
