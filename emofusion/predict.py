"""`emofusion predict`: the emotions of the person(s) in your own photo or video, as JSON.

    emofusion predict photo.jpg --model path/or/hub-id --bbox 40,30,200,380 --description "..."
    emofusion predict photo.jpg --model path/or/hub-id --detect --save-annotated annotated.png
    emofusion predict photo.jpg --model path/or/hub-id --describer llava-hf/llava-1.5-7b-hf --top-k 5 -o out.json

Several `--bbox` (each with its own `--description`, in the same order) classify several people.
Without a description, the model's recorded VLLM writes one (see the model's config), or the VLLM
`--describer` names, asked the model's recorded prompt. Without a box, `--detect` finds every
person with an object-detection model; otherwise the whole picture is the subject. The JSON
(stdout, or `-o FILE`) has one line per score; `--top-k K` keeps the K best. The installed
emofusion code runs, not the copy saved in the checkpoint (`modeling_emofusion.load_pipeline`).

A video (a path or URL ending in .mp4, .mov, .avi, .mkv, .webm, ...) gives a timeline instead:

    emofusion predict clip.mp4 --model path/or/hub-id --fps 2 --save-annotated annotated.mp4 --plot timeline.png

Its frames are decoded as a stream and sampled (`--fps`, default 2, or `--every-n-frames`); every
person is found by the detector every `--detect-every` sampled frames and followed by a tracker
(ByteTrack); with `--bbox`, each given box is held fixed through the video instead. Each track is
classified per window of the model's `num_frames` sampled frames (clip models) or per sampled
frame (image models). The JSON has per track its id, time span and windows (time, frame, box,
labels, scores, VAD); `--save-annotated` writes an H.264 mp4 with the boxes, track ids and top
emotions, `--plot` a PNG of each track's top scores over time. It needs `pip install
"emofusion[video]"`.

Pictures of any size: a large JPEG is decoded at reduced scale and every picture is downscaled to
the model's working size before the box is drawn; boxes in and out are in the photo's pixels, and
the annotated picture is written at the working size. A picture over PIL's decompression-bomb
limit is refused unless `--max-image-pixels` allows it. Failures end in one line on stderr (exit 2
for a wrong command line, 1 otherwise; `--debug` shows the traceback).
"""

from __future__ import annotations

import argparse
import json
import sys

from .errors import EmofusionError, UsageError


DEFAULT_TOP_K = 3  # emotions written per person on the annotated photo


def _box(text: str) -> list[float]:
    parts = text.split(",")
    try:
        box = [float(p) for p in parts]
    except ValueError:
        box = []
    if len(box) != 4:
        raise argparse.ArgumentTypeError(f"expected x1,y1,x2,y2 (four pixel numbers, comma separated), got {text!r}")
    return box


def _add(parser, *names: str, **kwargs) -> None:
    """An option under its dashed and its underscored spelling (`--save-annotated`, `--save_annotated`),
    as HfArgumentParser gives the other commands' options."""
    spellings = []
    for name in names:
        spellings.append(name)
        if name.startswith("--") and "-" in name[2:]:
            spellings.append("--" + name[2:].replace("-", "_"))
    parser.add_argument(*spellings, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="emofusion predict",
        description="Recognise the emotion of the person(s) in a photo, in context.",
        epilog="Every option takes both spellings: --save-annotated or --save_annotated.",
    )
    parser.add_argument("image", help="path or URL of the photo, or of a video (.mp4, .mov, .avi, .mkv, .webm, ...)")
    _add(parser, "--model", required=True, help="a trained emofusion checkpoint: a folder or a Hub model id")
    _add(parser, "--revision", default=None, help="the Hub revision of --model")
    _add(
        parser, "--bbox", type=_box, action="append", default=None, metavar="X1,Y1,X2,Y2",
        help="a subject's box in pixels; repeat for several people",
    )  # fmt: skip
    _add(
        parser, "--description", action="append", default=None, metavar="TEXT",
        help="the subject's context description (one per --bbox, in order); generated when left out",
    )  # fmt: skip
    _add(
        parser, "--describer", default=None, metavar="MODEL_ID",
        help="generate the missing descriptions with this image-text-to-text model (a Hub id or folder, e.g. "
        "llava-hf/llava-1.5-7b-hf), asked the model's recorded prompt; default: the VLLM the model records",
    )  # fmt: skip
    _add(parser, "--detect", action="store_true", help="find every person with an object detector")
    _add(parser, "--detector", default=None, help="object-detection model id or folder (hustvl/yolos-tiny)")
    _add(parser, "--person-label", default="person", help="the detector's class name for people")
    _add(parser, "--detection-threshold", type=float, default=0.5, help="detector score threshold")
    _add(parser, "-o", "--output", default=None, metavar="FILE", help="write the JSON to FILE instead of stdout")
    _add(
        parser, "--save-annotated", default=None, metavar="OUT.png",
        help="write the annotated photo (for a video: OUT.mp4, H.264 with boxes, track ids and emotions)",
    )  # fmt: skip
    _add(
        parser, "--top-k", type=int, default=None, metavar="K",
        help="the K best emotions per person, in the JSON and on the annotated photo "
        f"(default: every score in the JSON, {DEFAULT_TOP_K} on the photo)",
    )  # fmt: skip
    _add(
        parser, "--explain", default=None, metavar="OUT.png",
        help="explain each person's predicted emotions: heatmaps and shaded descriptions to OUT.png, and OUT.html "
        "(needs captum: pip install 'emofusion[explain]')",
    )  # fmt: skip
    _add(
        parser, "--fps", type=float, default=None, metavar="F",
        help="video: sampled frames per second (default 2; or --every-n-frames)",
    )  # fmt: skip
    _add(parser, "--every-n-frames", type=int, default=None, metavar="N", help="video: sample every N-th frame")
    _add(
        parser, "--detect-every", type=int, default=1, metavar="K",
        help="video: run the person detector every K sampled frames (boxes are interpolated in between)",
    )  # fmt: skip
    _add(parser, "--plot", default=None, metavar="OUT.png", help="video: write the timeline plot (scores over time)")
    _add(parser, "--device", default=None, help="e.g. cpu, cuda:0 (default: the first GPU, else CPU)")
    _add(
        parser, "--max-image-pixels", type=int, default=None, metavar="N",
        help="refuse pictures over N pixels (PIL's decompression-bomb guard; default 2 x PIL.Image.MAX_IMAGE_PIXELS, "
        "about 179 million); 0 allows any size",
    )  # fmt: skip
    return parser


def format_report(report) -> str:
    """`report` as indented JSON in which every list or object of plain values (a score entry
    `{"label": ..., "score": ...}`, a box, the labels, the VAD) is one line."""
    flat: dict[str, str] = {}

    def fold(value):
        if isinstance(value, dict):
            if value and all(not isinstance(v, (dict, list)) for v in value.values()):
                return hold(value)
            return {key: fold(v) for key, v in value.items()}
        if isinstance(value, list):
            if value and all(not isinstance(v, (dict, list)) for v in value):
                return hold(value)
            return [fold(v) for v in value]
        return value

    def hold(value) -> str:
        # A NUL in a placeholder cannot come from a description: json escapes it in the text itself.
        key = f"\0{len(flat)}\0"
        flat[json.dumps(key)] = json.dumps(value, ensure_ascii=False)
        return key

    text = json.dumps(fold(report), indent=2, ensure_ascii=False)
    for key, value in flat.items():
        text = text.replace(key, value, 1)
    return text


def check_output_file(path: str) -> None:
    """`-o` must name a file in a folder that exists (checked before any work is done)."""
    import os

    if os.path.isdir(path):
        raise UsageError(f"-o {path!r} is a folder; expected a file name such as predictions.json.")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise UsageError(f"-o {path!r}: the folder {folder} does not exist.")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if is_video(args.image):
        return predict_video(args)
    for flag, value in (("--fps", args.fps), ("--every-n-frames", args.every_n_frames), ("--plot", args.plot)):
        if value is not None:
            raise UsageError(f"{flag} is for videos; {args.image!r} is read as a photo.")
    if args.bbox and args.detect:
        raise UsageError("--detect finds the boxes itself; leave out --bbox (or --detect).")
    if args.description and args.bbox and len(args.description) != len(args.bbox):
        raise UsageError(
            f"{len(args.bbox)} --bbox but {len(args.description)} --description: "
            "give one description per box, in the same order."
        )
    if args.top_k is not None and args.top_k < 1:
        raise UsageError(f"--top-k {args.top_k}: expected a number of emotions, at least 1.")
    if args.output:
        check_output_file(args.output)
    if args.save_annotated:
        check_output_picture(args.save_annotated)
    if args.explain:
        check_explain_output(args.explain)
    if args.max_image_pixels is not None:
        allow_image_pixels(args.max_image_pixels)
    # The picture is checked (found, fetched once, a picture, not over the pixel limit) before a model loads.
    image = readable_picture(args.image)

    # Heavy imports only once the arguments are known to be fine.
    from modeling_emofusion.pipeline_emofusion import load_picture

    from .annotate import draw_predictions

    pipe, describer, detector = load_parts(args, detect=args.detect)
    bbox = None
    if args.bbox:
        bbox = args.bbox[0] if len(args.bbox) == 1 else args.bbox
    description = None
    if args.description:
        description = args.description[0] if len(args.description) == 1 else args.description
    subjects = pipe(
        image,
        bbox=bbox,
        description=description,
        detect=args.detect,
        detector=detector,
        person_label=args.person_label,
        detection_threshold=args.detection_threshold,
        describer=describer,
        **({"explain": True} if args.explain else {}),
    )
    report = {"image": args.image, "model": args.model, "subjects": subjects}
    if args.explain:
        report.update(write_explanations(args.explain, image, subjects, pipe.working_side))
    if args.save_annotated:
        # Drawn on the working picture (a 12000x12000 photo is not decoded in full for it).
        picture = load_picture(image, min_side=pipe.working_side)
        shown = [{**subject, "bbox": picture.to_working(subject["bbox"])} for subject in subjects]
        try:
            draw_predictions(picture.image, shown, top_k=args.top_k or DEFAULT_TOP_K).save(args.save_annotated)
        except (OSError, ValueError) as error:  # a folder, an unknown extension, a read-only place
            raise EmofusionError(f"--save-annotated {args.save_annotated!r}: cannot write it ({error}).") from error
        report["annotated"] = args.save_annotated
    if args.top_k is not None:
        # "labels" (above the thresholds) stays whole; "scores" keeps the K best (they are sorted).
        report["subjects"] = [{**subject, "scores": subject["scores"][: args.top_k]} for subject in subjects]
    write_report(report, args.output)
    return 0


VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv", ".flv", ".ts")


def is_video(source: str) -> bool:
    """Whether `source` (a path or URL) names a video, by its extension."""
    from urllib.parse import urlparse

    path = urlparse(source).path if source.startswith(("http://", "https://")) else source
    return path.lower().endswith(VIDEO_EXTENSIONS)


def check_video_args(args) -> None:
    """The command line of a video, checked before any work is done."""
    import os

    if args.fps is not None and args.every_n_frames is not None:
        raise UsageError("--fps and --every-n-frames both set the sampling rate: give one.")
    if args.fps is not None and not args.fps > 0:
        raise UsageError(f"--fps {args.fps}: expected a positive number of sampled frames per second.")
    for flag, value in (("--every-n-frames", args.every_n_frames), ("--detect-every", args.detect_every)):
        if value is not None and value < 1:
            raise UsageError(f"{flag} {value}: expected a whole number, at least 1.")
    if args.bbox and args.detect:
        raise UsageError("--detect finds the people itself; leave out --bbox (or --detect).")
    if args.description and len(args.description) > 1:
        raise UsageError("a video takes one --description, used for every window (or none: generated per window).")
    if args.explain:
        raise UsageError("--explain is for photos; for a video, explain a frame of it as a photo.")
    if args.top_k is not None and args.top_k < 1:
        raise UsageError(f"--top-k {args.top_k}: expected a number of emotions, at least 1.")
    for flag, path, extension in (("--save-annotated", args.save_annotated, ".mp4"), ("--plot", args.plot, ".png")):
        if path is None:
            continue
        if os.path.isdir(path) or os.path.splitext(path)[1].lower() != extension:
            raise UsageError(f"{flag} {path!r}: expected a {extension} file name for a video's output.")
        folder = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(folder):
            raise UsageError(f"{flag} {path!r}: the folder {folder} does not exist.")
    if args.output:
        check_output_file(args.output)


def load_parts(args, detect: bool):
    """The pipeline for `--model`, the describer it needs (none when descriptions are given or the model reads
    no text) and, with `detect`, the person detector: (pipe, describer, detector), with one-line Hub errors."""
    from transformers import pipeline

    from modeling_emofusion import load_pipeline
    from modeling_emofusion.pipeline_emofusion import DEFAULT_DETECTOR

    from .hub_errors import hub_errors

    device = resolve_device(args.device)
    with hub_errors(args.model, what="--model"):
        # The installed pipeline, model and processor code, not the checkpoint's saved copy: no remote code.
        pipe = load_pipeline(args.model, revision=args.revision, device=device)
    describer = None
    if pipe.model.config.modality != "vision" and not args.description:
        describer = load_describer(pipe, args)
    detector = None
    if detect:
        name = args.detector or DEFAULT_DETECTOR
        with hub_errors(name, what="--detector" if args.detector else "the default person detector"):
            detector = pipeline("object-detection", model=name, device=pipe.device)
    return pipe, describer, detector


def predict_video(args) -> int:
    """`emofusion predict VIDEO ...`: the timeline JSON, and optionally the annotated mp4 and the plot."""
    check_video_args(args)
    from modeling_emofusion.video_reading import VideoReader

    # The video is checked (found, a video, decodable container) before a model loads.
    VideoReader(args.image).close()

    pipe, describer, detector = load_parts(args, detect=not args.bbox)
    timeline = pipe(
        video=args.image,
        fps=args.fps,
        every_n_frames=args.every_n_frames,
        detect_every=args.detect_every,
        bbox=args.bbox,
        description=args.description[0] if args.description else None,
        detector=detector,
        person_label=args.person_label,
        detection_threshold=args.detection_threshold,
        describer=describer,
    )
    report = {"model": args.model, **timeline}
    if args.save_annotated:
        from .video_outputs import write_annotated_video

        try:
            write_annotated_video(timeline, args.image, args.save_annotated, top_k=args.top_k or DEFAULT_TOP_K)
        except OSError as error:
            raise EmofusionError(f"--save-annotated {args.save_annotated!r}: cannot write it ({error}).") from error
        report["annotated"] = args.save_annotated
    if args.plot:
        from .video_outputs import plot_timeline

        try:
            plot_timeline(timeline, args.plot)
        except OSError as error:
            raise EmofusionError(f"--plot {args.plot!r}: cannot write it ({error}).") from error
        report["plot"] = args.plot
    if args.top_k is not None:
        # Each window's "labels" (above the thresholds) stays whole; "scores" keeps the K best.
        for track in report["tracks"]:
            for window in track["windows"]:
                best = sorted(window["scores"].items(), key=lambda item: item[1], reverse=True)[: args.top_k]
                window["scores"] = dict(best)
    write_report(report, args.output)
    return 0


def write_report(report: dict, output: str | None) -> None:
    text = format_report(report) + "\n"
    if output:
        try:
            with open(output, "w", encoding="utf-8") as file:
                file.write(text)
        except OSError as error:
            raise EmofusionError(f"-o {output!r}: cannot write it ({error}).") from error
    else:
        sys.stdout.write(text)


def load_describer(pipe, args):
    """The VLLM that writes the missing descriptions: `--describer`, else the model's recorded one (loaded
    by the pipeline when first needed); without either, a usage error naming the flags."""
    from .hub_errors import hub_errors

    if args.describer:
        with hub_errors(args.describer, what="--describer"):
            try:
                return pipe.load_describer(args.describer, where="--describer")
            except ValueError as error:  # the model cannot be loaded (the pipeline's words speak Python)
                cause = error.__cause__ or error
                raise EmofusionError(f"--describer {args.describer}: cannot be loaded: {cause}") from error
    if not pipe.model.config.description_model:
        raise UsageError(
            f"no --description given, and the model {args.model} records no description model to write one: "
            "pass --description TEXT (the person in context, e.g. from `emofusion caption`; one per --bbox) "
            "or --describer MODEL_ID (an image-text-to-text model such as llava-hf/llava-1.5-7b-hf, asked the "
            "model's recorded prompt)."
        )
    return None


def check_output_picture(path: str) -> None:
    """`--save-annotated` must name a picture file PIL can write (checked before any work is done)."""
    import os

    from PIL import Image

    extension = os.path.splitext(path)[1].lower()
    if os.path.isdir(path) or extension not in Image.registered_extensions():
        raise UsageError(f"--save-annotated {path!r}: expected a picture file name such as annotated.png.")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise UsageError(f"--save-annotated {path!r}: the folder {folder} does not exist.")


def check_explain_output(path: str) -> None:
    """`--explain` must name a .png in an existing folder, and captum must be installed (checked up front)."""
    import importlib.util
    import os

    if os.path.splitext(path)[1].lower() != ".png" or os.path.isdir(path):
        raise UsageError(f"--explain {path!r}: expected a PNG file name such as explained.png.")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise UsageError(f"--explain {path!r}: the folder {folder} does not exist.")
    if importlib.util.find_spec("captum") is None:
        raise EmofusionError("--explain needs captum: pip install 'emofusion[explain]' (or pip install captum).")


def write_explanations(path: str, image: str, subjects: list, working_side: int) -> dict:
    """Render the explanations (PNG + HTML) on the working picture; the subjects' heatmap arrays leave the JSON."""
    from modeling_emofusion.pipeline_emofusion import load_picture

    from .explain_render import save_explanations, without_arrays

    picture = load_picture(image, min_side=working_side)
    shown = [{**subject, "bbox": picture.to_working(subject["bbox"])} for subject in subjects]
    try:
        png, page = save_explanations(path, picture.image, shown)
    except OSError as error:
        raise EmofusionError(f"--explain {path!r}: cannot write it ({error}).") from error
    subjects[:] = without_arrays(subjects)
    return {"explained": str(png), "explained_html": str(page)}


def readable_picture(source: str) -> str:
    """`source` checked up front; a URL is downloaded once, to a temporary file that is returned instead."""
    import atexit
    import os
    import tempfile
    import warnings

    from PIL import Image

    from modeling_emofusion.marking import download_picture, open_picture

    path = source
    if source.startswith(("http://", "https://")):
        data = download_picture(source)
        handle, path = tempfile.mkstemp(prefix="emofusion-predict-")
        with os.fdopen(handle, "wb") as file:
            file.write(data)
        atexit.register(os.remove, path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", Image.DecompressionBombWarning)
        with open_picture(path, where=source) as picture:  # lazy: reads the header only
            size = picture.size
    if any(issubclass(w.category, Image.DecompressionBombWarning) for w in caught):
        # PIL's warning speaks of an attack; for a large photo within the limit, say what happens instead.
        from transformers.utils import logging

        logging.get_logger(__name__).warning(
            f"{source}: a large picture ({size[0]}x{size[1]}); it is read at the model's working size."
        )
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
    return path


def allow_image_pixels(limit: int) -> None:
    """Set PIL's decompression-bomb guard so that pictures of up to `limit` pixels open (0: any size)."""
    import warnings

    from PIL import Image

    if limit < 0:
        raise UsageError(f"--max-image-pixels {limit}: expected a number of pixels, or 0 for no limit.")
    # PIL refuses pictures over twice MAX_IMAGE_PIXELS and warns above it; the user chose the limit.
    Image.MAX_IMAGE_PIXELS = limit // 2 if limit else None
    warnings.simplefilter("ignore", Image.DecompressionBombWarning)


def available_devices() -> list[str]:
    import torch

    devices = ["cpu"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        devices.append("mps")
    for kind in ("xpu", "npu"):
        module = getattr(torch, kind, None)
        if module is not None and module.is_available():
            devices += [f"{kind}:{i}" for i in range(module.device_count())]
    return devices


def resolve_device(name: str | None):
    """`--device` as a torch device, checked against this machine; the default is the first GPU, else the CPU."""
    import torch

    if name is None:
        return 0 if torch.cuda.is_available() else -1
    try:
        device = torch.device(int(name)) if name.isdigit() else torch.device(name)
    except (RuntimeError, ValueError):
        raise UsageError(f"--device {name!r}: not a device name (expected cpu, cuda, cuda:N, mps, ...).") from None
    if device.type == "cpu":
        return device
    names = available_devices()
    available = ", ".join(names)
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            why = (
                f"this torch ({torch.__version__}) is built without CUDA"
                if torch.version.cuda is None
                else "no CUDA GPU is visible (CUDA_VISIBLE_DEVICES, drivers)"
            )
            raise EmofusionError(f"--device {name}: {why}; available here: {available}.")
        if device.index is not None and device.index >= count:
            raise EmofusionError(f"--device {name}: this machine has {count} GPU(s); available: {available}.")
        return device
    if f"{device.type}:{device.index or 0}" not in names and device.type not in names:
        raise EmofusionError(f"--device {name}: not available here; available: {available}.")
    return device


if __name__ == "__main__":
    sys.exit(main())
