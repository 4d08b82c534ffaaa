"""`ray job submit ... -- python jobs/train.py -c forge.yaml`: train on the latest validated data version."""

import sys

from forge.cli import app

if __name__ == "__main__":
    sys.exit(app(["train", *sys.argv[1:]]))
