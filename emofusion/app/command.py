"""`emofusion app`: the pipeline as a web page (Gradio), on this machine or exported as a Hugging Face Space.

    emofusion app [--model DIR_OR_HUB_ID] [--host 127.0.0.1] [--port N] [--share]
    emofusion app --export-space DIR --model HUB_ID

Without --model, the page runs `emofusion demo`'s fusion model, trained first when absent (about a
minute; kept under --demo-dir), and says on every visit that it was trained on synthetic data.
Served on 127.0.0.1 unless --host says otherwise, with no share link unless --share, and no usage
statistics. Needs the app extra: pip install -e ".[app]".
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass, field

from emofusion.dataclass_args import DataclassArgumentParser
from emofusion.errors import UsageError


logger = logging.getLogger(__name__)


@dataclass
class AppArguments:
    """Options of `emofusion app`."""

    model: str | None = field(
        default=None,
        metadata={
            "help": "A trained emofusion checkpoint: a folder or a Hub model id. Default: the demo's model (trained "
            "on synthetic data; the page says so)."
        },
    )
    revision: str | None = field(default=None, metadata={"help": "The Hub revision of --model."})
    host: str = field(
        default="127.0.0.1",
        metadata={"help": "Address to serve on. The default, loopback, is reachable from this machine only."},
    )
    port: int | None = field(default=None, metadata={"help": "Port to serve on (default: gradio's, 7860 or next)."})
    share: bool = field(default=False, metadata={"help": "Ask gradio for a public share link (off by default)."})
    device: str | None = field(default=None, metadata={"help": "e.g. cpu, cuda:0 (default: a GPU if any, else CPU)."})
    detector: str | None = field(
        default=None,
        metadata={"help": "Object-detection model (id or folder) that finds people; default hustvl/yolos-tiny."},
    )
    demo_dir: str | None = field(
        default=None,
        metadata={"help": "Where the demo model is kept (default $HF_HOME/emofusion/app-demo-model)."},
    )
    export_space: str | None = field(
        default=None,
        metadata={
            "help": "Write a Hugging Face Space folder (app.py, requirements.txt, README.md, the code) running this "
            "app against --model, a Hub model id, to this folder instead of serving."
        },
    )


def _missing_gradio() -> UsageError:
    return UsageError('emofusion app needs gradio: pip install -e ".[app]" (or pip install "gradio>=6,<7").')


def main(argv: list[str] | None = None) -> int:
    parser = DataclassArgumentParser(AppArguments, prog="emofusion app", description=__doc__.splitlines()[0])
    (args,) = parser.parse_args_into_dataclasses(args=argv)
    logging.basicConfig(format="%(message)s", level=logging.WARNING, stream=sys.stderr)

    if args.export_space:
        from .space import export_space

        if not args.model:
            raise UsageError("--export-space needs --model HUB_ID: the model the Space downloads and runs.")
        folder = export_space(args.export_space, args.model, revision=args.revision)
        upload = f"hf upload --repo-type space USER/NAME {folder}"
        sys.stdout.write(f"Space written to {folder}: try it with `python app.py` there, upload it with `{upload}`.\n")
        return 0

    if args.port is not None and not 0 < args.port < 65536:
        raise UsageError(f"--port {args.port}: expected a port number from 1 to 65535.")
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    try:
        import gradio  # noqa: F401
    except ImportError:
        raise _missing_gradio() from None

    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()  # the app's own progress (the demo model's training) still shows
    notice = None
    model = args.model
    if model is None:
        from .demo_model import DEMO_NOTICE, ensure_demo_model, has_demo_model

        if args.demo_dir is None or not has_demo_model(args.demo_dir):
            import datasets  # training it: the demo's own progress bar only

            datasets.logging.set_verbosity_error()
            datasets.disable_progress_bars()
        model = str(ensure_demo_model(args.demo_dir))
        notice = DEMO_NOTICE
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        logger.warning(f"Serving on {args.host}: anyone who can reach this machine there can use the app.")

    from .page import build_app, launch_app

    app = build_app(model, revision=args.revision, device=args.device, detector=args.detector, notice=notice)
    launch_app(app, host=args.host, port=args.port, share=args.share)
    return 0


if __name__ == "__main__":
    sys.exit(main())
