"""`python -m forge.cli ...`: the CLI where only the interpreter's path is known (a Ray job's entrypoint)."""

import sys

from forge.cli import app

if __name__ == "__main__":
    sys.exit(app())
