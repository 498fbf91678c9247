"""Stage 2: train and evaluate the fusion model. `python train.py --help` lists the options."""

import sys

from emofusion.training import main


if __name__ == "__main__":
    sys.exit(main())
