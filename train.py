"""Stage 2: train and evaluate the fusion model. `python train.py --help` lists the options."""

import sys

from emofusion.errors import run_main
from emofusion.training import main


if __name__ == "__main__":
    sys.exit(run_main("train.py", main))
