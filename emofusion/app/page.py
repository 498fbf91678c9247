"""The Gradio page: a photo, its people (found by the detector, or boxes clicked or typed), a button; the results.

`build_app(model)` returns the `gr.Blocks`; `emofusion app` and an exported Space's `app.py` both
launch it (`launch_app`). Every failure the user can cause (an unreadable file, a box outside the
picture, a missing description without a describer, a model that cannot load) is a message on the
page (`gr.Error`, `gr.Warning`), and the server goes on serving. Requests queue and run one at a
time, each with its own results.

The page is a set of tabs, each filled by one function of `(recogniser)` listed in `TABS`: a photo
tab, and a video tab when PyAV is installed (`emofusion[video]`).
"""

from __future__ import annotations

import html
import os
from collections.abc import Callable
from pathlib import Path


# Before gradio is imported: nothing leaves the machine unless asked (no usage statistics).
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402

from .recognition import PEOPLE_COLUMNS, RESULT_COLUMNS, AppInputError, Recogniser, is_synthetic_model  # noqa: E402


PAPER = "https://arxiv.org/abs/2404.07078"
EXAMPLES_DIR = Path(__file__).parent / "examples"


def example_photos() -> list[str]:
    """The bundled example photos (public domain / CC0, see examples/LICENSE.md)."""
    return sorted(str(path) for path in EXAMPLES_DIR.glob("*.jpg"))


def photo_input(**kwargs) -> gr.Image:
    """A `gr.Image` whose unreadable uploads are a message on the page, not an error without text.

    Its `preprocess` is wrapped on the instance: a subclass of a gradio component would make gradio
    write a type-stub file next to this module at import.
    """
    component = gr.Image(**kwargs)
    read = component.preprocess

    def preprocess(payload):
        try:
            return read(payload)
        except gr.Error:
            raise
        except Exception as error:
            name = getattr(payload, "orig_name", None) or "The file"
            raise gr.Error(f"{name}: not a picture that can be read ({type(error).__name__}: {error}).") from error

    component.preprocess = preprocess
    return component


START_HINT = (
    "Leave the table empty to recognise every person the detector finds; **Find people** fills in their boxes so "
    "you can describe them."
)


def _error(error: AppInputError) -> gr.Error:
    return gr.Error(str(error), duration=None)


def _blank(row) -> bool:
    return all(value is None or (isinstance(value, str) and not value.strip()) or value != value for value in row)


# -- the photo tab ---------------------------------------------------------------------------------


def photo_tab(recogniser: Recogniser) -> None:
    """A photo and its people in, the annotated photo, the charts, the table and the JSON out."""
    config = recogniser.config if recogniser.load_error() is None else None
    recorded = getattr(config, "description_model", None)
    with gr.Row():
        with gr.Column(scale=1):
            photo = photo_input(
                type="filepath",
                image_mode=None,  # the file as uploaded: the pipeline reads EXIF, large JPEGs at reduced scale
                sources=["upload", "clipboard"],
                label="Photo: click two opposite corners to add a person's box",
                elem_id="inp-img",
                height=420,
            )
            gr.Examples([[path] for path in example_photos()], inputs=[photo], label="Example photos (public domain)")
            people = gr.Dataframe(
                headers=PEOPLE_COLUMNS,
                datatype=["number", "number", "number", "number", "str"],
                type="array",
                value=[],
                interactive=True,
                label="People, one row each: box in pixels (x1, y1, x2, y2) and a description of them in context",
                elem_id="inp-people",
                wrap=True,
            )
            corner = gr.State(None)
            hint = gr.Markdown(START_HINT, elem_id="people-hint")
            with gr.Row():
                find = gr.Button("Find people", elem_id="find-btn")
                clear = gr.Button("Clear people", elem_id="clear-btn")
            describer = gr.Textbox(
                label="Describer: the VLLM that writes the descriptions left empty",
                placeholder=(
                    f"empty: {recorded}, which this model records"
                    if recorded
                    else "this model records none: type descriptions, or name one (e.g. llava-hf/llava-1.5-7b-hf)"
                ),
                elem_id="inp-describer",
            )
            run = gr.Button("Recognise emotions", variant="primary", elem_id="run-btn")
        with gr.Column(scale=1):
            preview = gr.Image(label="People to recognise", format="png", interactive=False, elem_id="people-preview")
            annotated = gr.Image(label="Annotated photo", format="png", interactive=False, elem_id="out-img")
            gr.Markdown("Every label's score per person; red ticks: the model's calibrated thresholds.")
            chart = gr.Plot(show_label=False, elem_id="out-chart")
            results = gr.Dataframe(
                headers=RESULT_COLUMNS,
                label="Per person",
                interactive=False,
                wrap=True,
                column_widths=["9%", "27%", "10%", "10%", "11%", "22%", "11%"],
                elem_id="out-people",
            )
            with gr.Accordion("The pipeline's JSON", open=False):
                output_json = gr.JSON(label="Pipeline output", elem_id="out-json")
            download = gr.File(label="Download the JSON", elem_id="out-file")

    def add_corner(point, rows, evt: gr.SelectData):
        x, y = (int(round(v)) for v in evt.index)
        rows = [list(row) for row in (rows or []) if not _blank(row)]
        if point is None:
            return [x, y], rows, f"First corner at ({x}, {y}): click the opposite corner."
        (x0, y0), box = point, [min(point[0], x), min(point[1], y), max(point[0], x), max(point[1], y)]
        if box[0] == box[2] or box[1] == box[3]:
            return None, rows, f"The corners ({x0}, {y0}) and ({x}, {y}) make an empty box: click opposite corners."
        rows.append([*box, ""])
        return None, rows, f"Person {len(rows)} added: {box}. Type a description in the table's last column."

    def show_people(path, rows):
        if not path:
            return None
        try:
            from modeling_emofusion.marking import load_image_for_model

            from .drawing import draw_boxes

            boxes = [[float(v) for v in row[:4]] for row in (rows or []) if not _blank(row[:4])]
            picture = load_image_for_model(path, min_side=1024)
            return draw_boxes(picture.image, [picture.to_working(box) for box in boxes])
        except Exception:  # a half-typed row: the preview waits; the run says what is wrong
            return gr.skip()

    def find_people(path):
        try:
            rows = recogniser.find_people(path)
        except AppInputError as error:
            raise _error(error) from None
        if not rows:
            gr.Warning("The detector found nobody: click two corners on the photo to add a box.")
        return rows

    def recognise(path, rows, describer_id):
        try:
            recognition = recogniser.recognise(path, rows, describer_id)
        except AppInputError as error:
            raise _error(error) from None
        for warning in recognition.warnings:
            gr.Warning(warning)
        return (
            recognition.annotated,
            recognition.figure,
            recognition.table,
            recognition.subjects,
            recognition.json_path,
        )

    def photo_ready(path):
        # A new photo: its old boxes mean nothing.
        if not path:
            return [], None, START_HINT
        try:
            width, height = recogniser.photo_size(path)
        except AppInputError as error:
            return [], None, str(error)
        return [], None, f"Photo ready ({width}x{height} pixels). Click two opposite corners of a person to add them."

    photo.change(photo_ready, inputs=[photo], outputs=[people, corner, hint], api_visibility="private")
    photo.select(add_corner, inputs=[corner, people], outputs=[corner, people, hint], api_visibility="private")
    people.change(show_people, inputs=[photo, people], outputs=[preview], api_visibility="private")
    clear.click(lambda: ([], None), outputs=[people, corner], api_visibility="private")
    find.click(find_people, inputs=[photo], outputs=[people], api_name="find_people")
    run.click(
        recognise,
        inputs=[photo, people, describer],
        outputs=[annotated, chart, results, output_json, download],
        api_name="recognise",
    )


# -- the video tab ---------------------------------------------------------------------------------


def video_tab(recogniser: Recogniser) -> None:
    """A video in (people found and tracked, or one box held fixed); the annotated video, the timeline plot, one
    row a track and the timeline's JSON out."""
    from .video_recognition import TRACK_COLUMNS

    config = recogniser.config if recogniser.load_error() is None else None
    recorded = getattr(config, "description_model", None)
    with gr.Row():
        with gr.Column(scale=1):
            video = gr.Video(sources=["upload"], label="Video", elem_id="inp-video", height=320)
            fps = gr.Number(value=2, minimum=0.1, label="Frames a second to read", elem_id="inp-fps")
            box = gr.Textbox(
                label="Box (optional): x1, y1, x2, y2 in the video's pixels, held fixed; empty: the detector finds "
                "and tracks every person",
                elem_id="inp-video-box",
            )
            description = gr.Textbox(
                label="Description of the person in context (used for every moment)",
                placeholder=f"empty: written per moment by {recorded}" if recorded else "",
                lines=2,
                elem_id="inp-video-description",
            )
            describer = gr.Textbox(
                label="Describer: the VLLM that writes the descriptions when none is typed",
                placeholder=f"empty: {recorded}, which this model records" if recorded else "",
                elem_id="inp-video-describer",
            )
            run = gr.Button("Recognise emotions through the video", variant="primary", elem_id="run-video-btn")
        with gr.Column(scale=1):
            annotated = gr.Video(label="Annotated video", interactive=False, elem_id="out-video")
            plot = gr.Image(label="Timeline: each track's top emotions", format="png", interactive=False,
                            elem_id="out-timeline")  # fmt: skip
            tracks = gr.Dataframe(headers=TRACK_COLUMNS, label="Per track", interactive=False, elem_id="out-tracks")
            with gr.Accordion("The timeline's JSON", open=False):
                output_json = gr.JSON(label="Timeline", elem_id="out-video-json")
            download = gr.File(label="Download the timeline", elem_id="out-video-file")

    def recognise(path, rate, box_text, text, describer_id):
        try:
            result = recogniser.recognise_video(path, rate, box_text, text, describer_id)
        except AppInputError as error:
            raise _error(error) from None
        for warning in result.warnings:
            gr.Warning(warning)
        return result.annotated_path, result.plot_path, result.table, result.timeline, result.json_path

    run.click(
        recognise,
        inputs=[video, fps, box, description, describer],
        outputs=[annotated, plot, tracks, output_json, download],
        api_name="recognise_video",
    )


def _can_read_videos() -> bool:
    import importlib.util

    return importlib.util.find_spec("av") is not None


# The page's tabs, in order: a title and the function that fills the tab (called inside it with the page's
# Recogniser). The video tab needs PyAV (`emofusion[video]`); without it the page has the photo tab only.
TABS: list[tuple[str, Callable[[Recogniser], None]]] = [("Photo", photo_tab)]
if _can_read_videos():
    TABS.append(("Video", video_tab))


# -- the page --------------------------------------------------------------------------------------


def notice_html(text: str) -> str:
    return (
        '<div id="synthetic-notice" role="alert" style="border: 2px solid #d97706; background: #fef3c7; '
        f'color: #78350f; padding: 10px 14px; border-radius: 6px; font-weight: 600">{html.escape(text)}</div>'
    )


def build_app(
    model: str,
    *,
    revision: str | None = None,
    device=None,
    detector: str | None = None,
    notice: str | None = None,
    title: str = "emofusion: emotions in context",
) -> gr.Blocks:
    """The app's page for `model` (a checkpoint folder or Hub id).

    `notice` is shown at the top of the page on every visit (the embedded demo model's warning);
    a local checkpoint whose card tags it `synthetic-data` gets the demo's notice too.
    """
    from .demo_model import DEMO_NOTICE

    recogniser = Recogniser(model, revision=revision, device=device, detector=detector)
    if notice is None and is_synthetic_model(model):
        notice = DEMO_NOTICE
    with gr.Blocks(title=title, analytics_enabled=False) as app:
        gr.Markdown(
            f"# {html.escape(title)}\n"
            f"Model: `{model}`. A vision-and-language model's description of each person, fused with the photo "
            f"by a Q-Former, as in [Xenos et al., arXiv 2404.07078]({PAPER})."
        )
        if notice:
            gr.HTML(notice_html(notice))
        error = recogniser.load_error()
        if error:
            gr.HTML(notice_html(f"{error} Every request will try again."))
        with gr.Tabs():
            for tab_title, fill_tab in TABS:
                with gr.Tab(tab_title):
                    fill_tab(recogniser)
    app.recogniser = recogniser
    return app


def launch_app(
    app: gr.Blocks, host: str | None = None, port: int | None = None, share: bool = False, **kwargs
) -> None:
    """Serve `app`: requests queue one at a time; no share link unless asked; `host` None: gradio's
    GRADIO_SERVER_NAME (a Space sets it) or 127.0.0.1."""
    app.queue(default_concurrency_limit=1, max_size=64)
    try:
        app.launch(server_name=host, server_port=port, share=share, show_error=True, **kwargs)
    except KeyboardInterrupt:  # Ctrl-C before gradio's own wait loop, which handles it, has begun
        app.close()
