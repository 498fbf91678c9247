"""Stage 1: VLLM descriptions of every subject of a dataset split (`python caption.py --help`)."""

from emofusion.captioning import main
from emofusion.errors import run_main


if __name__ == "__main__":
    raise SystemExit(run_main("caption.py", main))
