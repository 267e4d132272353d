"""``python -m neotool_common.testing.kafka``: the ``neotool-kafka`` command."""

from __future__ import annotations

import sys

from neotool_common.testing.kafka.cli import main

sys.exit(main())
