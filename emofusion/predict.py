"""`emofusion predict`: the emotions of the person(s) in your own photo, as JSON.

    emofusion predict photo.jpg --model path/or/hub-id --bbox 40,30,200,380 --description "..."
    emofusion predict photo.jpg --model path/or/hub-id --detect --save-annotated annotated.png

Several `--bbox` (each with its own `--description`, in the same order) classify several people.
Without a description, the model's recorded VLLM writes one (see the model's config). Without a
box, `--detect` finds every person with an object-detection model; otherwise the whole picture
is the subject.
"""

from __future__ import annotations

import argparse
import json
import sys


def _box(text: str) -> list[float]:
    parts = text.split(",")
    try:
        box = [float(p) for p in parts]
    except ValueError:
        box = []
    if len(box) != 4:
        raise argparse.ArgumentTypeError(f"expected x1,y1,x2,y2 (four pixel numbers, comma separated), got {text!r}")
    return box


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="emofusion predict", description="Recognise the emotion of the person(s) in a photo, in context."
    )
    parser.add_argument("image", help="path or URL of the photo")
    parser.add_argument("--model", required=True, help="a trained emofusion checkpoint: a folder or a Hub model id")
    parser.add_argument("--revision", default=None, help="the Hub revision of --model")
    parser.add_argument(
        "--bbox", type=_box, action="append", default=None, metavar="X1,Y1,X2,Y2",
        help="a subject's box in pixels; repeat for several people",
    )  # fmt: skip
    parser.add_argument(
        "--description", action="append", default=None, metavar="TEXT",
        help="the subject's context description (one per --bbox, in order); generated when left out",
    )  # fmt: skip
    parser.add_argument("--detect", action="store_true", help="find every person with an object detector")
    parser.add_argument("--detector", default=None, help="object-detection model id or folder (hustvl/yolos-tiny)")
    parser.add_argument("--person-label", default="person", help="the detector's class name for people")
    parser.add_argument("--detection-threshold", type=float, default=0.5, help="detector score threshold")
    parser.add_argument("--save-annotated", default=None, metavar="OUT.png", help="write the annotated photo")
    parser.add_argument("--top-k", type=int, default=3, help="emotions written per person on the annotated photo")
    parser.add_argument("--device", default=None, help="e.g. cpu, cuda:0 (default: the first GPU, else CPU)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.bbox and args.detect:
        sys.stderr.write("emofusion predict: --detect finds the boxes itself; leave out --bbox (or --detect).\n")
        return 2
    if args.description and args.bbox and len(args.description) != len(args.bbox):
        sys.stderr.write(
            f"emofusion predict: {len(args.bbox)} --bbox but {len(args.description)} --description: "
            "give one description per box, in the same order.\n"
        )
        return 2

    # Heavy imports only once the arguments are known to be fine.
    from transformers import pipeline

    from modeling_emofusion import EmotionInContextPipeline

    from .annotate import draw_predictions

    device = args.device if args.device is not None else (0 if _has_gpu() else -1)
    try:
        # The installed pipeline code is used (pipeline_class), so a local checkpoint needs no remote code.
        pipe = pipeline(
            "emotion-in-context",
            model=args.model,
            revision=args.revision,
            pipeline_class=EmotionInContextPipeline,
            device=device,
        )
        bbox = None
        if args.bbox:
            bbox = args.bbox[0] if len(args.bbox) == 1 else args.bbox
        description = None
        if args.description:
            description = args.description[0] if len(args.description) == 1 else args.description
        subjects = pipe(
            args.image,
            bbox=bbox,
            description=description,
            detect=args.detect,
            detector=args.detector,
            person_label=args.person_label,
            detection_threshold=args.detection_threshold,
        )
        if args.save_annotated:
            from modeling_emofusion.pipeline_emofusion import load_picture

            draw_predictions(load_picture(args.image), subjects, top_k=args.top_k).save(args.save_annotated)
    except (ValueError, FileNotFoundError, OSError) as error:
        sys.stderr.write(f"emofusion predict: error: {error}\n")
        return 1
    report = {"image": args.image, "model": args.model, "subjects": subjects}
    if args.save_annotated:
        report["annotated"] = args.save_annotated
    sys.stdout.write(json.dumps(report, indent=2) + "\n")
    return 0


def _has_gpu() -> bool:
    import torch

    return torch.cuda.is_available()


if __name__ == "__main__":
    sys.exit(main())
