"""The benchmark scripts' answer to bad input: one line on stderr naming the script, exit status 2."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import NoReturn


def refuse(message: str) -> NoReturn:
    """Print ``SCRIPT: message`` on stderr (the script's name as argparse gives it) and exit with status 2."""
    print(f"{Path(sys.argv[0]).name}: {message}", file=sys.stderr)
    raise SystemExit(2)
