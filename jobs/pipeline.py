"""`ray job submit --working-dir . -- python jobs/pipeline.py -c forge.yaml`: validate + train + gate."""

import sys

from forge.cli import app

if __name__ == "__main__":
    sys.exit(app(["run", *sys.argv[1:]]))
