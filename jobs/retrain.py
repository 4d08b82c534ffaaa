"""`ray job submit ... -- python jobs/retrain.py -c forge.yaml [--if-drift] [--reason schedule]`."""

import sys

from forge.cli import app

if __name__ == "__main__":
    sys.exit(app(["retrain", *sys.argv[1:]]))
