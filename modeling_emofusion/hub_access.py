"""Fetching checkpoints from the Hub: a quick failure when it cannot be reached, and errors that name the repo.

Without network and without HF_HUB_OFFLINE, huggingface_hub retries a missing file for about 25 s
(1+2+4+8+8 s of back-off) before transformers says "We couldn't connect to ..." without naming the
repo id. `hub_access(repo_id)` probes the Hub endpoint once per process (a few seconds at most); if
it cannot be reached, the process works offline from the local cache (as HF_HUB_OFFLINE=1 does), so
cached checkpoints still load at once and missing ones fail at once, with an error that names the
repo id and the ways to work offline.

This file is saved next to checkpoints (the pipeline and `pretrained_parts` import it), so it
imports only the standard library at import time, and huggingface_hub when used.
"""

from __future__ import annotations

import os
from contextlib import contextmanager

from transformers.utils import logging


logger = logging.get_logger(__name__)

# Seconds to wait for the Hub endpoint to answer at all (any HTTP status counts as reachable).
PROBE_TIMEOUT = 5.0
# endpoint -> None when it answered, else why it could not be reached
_PROBED: dict[str, str | None] = {}
# Errors of huggingface_hub that mean "this repo, revision or file is not there (or not for you)".
_NOT_FOUND = {
    "RepositoryNotFoundError": "no such repo on the Hub (or it is private or gated: log in with `hf auth login`)",
    "GatedRepoError": "a gated repo: accept its terms on the Hub and log in with `hf auth login`",
    "RevisionNotFoundError": "no such revision in the repo",
}
_HUB_ID = "a Hub id is `name` or `namespace/name`"
_OFFLINE = ("OfflineModeIsEnabled", "LocalEntryNotFoundError", "ConnectError", "ConnectTimeout", "TransportError")


class HubAccessError(OSError):
    """A checkpoint that cannot be fetched; the message names it and says what to do."""


def offline_help() -> str:
    """How to work without network (one sentence, for error messages)."""
    from huggingface_hub import constants

    return (
        "To work offline, pass a local folder, or fill the Hugging Face cache once with network "
        f"(HF_HOME; the hub cache is {constants.HF_HUB_CACHE}) and set HF_HUB_OFFLINE=1."
    )


def unreachable_reason() -> str | None:
    """Why the Hub endpoint (HF_ENDPOINT) cannot be reached, or None when it answers; probed once per process."""
    from huggingface_hub import constants
    from huggingface_hub.utils import get_session, httpx

    endpoint = constants.ENDPOINT
    if endpoint not in _PROBED:
        try:
            get_session().head(endpoint, timeout=PROBE_TIMEOUT)
            _PROBED[endpoint] = None
        except httpx.TransportError as error:
            _PROBED[endpoint] = " ".join(str(error).split()) or type(error).__name__
    return _PROBED[endpoint]


def _looks_like_path(name: str) -> bool:
    """A name that can only be a folder: a Hub id is `name` or `namespace/name`."""
    return (
        os.path.isabs(name)
        or name.startswith(("./", "../", "~", ".\\"))
        or "\\" in name
        or name.count("/") > 1
        or name.endswith("/")
        or os.path.exists(name)
    )


def _chain(error: BaseException):
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        error = error.__cause__ or error.__context__


def _converted(error: BaseException, repo_id: str, what: str) -> HubAccessError | None:
    """The error to raise instead of `error` while fetching `repo_id`, or None to let it through."""
    from huggingface_hub import constants

    names = [type(e).__name__ for e in _chain(error)]
    label = f"{what} {repo_id!r}"
    local = "" if os.path.isdir(repo_id) else "not a local folder, "
    if "HFValidationError" in names:
        return HubAccessError(f"{label}: no such folder, and not a Hub id ({_HUB_ID}).")
    for name, meaning in _NOT_FOUND.items():
        if name in names:
            return HubAccessError(f"{label}: {local}{meaning}.")
    text = " ".join(str(error).split())
    offline = any(name in _OFFLINE for name in names) or "offline" in text.lower() or "couldn't connect" in text
    if offline and not os.path.isdir(repo_id):
        reason = _PROBED.get(constants.ENDPOINT)  # set when this process went offline after a probe
        if reason:
            where = f"the Hub ({constants.ENDPOINT}) cannot be reached ({reason})"
        else:
            where = "offline mode is on (HF_HUB_OFFLINE)" if constants.HF_HUB_OFFLINE else "the Hub cannot be reached"
        return HubAccessError(f"{label}: {local}not in the local cache, and {where}. {offline_help()}")
    if isinstance(error, OSError):
        return HubAccessError(f"{label}: {text}")
    return None


def _work_offline(reason: str) -> None:
    from huggingface_hub import constants

    if not constants.HF_HUB_OFFLINE:
        logger.warning(
            f"The Hub ({constants.ENDPOINT}) cannot be reached ({reason}): working offline from the local cache "
            "for the rest of this run, as with HF_HUB_OFFLINE=1."
        )
        # huggingface_hub and transformers read this flag on every call (`is_offline_mode()`).
        constants.HF_HUB_OFFLINE = True


@contextmanager
def hub_access(repo_id, what: str = "model"):
    """Fetch `repo_id` (a local folder or Hub id) inside this block with quick, named failures.

    - a name that can only be a path (absolute, `./x`, `a/b/c`) and is no folder: an error at once;
    - a Hub id while the Hub cannot be reached: the process goes offline first (cached files load);
    - a missing repo, revision or file, or no network: a `HubAccessError` naming `what` and `repo_id`.

    >>> with hub_access("hustvl/yolos-tiny", what="person detector"):  # doctest: +SKIP
    ...     detector = pipeline("object-detection", model="hustvl/yolos-tiny")
    """
    if not isinstance(repo_id, (str, os.PathLike)):
        yield  # an already loaded object
        return
    repo_id = os.fspath(repo_id)
    if os.path.isdir(repo_id) and not os.path.isfile(os.path.join(repo_id, "config.json")):
        raise HubAccessError(
            f"{what} {repo_id!r}: the folder has no config.json, so it is not a saved checkpoint "
            "(expected a folder written by save_pretrained, e.g. a training run's output_dir)."
        )
    if not os.path.isdir(repo_id):
        if _looks_like_path(repo_id):
            kind = "a file, not a checkpoint folder" if os.path.isfile(repo_id) else "no such folder"
            raise HubAccessError(f"{what} {repo_id!r}: {kind}, and not a Hub id ({_HUB_ID}).")
        from huggingface_hub import constants

        if not constants.HF_HUB_OFFLINE:
            reason = unreachable_reason()
            if reason is not None:
                _work_offline(reason)
    try:
        yield
    except HubAccessError:
        raise
    except Exception as error:
        converted = _converted(error, repo_id, what)
        if converted is None:
            raise
        raise converted from error
