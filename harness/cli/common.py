"""What every subcommand shares: exit statuses, the usage error, JSON output. A leaf: it
imports no command and nothing of the harness."""
from __future__ import annotations

import json
import sys

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """Bad input from the user: reported in one line, exit status 2."""


def print_json(obj) -> None:
    json.dump(obj, sys.stdout, indent=2)
    sys.stdout.write("\n")
