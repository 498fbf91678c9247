"""Hub access for the commands: a quick, one-line failure naming the repo id when a checkpoint cannot be fetched.

    with hub_errors(args.model, what="--model"):
        pipe = pipeline("emotion-in-context", model=args.model)

Inside the block, a Hub that cannot be reached (no network, a closed HF_ENDPOINT) is found with
one short probe instead of ~25 s of retries; the process then works from the local cache (as
with HF_HUB_OFFLINE=1), and whatever still cannot be fetched (a missing folder, a repo id that is
not cached, a private or missing repo) is an `EmofusionError` that names it and says how to work
offline. The work is done by `modeling_emofusion.hub_access`, which the library itself uses (the
pipeline's detector and describer, `from_pretrained_parts`); this module only imports it when
entered, so importing it costs nothing.
"""

from __future__ import annotations

from contextlib import contextmanager

from .errors import EmofusionError


@contextmanager
def hub_errors(repo_id, what: str = "model"):
    """Run the block's Hub fetches of `repo_id` with quick failures, raised as an `EmofusionError` (exit code 1)."""
    from modeling_emofusion.hub_access import HubAccessError, hub_access

    try:
        with hub_access(repo_id, what=what):
            yield
    except HubAccessError as error:
        raise EmofusionError(str(error)) from error


def offline_help() -> str:
    """One sentence on how to work without network (a local folder, HF_HUB_OFFLINE=1, a filled HF_HOME cache)."""
    from modeling_emofusion.hub_access import offline_help as _offline_help

    return _offline_help()
