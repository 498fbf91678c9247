"""Describe every subject of a dataset split and write the description set: `caption_split`.

Under `accelerate launch`, process k of n takes the subjects at positions k, k+n, k+2n, ... of
the split, skips those already in the set, and writes its own shards; after all processes are
done, the main one merges the shards into `data/<split>-*.parquet` (every id once, in dataset
order), so one process and eight give the same set. Restarting with the same arguments continues
where the last run stopped.

Before a model is loaded, each process takes its rank's lock on the output folder (lock.py: a
second run is refused, naming the first), the main process checks the folder's metadata and
recorded settings (errors name the file and field) and reads every work shard in full (a damaged
one is set aside and described again), and a Hub model is looked up once without retries
(emofusion.hub_errors: no network fails in seconds, naming the repo id).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import datasets
import torch
from accelerate import PartialState
from tqdm.auto import tqdm
from transformers import set_seed
from transformers.utils import logging

from emofusion.hub_errors import check_hub_access, check_push_access, hub_offline
from modeling_emofusion.describing import Describer, Description, TransformersDescriber, prompt_for
from modeling_emofusion.labels import task_info

from . import card, store
from .arguments import CaptionArguments
from .lock import OutputLock
from .samples import Sample, SampleReader, load_split, set_max_image_pixels


logger = logging.get_logger(__name__)


def run_settings(args: CaptionArguments, is_video: bool) -> dict:
    """What the set is made with; a later run into the same output_dir must match it."""
    return {
        "dataset": args.dataset,
        "model": args.model,
        "revision": args.revision,
        "backend": args.backend,
        "prompt_template": args.template(),
        "marking": args.marking,
        "generation": args.generation(),
        "dtype": args.dtype,
        "frame": args.frame if is_video else None,
    }


def build_describer(args: CaptionArguments, device: torch.device, offline: bool = False) -> Describer:
    """The describing backend `args` ask for, on `device` (vLLM places itself); `offline`: from the cache only."""
    with hub_offline(offline):
        return _build_describer(args, device)


def _build_describer(args: CaptionArguments, device: torch.device) -> Describer:
    generation = args.generation()
    if args.backend == "vllm":
        from .vllm_backend import VLLMDescriber

        return VLLMDescriber.from_pretrained(
            args.model,
            revision=args.revision,
            dtype=args.dtype,
            tensor_parallel_size=args.tensor_parallel_size,
            gpu_memory_utilization=args.gpu_memory_utilization,
            max_model_len=args.max_model_len,
            marking=args.marking,
            seed=args.seed,
            **generation,
        )
    return TransformersDescriber.from_pretrained(
        args.model, revision=args.revision, dtype=args.dtype, device=device, marking=args.marking, **generation
    )


def check_describer(args: CaptionArguments, describer: Describer) -> None:
    """A describer given to `caption_split` must be the one `args` describe, since `args` are what the set records."""
    mismatches = {
        "model": (args.model, describer.model_id),
        "marking": (args.marking, describer.marking),
        "generation": (args.generation(), describer.generation_settings),
    }
    mismatches = {k: v for k, v in mismatches.items() if v[0] != v[1]}
    if mismatches:
        details = "; ".join(f"{k}: arguments {a!r}, describer {d!r}" for k, (a, d) in mismatches.items())
        raise ValueError(f"The describer does not match the arguments the set records ({details}).")


def description_row(sample: Sample, split: str, prompt: str, description: Description | None, reason=None) -> dict:
    """One row of the set; a subject without a description is an error row with its reason."""
    row = {"id": sample.id, "split": split, "prompt": prompt, "index": sample.index}
    if description is None:
        return {**row, "description": "", "status": "error", "reason": reason or sample.error, "num_tokens": 0}
    status, reason = "ok", None
    if not description.text:
        status, reason = "flagged", "empty description"
    elif not description.finished:
        status, reason = "flagged", f"truncated: no end of text within {description.num_tokens} new tokens"
    return {
        **row,
        "description": description.text,
        "status": status,
        "reason": reason,
        "num_tokens": description.num_tokens,
    }


def describe_samples(describer: Describer, samples: list[Sample], prompts: list[str]) -> list[Description | str]:
    """Descriptions of readable samples, in one batch; where the batch fails, one at a time, so that one
    failing subject becomes an error (its message returned in place of a Description) and the others go on."""
    images, bboxes = [s.image for s in samples], [s.bbox for s in samples]
    try:
        return describer.describe(images, bboxes, prompts)
    except Exception as error:  # a generation failure must not stop the run
        if len(samples) == 1:
            return [f"generation failed: {type(error).__name__}: {error}"]
        logger.warning(f"A batch of {len(samples)} failed ({type(error).__name__}: {error}); retrying one at a time.")
    results = []
    for sample, prompt in zip(samples, prompts):
        results.extend(describe_samples(describer, [sample], [prompt]))
    return results


def prefetched(reader: SampleReader, batches: list[list[int]]) -> Iterator[list[Sample]]:
    """Batches of decoded samples, the next one decoded in a thread while the current one is described."""
    if not batches:
        return
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(reader.read_many, batches[0])
        for following in batches[1:] + [None]:
            current = pending.result()
            pending = pool.submit(reader.read_many, following) if following is not None else None
            yield current


def caption_split(
    args: CaptionArguments,
    dataset: datasets.Dataset | None = None,
    describer: Describer | None = None,
    class_names: list[str] | None = None,
) -> dict:
    """Describe `args.split` of a dataset into the description set at `args.output_dir`.

    Args:
        args: what to describe and how (see `CaptionArguments`).
        dataset: the split itself, in the dataset contract's schema; read from `args.data_dir` when None.
        describer: a ready describer (e.g. a model already in memory); built from `args` when None.
        class_names: the label names of the prompt; the task's (`args.dataset`) when None.

    Returns the run's summary: counts of the split's set, and what this run described.

    >>> caption_split(CaptionArguments(dataset="emotic", data_dir="/data/emotic", split="val",
    ...                                model="llava-hf/llava-1.5-7b-hf", output_dir="emotic-descriptions"))
    {'split': 'val', 'ok': 3301, 'flagged': 12, 'error': 2, ...}
    """
    # Processes meet only at the start and the end; the wait at the end may outlast the default 10-30 minutes.
    state = PartialState(cpu=not torch.cuda.is_available(), timeout=timedelta(hours=3))
    if args.backend == "vllm" and state.num_processes > 1:
        raise ValueError(
            "The vllm backend runs in one process and splits the model over GPUs with --tensor_parallel_size: run "
            "`python caption.py ...`, not `accelerate launch` with several processes."
        )
    # One writer per output folder and rank: a second run on the same folder is refused, naming the first.
    with OutputLock(args.output_dir, rank=state.process_index) as lock:
        return _caption_split(args, state, lock, dataset, describer, class_names)


def _caption_split(args, state, lock, dataset, describer, class_names) -> dict:
    set_seed(args.seed)
    set_max_image_pixels(args.max_image_pixels)
    # 1. Before anything heavy: what is in output_dir can be relied on, and the model can be fetched.
    if state.is_main_process:
        try:
            store.validate_output_dir(args.output_dir)
        except store.DescriptionSetError as error:
            if not args.overwrite_settings:
                raise
            logger.warning(f"Deleting the description set in {args.output_dir}: {error}")
            store.clear_set(args.output_dir)
        if args.push_to_hub:
            check_push_access(args.push_to_hub, args.output_dir, repo_type="dataset")
    offline = describer is None and check_hub_access(args.model, args.revision) == "cached"
    if offline:
        logger.warning(
            f"The Hugging Face Hub cannot be reached; loading {args.model} from the cache (set HF_HUB_OFFLINE=1 to "
            "skip asking the Hub)."
        )
    if dataset is None:
        with state.main_process_first():
            dataset = load_split(args.dataset, args.data_dir, args.split)
    reader = SampleReader(dataset, frame=args.frame)
    class_names = list(class_names or task_info(args.dataset)["labels"])
    settings = run_settings(args, reader.is_video)
    template = settings["prompt_template"]

    # Settings: refuse another model/prompt in this output_dir (or clear it when asked); every shard is read in
    # full, a damaged one set aside to be described again; then start together.
    if state.is_main_process:
        store.check_settings(args.output_dir, settings, overwrite=args.overwrite_settings)
        store.set_aside_unreadable(args.output_dir, args.split)
    state.wait_for_everyone()
    if describer is None:
        describer = build_describer(args, state.device, offline=offline)
    check_describer(args, describer)
    if state.is_main_process:
        # A Hub model id without --revision resolves to a commit only when loaded: it must not change mid-set.
        store.check_revision(args.output_dir, describer.revision, overwrite=args.overwrite_settings)
    state.wait_for_everyone()
    # Only this rank's leftovers: the lock guarantees no other process writes files of this rank.
    store.remove_own_partial_files(args.output_dir, state.process_index)

    # 2. This process's share: every n-th subject of the split, less what is already done.
    done = store.read_done(args.output_dir, args.split)
    if args.retry_errors:
        done = {i: status for i, status in done.items() if status != "error"}
    positions = range(len(reader) if args.limit is None else min(args.limit, len(reader)))
    mine = [i for i in positions[state.process_index :: state.num_processes] if reader.ids[i] not in done]
    logger.info(
        f"Process {state.process_index}/{state.num_processes}: {len(mine)} of {len(positions)} subjects of "
        f"{args.split} to describe ({len(done)} already in {args.output_dir})."
    )

    # 3. Describe, writing a shard every save_every subjects.
    writer = store.ShardWriter(args.output_dir, args.split, rank=state.process_index, save_every=args.save_every)
    batches = [mine[i : i + args.batch_size] for i in range(0, len(mine), args.batch_size)]
    counts = dict.fromkeys(("ok", "flagged", "error"), 0)
    new_tokens, started = 0, time.perf_counter()
    bar = tqdm(total=len(mine), unit="sample", desc=f"describing {args.split}", disable=not state.is_main_process)
    try:
        for samples in prefetched(reader, batches):
            prompts = [prompt_for(template, class_names, describer.is_boxed(s.bbox)) for s in samples]
            readable = [(s, p) for s, p in zip(samples, prompts) if s.error is None]
            results = iter(describe_samples(describer, [s for s, _ in readable], [p for _, p in readable]))
            rows = []
            for sample, prompt in zip(samples, prompts):
                result = sample.error if sample.error is not None else next(results)
                if isinstance(result, str):
                    rows.append(description_row(sample, args.split, prompt, None, reason=result))
                else:
                    rows.append(description_row(sample, args.split, prompt, result))
                    new_tokens += result.num_tokens
                counts[rows[-1]["status"]] += 1
            writer.add(rows)
            lock.refresh()
            bar.update(len(samples))
            elapsed = max(time.perf_counter() - started, 1e-9)
            bar.set_postfix({"tok/s": f"{new_tokens / elapsed:.1f}", **counts}, refresh=False)
    finally:
        # Whatever happens (an interrupt too), rows already described are kept.
        writer.flush()
        bar.close()
    elapsed = time.perf_counter() - started
    this_run = {
        "described": sum(counts.values()),
        **{f"new_{k}": v for k, v in counts.items()},
        "seconds": round(elapsed, 3),
        "samples_per_s": round(sum(counts.values()) / elapsed, 3) if elapsed > 0 else None,
        "tokens_per_s": round(new_tokens / elapsed, 3) if elapsed > 0 else None,
    }

    # 4. Merge once every process is done; the main process writes the set, its card and pushes it.
    state.wait_for_everyone()
    summary = {"split": args.split, "output_dir": args.output_dir, "process": state.process_index, **this_run}
    if state.is_main_process:
        split_counts = store.merge_split(args.output_dir, args.split, rows_per_shard=args.rows_per_shard)
        metadata = card.write_metadata(args.output_dir, settings, describer.revision, args.split, split_counts)
        described = store.read_done(args.output_dir, args.split)
        missing = sum(reader.ids[i] not in described for i in positions)
        summary.update(split_counts, total=sum(split_counts.values()), missing=missing)
        logger.info(
            f"{args.split}: {split_counts['ok']} ok, {split_counts['flagged']} flagged, "
            f"{split_counts['error']} errors in {args.output_dir} ({this_run['described']} described by this "
            f"process in {elapsed:.1f} s)."
        )
        if args.push_to_hub:
            summary["hub_commit"] = push_set(
                args.output_dir, args.push_to_hub, private=args.hub_private, metadata=metadata
            )
    state.wait_for_everyone()
    return summary


def push_set(output_dir: str, repo_id: str, private: bool = True, metadata: dict | None = None) -> str:
    """Upload the merged set (data/, card, metadata; not the work shards) to a Hub dataset repo; returns the commit."""
    from huggingface_hub import HfApi

    api = HfApi()
    api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
    splits = ", ".join(sorted((metadata or {}).get("splits", {})))
    commit = api.upload_folder(
        repo_id=repo_id,
        repo_type="dataset",
        folder_path=output_dir,
        allow_patterns=["README.md", card.METADATA_FILE, f"{store.DATA_DIR}/*.parquet"],
        delete_patterns=[f"{store.DATA_DIR}/*.parquet"],  # shards of an earlier, differently split upload
        commit_message=f"Descriptions ({splits})",
    )
    logger.info(f"Pushed {output_dir} to https://huggingface.co/datasets/{repo_id}")
    return str(getattr(commit, "commit_url", commit))
