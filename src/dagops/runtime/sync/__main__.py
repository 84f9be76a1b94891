"""``python -m dagops.runtime.sync``: the sync agent's command line (see dagops.runtime.sync.cli)."""

import sys

from dagops.runtime.sync.cli import main

sys.exit(main())
