"""`emofusion descriptions stats|compare`: load the sets (and the dataset), compute the figures, train, report."""

from __future__ import annotations

import os
import re
from pathlib import Path

from transformers.utils import logging

from dataset_scripts import load_description_set
from dataset_scripts.descriptions import METADATA_FILE, DescriptionSetError
from dataset_scripts.json_files import read_json_file
from modeling_emofusion.labels import TASKS

from ..errors import UsageError
from .arguments import TOKENIZER_MODEL, TOKENIZER_WORDS, WORD_PATTERN, Request
from .figures import (
    MentionMatcher,
    coverage,
    jaccard_matrix,
    label_terms,
    length_summary,
    mention_figures,
    status_counts,
    vocabulary,
    words_of,
)


logger = logging.get_logger(__name__)

PROVENANCE_FIELDS = ("model", "revision", "backend", "prompt_template", "marking", "generation", "dataset", "frame")


def set_names(sources: list[str]) -> list[str]:
    """A short, distinct, file-safe name per set: its folder or file name (a Hub id's name), numbered when repeated."""
    names = []
    for source in sources:
        base = Path(source.rstrip("/\\")).name or source
        base = re.sub(r"[^\w.-]+", "_", Path(base).stem if Path(source).is_file() else base) or "set"
        names.append(base)
    seen: dict[str, int] = {}
    distinct = []
    for name in names:
        if names.count(name) > 1:
            seen[name] = seen.get(name, 0) + 1
            name = f"{name}-{seen[name]}"
        distinct.append(name)
    return distinct


def metadata_path(source: str) -> str:
    """Where a set's `dataset` field lives, for error messages."""
    return os.path.join(source, METADATA_FILE) if os.path.isdir(source) else source


def resolve_task(given: str | None, sources: list[str], metadatas: list[dict]) -> str | None:
    """The dataset the sets describe: --dataset, else the sets' own `dataset` field (all the same, and known)."""
    recorded = [(source, meta.get("dataset")) for source, meta in zip(sources, metadatas) if meta.get("dataset")]
    for source, name in recorded:
        if given is not None and name != given:
            raise DescriptionSetError(
                f"{metadata_path(source)}: field 'dataset' is {name!r}, but --dataset is {given!r}; these "
                "descriptions are of another dataset."
            )
        if name not in TASKS:
            raise DescriptionSetError(
                f"{metadata_path(source)}: field 'dataset' is {name!r}; expected one of {sorted(TASKS)} "
                "(or give --dataset)."
            )
    if given is not None:
        return given
    names = sorted({name for _, name in recorded})
    if len(names) > 1:
        raise DescriptionSetError(
            "The sets describe different datasets ("
            + ", ".join(f"{metadata_path(s)}: {n!r}" for s, n in recorded)
            + "); compare sets of one dataset."
        )
    return names[0] if names else None


def read_label_words(path: str, labels: list[str]) -> dict[str, list[str]]:
    """--label_words: a JSON object of label name -> list of words; unknown labels and non-lists are refused."""
    words = read_json_file(path, UsageError)
    if not isinstance(words, dict):
        raise UsageError(f"--label_words {path}: expected a JSON object of label name -> list of words.")
    for label, value in words.items():
        if label not in labels:
            raise UsageError(f"--label_words {path}: label {label!r} is not one of the dataset's labels {labels}.")
        if not isinstance(value, list) or not all(isinstance(w, str) and w.strip() for w in value):
            raise UsageError(f"--label_words {path}: field {label!r} must be a list of non-empty strings.")
    return {label: [w.strip().lower() for w in words.get(label, [])] for label in labels}


def load_truth(task: str, data_dir: str, cache_dir: str | None) -> tuple[dict[str, set[str]], dict[str, list[str]]]:
    """The dataset's ids per split, and the true label names of every labelled example (by id)."""
    from dataset_scripts import load_emotion_dataset

    labels = TASKS[task]["labels"]
    dataset = load_emotion_dataset(task, data_dir, cache_dir=cache_dir)
    truth, ids = {}, {}
    for split, rows in dataset.items():
        rows = rows.select_columns(["id", "labels"])  # no picture is decoded
        split_ids = list(rows["id"])
        ids[split] = split_ids
        for example_id, value in zip(split_ids, rows["labels"]):
            if value is None:
                continue
            if isinstance(value, int):  # CAER-S: one class index
                truth[example_id] = {labels[value]}
            else:  # EMOTIC, BoLD: multi-hot in the task's label order
                truth[example_id] = {labels[j] for j, v in enumerate(value) if v is not None and v >= 0.5}
    return truth, ids


class LengthCounter:
    """The length of descriptions in the unit `--tokenizer` asks for; `name` says which one was used."""

    def __init__(self, spec: str, metadata: dict, shared=None):
        self.tokenizer, self.note = None, None
        if spec == TOKENIZER_WORDS:
            self.name = f"words (regex {WORD_PATTERN})"
        elif spec == TOKENIZER_MODEL:
            model = metadata.get("model")
            self.name = f"words (regex {WORD_PATTERN})"
            if not model:
                self.note = "the set records no model; lengths are in words"
            else:
                try:
                    self.tokenizer = _load_tokenizer(model, metadata.get("revision"), local_files_only=True)
                    self.name = f"{model}" + (f"@{metadata['revision']}" if metadata.get("revision") else "")
                except (OSError, ValueError) as error:
                    self.note = (
                        f"{model}'s tokenizer is not on this machine ({type(error).__name__}); lengths are in words"
                    )
        else:
            self.tokenizer, self.name = shared, spec

    def __call__(self, texts: list[str]) -> list[int]:
        if self.tokenizer is None:
            return [len(words_of(text)) for text in texts]
        if not texts:
            return []
        return [len(ids) for ids in self.tokenizer(texts, add_special_tokens=False)["input_ids"]]


def _load_tokenizer(name: str, revision: str | None = None, local_files_only: bool = False):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(name, revision=revision, local_files_only=local_files_only)


def set_figures(name, source, rows, metadata, request, matchers, truth, dataset_ids, counter) -> tuple[dict, set]:
    """Every figure of one set, and its vocabulary (for the overlap)."""
    options = request.options
    ids, texts, statuses = list(rows["id"]), list(rows["description"]), list(rows["status"])
    splits = list(rows["split"]) if "split" in rows.column_names else None
    accepted = ("ok", "flagged") if options.use_flagged else ("ok",)
    used = [i for i, status in enumerate(statuses) if status in accepted]
    used_ids, used_texts = [ids[i] for i in used], [texts[i] for i in used]
    provenance = {key: metadata.get(key) for key in PROVENANCE_FIELDS if key in metadata}
    if "prompt" in rows.column_names:
        prompts = sorted({p for p in rows["prompt"] if p})
        provenance["distinct_prompts"] = len(prompts)
        if prompts:
            provenance["first_prompt"] = prompts[0]
    words = vocabulary(used_texts)
    lengths = counter(used_texts)
    figures = {
        "name": name,
        "source": source,
        "provenance": provenance,
        "provenance_known": bool(metadata),
        "counts": {**status_counts(statuses, splits), "used_as_descriptions": len(used)},
        "length": {"tokenizer": counter.name, **length_summary(lengths)},
        "length_values": lengths,  # for the histogram; not written to report.json
        "vocabulary_size": len(words),
    }
    if counter.note:
        figures["length"]["note"] = counter.note
    for key, matcher in matchers.items():
        figures[key] = mention_figures(matcher, used_ids, used_texts, truth)
    if dataset_ids is not None:
        not_used = {ids[i] for i, status in enumerate(statuses) if status not in accepted}
        figures["coverage"] = coverage(set(used_ids), not_used, dataset_ids)
    return figures, words


def run(request: Request) -> dict:
    """Compute the report of `request`, write it to its output folder (again after each training run), return it."""
    from .report import summary_text, write_report

    options = request.options
    out = Path(options.output_dir)
    loaded = []
    for source in request.sets:
        rows, metadata = load_description_set(source, cache_dir=options.dataset_cache_dir)
        loaded.append((source, rows, metadata))
    sources = [source for source, _, _ in loaded]
    names = set_names(sources)
    task = resolve_task(options.dataset, sources, [meta for _, _, meta in loaded])
    matchers, truth, dataset_ids = {}, None, None
    if task is not None:
        labels = list(TASKS[task]["labels"])
        matchers["label_mentions"] = MentionMatcher(label_terms(labels))
        if options.label_words:
            extra = read_label_words(options.label_words, labels)
            verbatim = label_terms(labels)
            matchers["lexicon_mentions"] = MentionMatcher({k: verbatim[k] + extra[k] for k in labels})
    if options.train:  # a config that does not parse is refused before any work
        from .downstream import parse_run

        parse_run(options, sources[0], out / "runs", options.modality_list[0], task)
    if options.data_dir is not None:
        truth, dataset_ids = load_truth(task, options.data_dir, options.dataset_cache_dir)
    shared_tokenizer = None
    if options.tokenizer not in (TOKENIZER_WORDS, TOKENIZER_MODEL):
        try:
            shared_tokenizer = _load_tokenizer(options.tokenizer)
        except (OSError, ValueError) as error:
            raise UsageError(f"--tokenizer {options.tokenizer}: cannot be loaded ({error}).") from None

    sets, vocabularies = [], []
    for name, (source, rows, metadata) in zip(names, loaded):
        counter = LengthCounter(options.tokenizer, metadata, shared_tokenizer)
        figures, words = set_figures(name, source, rows, metadata, request, matchers, truth, dataset_ids, counter)
        sets.append(figures)
        vocabularies.append(words)
    report = {
        "command": request.command,
        "dataset": task,
        "data_dir": options.data_dir,
        "label_words_file": options.label_words,
        "flagged_used": options.use_flagged,
        "sets": sets,
        "notes": [],
    }
    if task is None:
        report["notes"].append(
            "No dataset is known (none given with --dataset, none recorded by the sets): label mentions are not "
            "counted."
        )
    if options.data_dir is None:
        report["notes"].append(
            "Without --dataset and --data_dir there are no true labels and ids: no mention precision or recall, "
            "no coverage."
        )
    if len(sets) > 1:
        shared = set.intersection(*vocabularies)
        report["overlap"] = {
            "names": names,
            "vocabulary_sizes": [len(v) for v in vocabularies],
            "jaccard": jaccard_matrix(vocabularies),
            "shared_by_all": len(shared),
        }
    write_report(report, out, figures=not options.train)
    if options.train:
        from .downstream import train_on_sets

        def save(downstream: dict) -> None:  # after every run: finished runs are never lost
            report["downstream"] = downstream
            write_report(report, out, figures=False)

        train_on_sets(options, sources, names, task, out, save)
    report["paths"] = write_report(report, out)
    report["summary"] = summary_text(report)
    return report
