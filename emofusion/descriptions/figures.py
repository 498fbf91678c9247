"""The figures of a description set, from its rows: counts, lengths, label mentions, coverage, vocabulary.

Everything here is plain Python over lists of strings and returns JSON-ready dicts (undefined
ratios are None, never NaN), so that `report.json` can be read by anything.

A description *mentions* a label when it holds one of the label's words as a whole word, in any
case: the label itself, or for a compound label such as EMOTIC's "Doubt/Confusion" either part
("doubt", "confusion"). Against the dataset's true labels, a mention of a label the subject has is
a true mention, any other a false one; per class, the mention precision is the share of the
descriptions naming the class whose subject has it, the mention recall the share of the subjects
having it whose description names it.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence

from .arguments import WORD_PATTERN


LENGTH_QUANTILES = {"p5": 0.05, "p25": 0.25, "median": 0.5, "p75": 0.75, "p95": 0.95}
_WORD = re.compile(WORD_PATTERN)


def words_of(text: str) -> list[str]:
    """The lower-cased words of a text (the regex WORD_PATTERN): the unit of lengths and vocabularies."""
    return _WORD.findall(text.lower())


def label_terms(labels: Sequence[str]) -> dict[str, list[str]]:
    """The words that name each label verbatim: the label, or each part of a compound one ("Doubt/Confusion").

    >>> label_terms(["Anger", "Doubt/Confusion"])
    {'Anger': ['anger'], 'Doubt/Confusion': ['doubt', 'confusion']}
    """
    return {label: [part.strip().lower() for part in label.split("/") if part.strip()] for label in labels}


class MentionMatcher:
    """Which of the labels a text names: each label's terms as whole words, case-insensitive."""

    def __init__(self, terms: Mapping[str, Sequence[str]]):
        self.labels = list(terms)
        self.terms = {label: sorted(set(words), key=str.lower) for label, words in terms.items()}
        self._patterns = {
            label: re.compile(
                r"\b(?:" + "|".join(r"\s+".join(map(re.escape, term.split())) for term in words) + r")\b",
                re.IGNORECASE,
            )
            for label, words in self.terms.items()
            if words
        }

    def __call__(self, text: str) -> set[str]:
        return {label for label, pattern in self._patterns.items() if pattern.search(text)}


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _mean(values: Sequence[float | None]) -> float | None:
    defined = [v for v in values if v is not None]
    return sum(defined) / len(defined) if defined else None


def status_counts(statuses: Sequence[str], splits: Sequence[str] | None) -> dict:
    """Rows per status ("ok", "flagged", "error"), overall and per split (where the rows say their split)."""
    counts = {"total": len(statuses), **{s: 0 for s in ("ok", "flagged", "error")}}
    counts.update(Counter(statuses))
    if splits is not None:
        by_split: dict[str, Counter] = {}
        for split, status in zip(splits, statuses):
            by_split.setdefault(split or "(none)", Counter())[status] += 1
        counts["by_split"] = {
            split: {s: c.get(s, 0) for s in ("ok", "flagged", "error")} for split, c in sorted(by_split.items())
        }
    return counts


def length_summary(lengths: Sequence[int]) -> dict:
    """Count, mean, standard deviation, extremes and quantiles (linear interpolation) of the lengths."""
    if not lengths:
        return {"count": 0}
    ordered = sorted(lengths)
    n = len(ordered)
    mean = sum(ordered) / n
    summary = {"count": n, "mean": mean, "std": math.sqrt(sum((x - mean) ** 2 for x in ordered) / n)}
    summary["min"], summary["max"] = ordered[0], ordered[-1]
    for name, q in LENGTH_QUANTILES.items():
        position = q * (n - 1)
        low = math.floor(position)
        high = min(low + 1, n - 1)
        summary[name] = ordered[low] + (ordered[high] - ordered[low]) * (position - low)
    summary["empty"] = sum(1 for x in ordered if x == 0)
    return summary


def mention_figures(
    matcher: MentionMatcher,
    ids: Sequence[str],
    texts: Sequence[str],
    truth: Mapping[str, set[str]] | None = None,
) -> dict:
    """How often the descriptions name a label, which labels, and (with `truth`: id -> the subject's true
    labels) how often a named label is true: micro and per-class precision and recall of the mention."""
    named = [matcher(text) for text in texts]
    per_label = Counter(label for labels in named for label in labels)
    figures = {
        "terms": matcher.terms,
        "descriptions": len(texts),
        "naming_a_label": sum(1 for labels in named if labels),
        "rate": _ratio(sum(1 for labels in named if labels), len(texts)),
        "labels_named_per_description": _ratio(sum(len(labels) for labels in named), len(texts)),
        "per_label": {label: per_label.get(label, 0) for label in matcher.labels},
    }
    if truth is None:
        return figures
    support, mentioned, correct = Counter(), Counter(), Counter()
    examples = 0
    for example_id, labels in zip(ids, named):
        true = truth.get(example_id)
        if true is None:  # not in the dataset, or a subject without labels (BoLD's test split)
            continue
        examples += 1
        support.update(true)
        mentioned.update(labels)
        correct.update(labels & true)
    per_class = {
        label: {
            "support": support[label],
            "mentioned": mentioned[label],
            "true_mentions": correct[label],
            "precision": _ratio(correct[label], mentioned[label]),
            "recall": _ratio(correct[label], support[label]),
        }
        for label in matcher.labels
    }
    all_mentions, true_mentions = sum(mentioned.values()), sum(correct.values())
    figures["against_truth"] = {
        "examples": examples,
        "mentions": all_mentions,
        "true_mentions": true_mentions,
        "false_mentions": all_mentions - true_mentions,
        "precision": _ratio(true_mentions, all_mentions),
        "recall": _ratio(true_mentions, sum(support.values())),
        "macro_precision": _mean([c["precision"] for c in per_class.values()]),
        "macro_recall": _mean([c["recall"] for c in per_class.values()]),
        "per_class": per_class,
    }
    return figures


def coverage(described_ids: set[str], error_ids: set[str], dataset_ids: Mapping[str, Sequence[str]]) -> dict:
    """Per split of the dataset: its examples, how many have a description, an error row, or no row at all."""
    splits, seen = {}, set()
    for split, ids in dataset_ids.items():
        ids = list(ids)
        seen.update(ids)
        described = sum(1 for i in ids if i in described_ids)
        errors = sum(1 for i in ids if i in error_ids)
        splits[split] = {
            "examples": len(ids),
            "described": described,
            "error": errors,
            "missing": len(ids) - described - errors,
            "rate": _ratio(described, len(ids)),
        }
    total = {key: sum(s[key] for s in splits.values()) for key in ("examples", "described", "error", "missing")}
    total["rate"] = _ratio(total["described"], total["examples"])
    return {
        "splits": splits,
        "total": total,
        "ids_not_in_dataset": len((described_ids | error_ids) - seen),
    }


def vocabulary(texts: Sequence[str]) -> set[str]:
    """The distinct lower-cased words of the texts."""
    words: set[str] = set()
    for text in texts:
        words.update(words_of(text))
    return words


def jaccard_matrix(vocabularies: Sequence[set[str]]) -> list[list[float | None]]:
    """|A & B| / |A | B| for every pair of vocabularies (None where both are empty)."""
    return [[_ratio(len(a & b), len(a | b)) for b in vocabularies] for a in vocabularies]
