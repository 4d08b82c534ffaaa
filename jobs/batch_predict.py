"""`ray job submit ... -- python jobs/batch_predict.py -c forge.yaml --input DIR --output DIR`."""

import sys

from forge.cli import app

if __name__ == "__main__":
    sys.exit(app(["predict", *sys.argv[1:]]))
