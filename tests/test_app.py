"""`emofusion app`: the Gradio page served in a subprocess, called with gradio_client and driven in a real Chromium,
the embedded demo model trained when absent, and the exported Hugging Face Space run with `python app.py`.

One small model serves every test: the demo's fusion model trained by `ensure_demo_model` at a tiny size
(the real "absent -> trained" path of the app's default), started by the app exactly as `emofusion app`
without --model finds it.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml
from PIL import Image
from ports import free_port


pytest.importorskip("gradio")
gradio_client = pytest.importorskip("gradio_client")

from emofusion.app.drawing import draw_people, place_caption  # noqa: E402
from emofusion.app.recognition import AppInputError, read_people  # noqa: E402


# Under pytest-xdist with --dist loadgroup, every test here runs in one worker and shares one model and one
# pair of servers.
pytestmark = pytest.mark.xdist_group("app")


REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "emofusion" / "app" / "examples"
PHOTO = EXAMPLES / "astronaut.jpg"  # 512x512
ENV = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
CHROMIUM = "/usr/bin/chromium"
TWO_PEOPLE = [
    [100, 20, 380, 500, "The person in the red box is smiling at the camera, proud and happy."],
    [300, 280, 512, 512, "The person in the red box sits alone, tired and sad."],
]
TINY_DEMO = {"train_images": 8, "val_images": 4, "test_images": 2, "num_train_epochs": 1.0, "batch_size": 8}


class Server:
    """A server subprocess on 127.0.0.1:`port`: `ready()` waits until its page answers, `stop()` ends it (SIGINT)
    and checks that its port is closed."""

    def __init__(self, argv, port: int, cwd=None, env=None):
        self.port, self.url = port, f"http://127.0.0.1:{port}/"
        self.log = tempfile.TemporaryFile("w+", encoding="utf-8")
        self.process = subprocess.Popen(
            argv, cwd=cwd, env=env or ENV, stdout=self.log, stderr=subprocess.STDOUT, text=True
        )

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read()[-3000:]

    def ready(self, timeout: float = 300) -> str:
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                pytest.fail(f"the app exited with {self.process.returncode}:\n{self.output()}")
            try:
                with urllib.request.urlopen(self.url, timeout=2) as response:
                    if response.status == 200:
                        return self.url
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the app did not answer on {self.url} within {timeout} s:\n{self.output()}")
            time.sleep(0.2)

    def interrupt(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)

    def stop(self) -> None:
        self.interrupt()
        try:
            code = self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        output = self.output()
        self.log.close()
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", self.port)) != 0
        # Ctrl-C's ways out: 0 (gradio's wait loop or launch_app handled it), 130 (emofusion's Ctrl-C status) or
        # -SIGINT (Python's, for an interrupt that lands while the interpreter is shutting down).
        assert code in (0, 130, -signal.SIGINT), f"the app exited with {code} on SIGINT:\n{output}"


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory):
    """The app's default model folder, trained by `ensure_demo_model` from nothing (tiny sizes)."""
    from emofusion.app.demo_model import demo_model_path, ensure_demo_model, has_demo_model
    from emofusion.demo import DemoArguments

    folder = tmp_path_factory.mktemp("app-demo")
    assert not has_demo_model(folder)
    model = ensure_demo_model(folder, DemoArguments(output_dir=str(folder), **TINY_DEMO))
    assert model == demo_model_path(folder) and has_demo_model(folder)
    # The data and descriptions its config names stay; the scratch, the Arrow cache and the initial config go.
    assert sorted(p.name for p in folder.iterdir()) == ["data", "descriptions", "fusion"]
    config = json.loads((model / "config.json").read_text())
    assert config["description_dataset"] == str(folder / "descriptions") and config["modality"] == "fusion"
    return folder


@pytest.fixture(scope="session")
def detector_dir(tmp_path_factory):
    from emofusion.testing_detection import tiny_person_detector

    folder = tmp_path_factory.mktemp("detector")
    model, image_processor = tiny_person_detector()
    model.save_pretrained(folder)
    image_processor.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def describer_dir(tmp_path_factory):
    """A tiny random LLaVA folder: a describer the page can be told to use."""
    from emofusion.testing_llava import tiny_llava

    folder = tmp_path_factory.mktemp("describer") / "tiny-llava"
    tiny_llava(folder)
    return folder


@pytest.fixture(scope="session")
def space_dir(tmp_path_factory):
    """`emofusion app --export-space`, run as a user runs it."""
    space = tmp_path_factory.mktemp("space") / "space"
    run = subprocess.run(
        [sys.executable, "-m", "emofusion.cli", "app", "--export-space", str(space), "--model", "someone/emofusion-x"],
        env=ENV, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    return space


@pytest.fixture(scope="session")
def servers(demo_dir, detector_dir, space_dir):
    """Both servers, started side by side (start-up is most of their cost): `emofusion app` without --model
    (the demo model under --demo-dir), as a user starts it, and the exported Space's `python app.py` inside its
    folder, with its own copy of the code (no PYTHONPATH to the checkout), pointed at the same local model."""
    app_port, space_port = free_port(), free_port()
    argv = [sys.executable, "-m", "emofusion.cli", "app", "--demo-dir", str(demo_dir), "--port", str(app_port),
            "--detector", str(detector_dir)]  # fmt: skip
    env = {k: v for k, v in ENV.items() if k != "PYTHONPATH"}
    env.update(EMOFUSION_MODEL=str(demo_dir / "fusion"), GRADIO_SERVER_PORT=str(space_port))
    started = []
    try:
        started.append(Server(argv, app_port))
        started.append(Server([sys.executable, "app.py"], space_port, cwd=space_dir, env=env))
        yield {"app": started[0].ready(), "space": started[1].ready()}
    finally:
        for server in started:  # both at once, then wait for each
            server.interrupt()
        for server in started:
            server.stop()


@pytest.fixture(scope="session")
def app_url(servers):
    return servers["app"]


@contextmanager
def connected(url: str):
    """A gradio_client Client, closed after (its heartbeat stream would hold the server's shutdown)."""
    from gradio_client import Client

    client = Client(url, verbose=False)
    try:
        yield client
    finally:
        client.close()


def table(rows):
    return {"headers": ["x1", "y1", "x2", "y2", "description"], "data": rows}


@functools.lru_cache
def pipeline_of(model_dir: str):
    from modeling_emofusion import load_pipeline

    return load_pipeline(model_dir)


def direct(model_dir, rows):
    """The pipeline called directly, the way the page calls it."""
    pipe = pipeline_of(str(model_dir))
    return pipe(str(PHOTO), bbox=[row[:4] for row in rows], description=[row[4] for row in rows])


def assert_same_results(served, expected):
    assert len(served) == len(expected)
    for got, want in zip(served, expected):
        assert got["labels"] == want["labels"] and got["bbox"] == want["bbox"]
        assert [s["label"] for s in got["scores"]] == [s["label"] for s in want["scores"]]
        for a, b in zip(got["scores"], want["scores"]):
            assert a["score"] == pytest.approx(b["score"], abs=1e-5)
        assert got["vad"] == pytest.approx(want["vad"], abs=1e-4)
        assert got["description"] == want["description"] and got["description_source"] == "given"


def check_client(url: str, model_dir: Path) -> None:
    """The page's API through gradio_client: the pipeline's own results; bad input is a message and the next
    good call still works."""
    from gradio_client import handle_file

    with connected(url) as client:
        _check_client(client, model_dir, handle_file)


def _check_client(client, model_dir, handle_file) -> None:
    annotated, chart, people, served, download = client.predict(
        handle_file(str(PHOTO)), table(TWO_PEOPLE), "", api_name="/recognise"
    )
    assert_same_results(served, direct(model_dir, TWO_PEOPLE))
    assert json.loads(Path(download).read_text(encoding="utf-8")) == served
    with Image.open(annotated) as picture:
        assert picture.format == "PNG" and picture.size == (512, 512)
    assert chart["type"] == "matplotlib" and chart["plot"].startswith("data:image/")
    assert [row[0] for row in people["data"]] == [1, 2] and people["data"][1][5] == TWO_PEOPLE[1][4]

    bad = [
        (table([[600, 20, 700, 90, "x"]]), "lies outside the picture, which is 512x512"),
        (table([[10, 20, 80, 90, "x"], [30, 40, 90, 100, ""]]), "No description for person 2"),
        (table([[10, 20, "ten", 90, "x"]]), "row 1: 'ten' is not a number"),
    ]
    for people_table, message in bad:
        with pytest.raises(gradio_client.exceptions.AppError, match=message):
            client.predict(handle_file(str(PHOTO)), people_table, "", api_name="/recognise")
    again = client.predict(handle_file(str(PHOTO)), table(TWO_PEOPLE[:1]), "", api_name="/recognise")
    assert_same_results(again[3], served[:1])


def test_client_gets_the_pipelines_results(app_url, demo_dir, describer_dir, tmp_path):
    from gradio_client import handle_file

    check_client(app_url, demo_dir / "fusion")
    with connected(app_url) as client:
        _more_client_checks(client, demo_dir, describer_dir, tmp_path, handle_file)


def _more_client_checks(client, demo_dir, describer_dir, tmp_path, handle_file) -> None:
    # An unreadable upload is a message too.
    not_a_photo = tmp_path / "photo.png"
    not_a_photo.write_text("not a picture")
    with pytest.raises(gradio_client.exceptions.AppError, match=r"photo\.png: not a picture that can be read"):
        client.predict(handle_file(str(not_a_photo)), table(TWO_PEOPLE), "", api_name="/recognise")
    # A describer that cannot load (offline, not a folder) is a message, naming it.
    with pytest.raises(gradio_client.exceptions.AppError, match="no-such/describer"):
        client.predict(handle_file(str(PHOTO)), table([TWO_PEOPLE[0][:4] + [""]]), "no-such/describer",
                       api_name="/recognise")  # fmt: skip
    # A description left empty is written by the describer named on the page, as the pipeline writes it.
    row = [*TWO_PEOPLE[0][:4], ""]
    generated = client.predict(handle_file(str(PHOTO)), table([row]), str(describer_dir), api_name="/recognise")[3]
    (expected,) = pipeline_of(str(demo_dir / "fusion"))(str(PHOTO), bbox=row[:4], describer=str(describer_dir))
    assert generated[0]["description_source"] == "generated" and generated[0]["description"] == expected["description"]
    assert generated[0]["labels"] == expected["labels"]
    # The detector's people become rows of the table, descriptions left to type.
    found = client.predict(handle_file(str(PHOTO)), api_name="/find_people")
    assert found["data"] and all(len(row) == 5 and row[4] == "" for row in found["data"])
    assert all(0 <= row[0] < row[2] <= 512 and 0 <= row[1] < row[3] <= 512 for row in found["data"])


def test_two_users_at_once_get_their_own_results(app_url, demo_dir):
    from gradio_client import handle_file

    asked = {"first": TWO_PEOPLE, "second": [[40, 60, 300, 420, "The person in the red box shouts in anger."]]}
    with connected(app_url) as first, connected(app_url) as second:
        jobs = {
            name: client.submit(handle_file(str(PHOTO)), table(rows), "", api_name="/recognise")
            for (name, rows), client in zip(asked.items(), (first, second))
        }
        for name, job in jobs.items():
            assert_same_results(job.result(timeout=120)[3], direct(demo_dir / "fusion", asked[name]))


def playwright_or_skip():
    """playwright's `sync_playwright`, once Debian's chromium is known to be there; a skip only outside CI."""
    if not Path(CHROMIUM).is_file():
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but {CHROMIUM} is missing: .ci/run installs Debian's chromium")
        pytest.skip(f"no {CHROMIUM} (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if os.environ.get("CI"):
            raise
        pytest.skip("playwright is not installed (pip install -e '.[dev]')")
    return sync_playwright


def test_page_in_a_real_browser(app_url, tmp_path):
    """Headless Chromium: the page loads with its notice, a photo is uploaded, a box clicked, a description typed,
    the button pressed; the annotated picture, the chart and the table appear."""
    sync_playwright = playwright_or_skip()
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(app_url)
            page.wait_for_selector("#run-btn")
            assert "synthetic" in page.locator("#synthetic-notice").inner_text()

            page.set_input_files("#inp-img input[type=file]", str(PHOTO))
            hint = "document.querySelector('#people-hint').innerText.includes({!r})"
            page.wait_for_function(hint.format("Photo ready (512x512 pixels)"), timeout=60000)
            shown = page.locator("#inp-img img").first.bounding_box()
            # Two clicks, at 20%/5% and 75%/95% of the shown photo: one box, in the photo's pixels.
            page.mouse.click(shown["x"] + 0.2 * shown["width"], shown["y"] + 0.05 * shown["height"])
            page.wait_for_function(hint.format("First corner"), timeout=60000)
            page.mouse.click(shown["x"] + 0.75 * shown["width"], shown["y"] + 0.95 * shown["height"])
            page.wait_for_function(hint.format("Person 1 added"), timeout=60000)
            box = [int(page.locator(f"#inp-people [data-testid=cell-0-{i}]").inner_text()) for i in range(4)]
            assert box == pytest.approx([102, 26, 384, 486], abs=4)
            page.locator("#inp-people [data-testid=cell-0-4]").dblclick()
            page.keyboard.type(TWO_PEOPLE[0][4])
            page.keyboard.press("Enter")
            page.wait_for_selector("#people-preview img", timeout=60000)

            page.click("#run-btn")
            page.wait_for_selector("#out-img img", timeout=60000)
            page.wait_for_selector("#out-chart img", timeout=60000)
            page.wait_for_function(
                "document.querySelector('#out-people').innerText.includes('proud and happy')", timeout=60000
            )
            screenshot = tmp_path / "app.png"
            page.screenshot(path=str(screenshot), full_page=True)
            print(f"screenshot: {screenshot}")
            with Image.open(screenshot) as picture:
                assert picture.width >= 1400 and picture.height > 1000
        finally:
            browser.close()


def test_video_tab_in_a_real_browser(app_url, tmp_path):
    """Headless Chromium on the Video tab: a video uploaded, a box and a description typed, the button pressed; the
    annotated video plays in the browser (H.264: Chromium decodes its frames), the plot and the tracks appear."""
    from emofusion.testing_video import write_figures_video

    video = tmp_path / "walk.mp4"
    write_figures_video(video, num_frames=10)
    sync_playwright = playwright_or_skip()
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(app_url)
            page.get_by_role("tab", name="Video").click()
            page.wait_for_selector("#run-video-btn")
            page.set_input_files("#inp-video input[type=file]", str(video))
            page.wait_for_selector("#inp-video video", timeout=60000)
            page.locator("#inp-video-box textarea, #inp-video-box input").first.fill("10, 10, 80, 90")
            page.locator("#inp-video-description textarea").first.fill(TWO_PEOPLE[0][4])
            page.click("#run-video-btn")
            page.wait_for_selector("#out-timeline img", timeout=60000)
            # The track's row: 1 s of video read at 2 frames a second, so its last window is at 0.5 s.
            page.wait_for_function("document.querySelector('#out-tracks').innerText.includes('0.5')", timeout=60000)
            # readyState 2: the browser has decoded the current frame; error: null, it could play the file.
            video_element = "document.querySelector('#out-video video')"
            playing = f"{video_element} && {video_element}.readyState >= 2"
            page.wait_for_function(playing, timeout=60000)
            assert page.evaluate(f"{video_element}.error") is None
        finally:
            page.screenshot(path=str(tmp_path / "app-video.png"), full_page=True)  # also to see what went wrong
            browser.close()


def test_exported_space_runs_and_answers_the_same(space_dir, servers, demo_dir):
    space = space_dir
    assert {"app.py", "requirements.txt", "README.md", "emofusion", "modeling_emofusion"} <= {
        p.name for p in space.iterdir()
    }
    _, header, body = (space / "README.md").read_text(encoding="utf-8").split("---\n", 2)
    meta = yaml.safe_load(header)
    assert meta["sdk"] == "gradio" and meta["app_file"] == "app.py" and meta["models"] == ["someone/emofusion-x"]
    assert meta["license"] == "apache-2.0" and "https://arxiv.org/abs/2404.07078" in body
    requirements = (space / "requirements.txt").read_text().split()
    assert any(r.startswith("av") for r in requirements) and any(r.startswith("trackers") for r in requirements)
    assert any(r.startswith("gradio==") for r in requirements) and any(r.startswith("torch") for r in requirements)
    assert "MODEL = os.environ.get(\"EMOFUSION_MODEL\", 'someone/emofusion-x')" in (space / "app.py").read_text()
    # `python app.py` inside the folder (started by `servers`), pointed at a local model folder.
    check_client(servers["space"], demo_dir / "fusion")


def test_a_model_that_cannot_load_is_a_message_on_the_page(tmp_path):
    from gradio_client import handle_file

    from emofusion.app.page import build_app, launch_app

    missing = tmp_path / "no-model-here"
    app = build_app(str(missing))
    launch_app(app, host="127.0.0.1", port=free_port(), prevent_thread_lock=True, quiet=True)
    try:
        with connected(app.local_url) as client:
            for _ in range(2):  # and again: the server keeps serving, and tries to load it each time
                with pytest.raises(gradio_client.exceptions.AppError, match=f"The model '{missing}' cannot be loaded"):
                    client.predict(handle_file(str(PHOTO)), table(TWO_PEOPLE), "", api_name="/recognise")
    finally:
        app.close()


def test_export_space_refuses_what_cannot_work(tmp_path):
    from emofusion.app.space import export_space
    from emofusion.errors import UsageError

    with pytest.raises(UsageError, match="needs a Hub model id"):
        export_space(tmp_path / "a", str(tmp_path))  # a local folder: a Space cannot reach it
    with pytest.raises(UsageError, match="needs a Hub model id"):
        export_space(tmp_path / "a", "not a hub id")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "x.txt").write_text("x")
    with pytest.raises(UsageError, match="new or empty folder"):
        export_space(tmp_path / "b", "someone/model")


def test_demo_model_present_is_not_trained_again(demo_dir):
    from emofusion.app.demo_model import ensure_demo_model

    weights = demo_dir / "fusion" / "model.safetensors"
    before = weights.stat().st_mtime_ns
    assert ensure_demo_model(demo_dir) == demo_dir / "fusion"  # default (long) settings: would take minutes
    assert weights.stat().st_mtime_ns == before


@pytest.mark.parametrize(
    "rows,message",
    [
        ([[10, 10, 5, 50, ""]], r"row 1: the box \[10.0, 10.0, 5.0, 50.0\] needs x1 < x2"),
        ([[10, 10, 50, 10, ""]], "needs x1 < x2 and y1 < y2"),
        ([[10, 10, None, 50, ""]], "row 1: the box needs all four numbers"),
        ([[None, None, None, None, ""], [1, 2, "3,5", 9, ""]], r"row 2: '3,5' is not a number"),
        ([[None, None, None, None, "a text"]], "row 1: a description but no box"),
        ([[-50, -40, -1, -2, ""]], r"outside the picture, which is 64x48"),
        ([[64, 0, 90, 40, ""]], r"outside the picture"),
    ],
)
def test_people_table_errors_name_the_row(rows, message):
    with pytest.raises(AppInputError, match=message):
        read_people(rows, (64, 48))


def test_people_table_reads_numbers_and_blank_rows():
    rows = [["", "", "", "", ""], ["1", 2, 30.5, "40", "  she smiles "], [float("nan")] * 4 + [None], [-5, 0, 70, 40]]
    people, warnings = read_people(rows, (64, 48))
    assert [(p.bbox, p.description) for p in people] == [([1, 2, 30.5, 40], "she smiles"), ([-5, 0, 70, 40], None)]
    assert warnings == ["Person 2: the box reaches outside the 64x48 picture; clipped."]


def test_captions_stay_apart_when_boxes_touch():
    size, text = (480, 360), (200, 20)
    taken = []
    for box in ([100, 100, 200, 300], [200, 100, 300, 300], [100, 100, 300, 300], [120, 110, 190, 290]):
        x, y = place_caption(size, box, text, taken)
        rect = (x, y, x + text[0], y + text[1])
        assert 0 <= rect[0] and rect[2] <= size[0] and 0 <= rect[1] and rect[3] <= size[1]
        assert not any(rect[0] < o[2] and o[0] < rect[2] and rect[1] < o[3] and o[1] < rect[3] for o in taken)
        taken.append(rect)
    subject = {"bbox": [10, 10, 30, 40], "labels": ["Peace"], "scores": [{"label": "Peace", "score": 0.9}]}
    assert draw_people(Image.new("RGB", (64, 48)), [subject, {**subject, "bbox": [30, 10, 50, 40]}]).size == (512, 384)


def test_chart_axis_and_thresholds():
    from emofusion.app.charts import score_figure

    id2label = {0: "Peace", 1: "Anger", 2: "Pain"}
    subject = {"labels": ["Peace"], "scores": [{"label": n, "score": s} for n, s in (("Peace", 0.7), ("Anger", 0.2),
                                                                                       ("Pain", 0.1))]}  # fmt: skip
    figure = score_figure([subject, subject], id2label, [0.6, 0.3, 0.05], multi_label=True)
    axes = figure.axes
    assert len(axes) == 2 and all(a.get_xlim() == (0.0, 1.0) for a in axes)
    ticks = axes[0].collections[0].get_offsets()
    # One threshold tick per label, at that label's threshold (best label at the top).
    assert [float(x) for x, _ in ticks] == [0.05, 0.3, 0.6]
    assert not score_figure([subject], id2label, None, multi_label=False).axes[0].collections


def test_app_help_imports_nothing_heavy():
    script = (
        "import sys\nfrom emofusion.cli import main\ntry:\n    main(['app', '--help'])\nexcept SystemExit:\n    pass\n"
        "print('heavy', [m for m in ('torch', 'transformers', 'gradio') if m in sys.modules])"
    )
    run = subprocess.run([sys.executable, "-c", script], env=ENV, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert "--export-space" in run.stdout and "--model" in run.stdout and run.stdout.strip().endswith("heavy []")


def test_bundled_photos_are_package_data_with_their_licence():
    licence = (EXAMPLES / "LICENSE.md").read_text(encoding="utf-8")
    photos = sorted(EXAMPLES.glob("*.jpg"))
    assert len(photos) >= 2 and all(f"`{photo.name}`" in licence for photo in photos)
    assert '"app/examples/*"' in (REPO / "pyproject.toml").read_text(encoding="utf-8")


def test_video_tab_gives_the_pipelines_timeline(app_url, demo_dir, tmp_path):
    """The video tab through gradio_client: a fixed box and a description give the timeline the pipeline gives,
    an annotated H.264 video with every source frame and the plot; bad input is a message and the next call works."""
    import av
    from gradio_client import handle_file

    from emofusion.testing_video import write_figures_video

    video = tmp_path / "walk.mp4"
    write_figures_video(video, num_frames=10)
    box, text = [10, 10, 80, 90], "The person in the red box is smiling, proud and happy."
    with connected(app_url) as client:
        annotated, plot, tracks, served, download = client.predict(
            handle_file(str(video)), 5, "10, 10, 80, 90", text, "", api_name="/recognise_video"
        )
        for bad_box, message in (("10, 10, 80", "expected four numbers"), ("80, 10, 10, 90", "x1 < x2")):
            with pytest.raises(gradio_client.exceptions.AppError, match=message):
                client.predict(handle_file(str(video)), 5, bad_box, text, "", api_name="/recognise_video")
        junk = tmp_path / "broken.mp4"
        junk.write_bytes(b"not a video")
        with pytest.raises(gradio_client.exceptions.AppError, match=r"^broken\.mp4: "):
            client.predict(handle_file(str(junk)), 5, "", text, "", api_name="/recognise_video")
        again = client.predict(handle_file(str(video)), 5, "10, 10, 80, 90", text, "", api_name="/recognise_video")
    expected = pipeline_of(str(demo_dir / "fusion"))(video=str(video), fps=5, bbox=box, description=text)
    for timeline in (served, again[3]):
        assert len(timeline["tracks"]) == len(expected["tracks"]) == 1 and timeline["boxes"] == "fixed"
        got, want = timeline["tracks"][0]["windows"], expected["tracks"][0]["windows"]
        assert [w["frame"] for w in got] == [w["frame"] for w in want] == [0, 2, 4, 6, 8]
        for a, b in zip(got, want):
            assert a["box"] == b["box"] and a["scores"] == pytest.approx(b["scores"], abs=1e-5)
    assert json.loads(Path(download).read_text(encoding="utf-8")) == served
    assert tracks["data"][0][:4] == [0, 0.0, 0.8, 5]
    with av.open(annotated) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264" and sum(1 for _ in container.decode(stream)) == 10
    with Image.open(plot) as picture:
        assert picture.format == "PNG"
