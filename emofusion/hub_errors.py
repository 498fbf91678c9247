"""Hub access that fails fast and says what to do: one line naming the repo id and how to work offline.

Without network (and without HF_HUB_OFFLINE set), huggingface_hub retries a refused connection
five times with backoff, about 24 s a file, and a transformers model asks for several files: a
load waits minutes before a generic "couldn't connect" that names no repo. `check_hub_access`
asks the Hub once, with no retries and a short timeout (HF_HUB_ETAG_TIMEOUT, 10 s by default),
before anything is loaded:

>>> check_hub_access("llava-hf/llava-1.5-7b-hf")  # doctest: +SKIP
'online'

- a local folder, or HF_HUB_OFFLINE=1: nothing is asked ("local", "offline");
- the Hub answers (even "not found": the loader's own error then says so): "online";
- the Hub is unreachable but the cache (HF_HOME) holds the repo: "cached", load it inside
  `hub_offline()` so that no file is retried;
- unreachable and not cached: `HubUnreachableError`, whose one line names the repo id, the
  endpoint and the ways to work offline.

`hub_errors(repo_id, what)` wraps a load (a checkpoint, a detector) with
`modeling_emofusion.hub_access`, which probes the endpoint once and works from the cache when
it cannot be reached, and turns what still fails into one line naming the flag and the repo id.
`hub_unreachable(repo_id, error)` words the same error for a connection failure caught elsewhere;
`check_push_access(repo_id)` checks at start that a push at the end can work (network, token).
Import-light: huggingface_hub is imported only inside the functions.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator

from emofusion.errors import EmofusionError


_REPO_ID = re.compile(r"^[\w.-]+(/[\w.-]+)?$")


class HubUnreachableError(EmofusionError):
    """The Hugging Face Hub cannot be reached and the repo is not in the local cache."""


class NoSuchModelFolderError(EmofusionError):
    """A model given as a path names no folder (and is not a Hub repo id either)."""


def offline_advice(repo_id: str, repo_type: str = "model") -> str:
    """How to work without network: a local folder, or a filled cache with HF_HUB_OFFLINE=1."""
    from huggingface_hub import constants

    download = f"hf download {repo_id}" + ("" if repo_type == "model" else f" --repo-type {repo_type}")
    return (
        f"To work offline, pass a local folder holding the {repo_type}, or fill the Hugging Face cache "
        f"(HF_HOME; now {constants.HF_HUB_CACHE}) where there is network (`{download}`) and set HF_HUB_OFFLINE=1."
    )


def hub_unreachable(repo_id: str, error: BaseException, repo_type: str = "model") -> HubUnreachableError:
    """The one-line error for a connection failure while fetching `repo_id` (raise it `from error`)."""
    from huggingface_hub import constants

    cause = f"{type(error).__name__}: {error}".splitlines()[0]
    return HubUnreachableError(
        f"Cannot reach the Hugging Face Hub at {constants.ENDPOINT} for the {repo_type} {repo_id!r} ({cause}), "
        f"and it is not in the local cache. {offline_advice(repo_id, repo_type)}"
    )


def looks_like_path(name: str) -> bool:
    """Whether `name` can only be a path (a Hub repo id is `name` or `namespace/name`)."""
    return name.startswith((".", "/", "~")) or not _REPO_ID.match(name)


def is_cached(repo_id: str, revision: str | None = None, repo_type: str = "model") -> bool:
    """Whether the Hugging Face cache holds a snapshot of `repo_id` at `revision`."""
    from huggingface_hub import snapshot_download

    try:
        snapshot_download(repo_id, repo_type=repo_type, revision=revision, local_files_only=True)
    except Exception:  # noqa: BLE001 - any failure means: not usable from the cache
        return False
    return True


def check_hub_access(
    repo_id: str, revision: str | None = None, repo_type: str = "model", timeout: float | None = None
) -> str:
    """Ask the Hub once whether `repo_id` can be fetched; returns "local", "offline", "online" or "cached".

    Raises `NoSuchModelFolderError` when `repo_id` can only be a path and names no folder, and
    `HubUnreachableError` when the Hub cannot be reached and the cache does not hold the repo.
    """
    if os.path.isdir(repo_id):
        return "local"
    if looks_like_path(repo_id):
        raise NoSuchModelFolderError(
            f"{repo_id!r} is not a folder (nor a Hub repo id like 'namespace/name'); give the folder holding the "
            f"{repo_type}, or its Hub repo id."
        )
    from huggingface_hub import HfApi, constants
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    if constants.HF_HUB_OFFLINE:
        return "offline"
    try:
        HfApi().repo_info(
            repo_id, repo_type=repo_type, revision=revision, timeout=timeout or constants.HF_HUB_ETAG_TIMEOUT
        )
    except OfflineModeIsEnabled:
        return "offline"
    except HfHubHTTPError:
        return "online"  # the Hub answered (gated, private, not found...): the loader reports it in its own words
    except Exception as error:  # noqa: BLE001 - connection refused, DNS, timeout, proxy: the Hub is unreachable
        if is_cached(repo_id, revision, repo_type):
            return "cached"
        raise hub_unreachable(repo_id, error, repo_type) from error
    return "online"


def check_push_access(
    repo_id: str, folder: str, repo_type: str = "model", token: str | None = None, timeout: float | None = None
) -> None:
    """Fail now, not after hours of work, when `--push_to_hub` at the end cannot work: offline mode, no token, a
    refused token, or a Hub that cannot be reached (one whoami request with a time limit, no retries). `folder` is
    the output folder, named in the advice to upload it later."""
    from huggingface_hub import constants, get_token
    from huggingface_hub.errors import HfHubHTTPError
    from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status

    kind = "" if repo_type == "model" else f" --repo-type {repo_type}"
    later = (
        f"or leave out --push_to_hub and upload the folder afterwards (`hf upload {repo_id} {folder}{kind}`); "
        "models and data then come from local folders or the HF_HOME cache (HF_HUB_OFFLINE=1)"
    )
    if constants.HF_HUB_OFFLINE:
        raise HubUnreachableError(
            f"--push_to_hub {repo_id} needs the Hub, but HF_HUB_OFFLINE is set: unset it, {later}."
        )
    token = token or get_token()
    if not token:
        raise EmofusionError(
            f"--push_to_hub {repo_id}: not logged in to the Hugging Face Hub; run `hf auth login` or set HF_TOKEN, "
            f"{later}."
        )
    try:
        # HfApi.whoami's request, with a time limit: without network it would wait for the system's TCP timeout.
        response = get_session().get(
            f"{constants.ENDPOINT}/api/whoami-v2",
            headers=build_hf_headers(token=token),
            timeout=timeout or constants.HF_HUB_ETAG_TIMEOUT,
        )
        hf_raise_for_status(response)
    except HfHubHTTPError as error:
        if getattr(error.response, "status_code", None) == 401:
            raise EmofusionError(
                f"--push_to_hub {repo_id}: the Hub refused the token (401); log in with `hf auth login`, {later}."
            ) from None
        raise EmofusionError(f"--push_to_hub {repo_id}: the Hub at {constants.ENDPOINT} answered {error}") from None
    except Exception as error:  # noqa: BLE001 - connection refused, DNS, timeout, proxy (httpx's are not OSErrors)
        cause = f"{type(error).__name__}: {error}".splitlines()[0]
        raise HubUnreachableError(
            f"--push_to_hub {repo_id}: cannot reach the Hub at {constants.ENDPOINT} ({cause}); run again where there "
            f"is network, {later}."
        ) from error


@contextlib.contextmanager
def hub_offline(enabled: bool = True) -> Iterator[None]:
    """Within the block, huggingface_hub (and transformers through it) reads the cache only, with no request."""
    if not enabled:
        yield
        return
    from huggingface_hub import constants

    previous, previous_env = constants.HF_HUB_OFFLINE, os.environ.get("HF_HUB_OFFLINE")
    constants.HF_HUB_OFFLINE = True
    os.environ["HF_HUB_OFFLINE"] = "1"  # for libraries that read the environment (vLLM)
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = previous
        if previous_env is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = previous_env


@contextlib.contextmanager
def hub_errors(repo_id, what: str = "model"):
    """Run the block's Hub fetches of `repo_id` with quick failures, raised as an `EmofusionError` (exit code 1)."""
    from modeling_emofusion.hub_access import HubAccessError, hub_access

    try:
        with hub_access(repo_id, what=what):
            yield
    except HubAccessError as error:
        raise EmofusionError(str(error)) from error
