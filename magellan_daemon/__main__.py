"""``python -m magellan_daemon`` is the ``magellan`` command."""

import sys

from magellan_daemon.cli.main import main

sys.exit(main())
