"""`emofusion app`: the pipeline as a Gradio web page, also exportable as a Hugging Face Space.

Importing this package imports nothing heavy: gradio, torch and transformers load only when the
app is built (`emofusion.app.page.build_app`), so that `emofusion app --help` answers at once.

- `command`: the `emofusion app` command line (serve, or `--export-space`);
- `page`: the Gradio page (`build_app`), one tab per kind of input;
- `recognition`: what the page does with a photo and a table of people, without gradio;
- `drawing`, `charts`: the annotated picture and the per-person score charts;
- `demo_model`: the embedded default model, trained with `emofusion demo`'s code when absent;
- `space`: writes a ready Hugging Face Space folder running this app against a Hub model.
"""
