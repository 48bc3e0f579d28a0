"""What a flow run is called and tagged with, so the Prefect UI tells runs apart without opening them.

    @flow(name="sort", flow_run_name=sort_run_name)     # "sort nightly-inbox of /data/inbox"
    tag_this_run("sort", f"action:{action}", ...)        # plus commit:<git commit> of the project

Prefect's default names are random words (spectral-wallaby); a name and tags from what
the run does make a nightly sort, an ad-hoc one and a training stage distinguishable.
"""

import re
import subprocess
from functools import lru_cache
from pathlib import Path

ARTIFACT_KEY_LENGTH = 60


@lru_cache(maxsize=1)
def code_version() -> str | None:
    """The project's git commit (short), with `+` when its working tree has changes; None outside git."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("+" if dirty else "")


def source_label(source: str) -> str:
    """A short name for a source in a tag: the URL scheme and the last path part (`s3:inbox`, `wallpapers.zip`)."""
    scheme, _, rest = source.rpartition("://")
    name = Path(rest.rstrip("/")).name or rest
    return f"{scheme}:{name}" if scheme else name


def artifact_key(*parts: str) -> str:
    """An artifact key from names (lower-case letters, digits and dashes, as Prefect requires).

    The same key on every run of one deployment or named run keeps that run's history as versions.
    """
    key = re.sub(r"[^a-z0-9]+", "-", "-".join(parts).lower()).strip("-")
    return key[:ARTIFACT_KEY_LENGTH].strip("-") or "run"


def tag_this_run(*tags: str) -> None:
    """Add tags to the flow run in progress (kept: the run's existing tags, from a deployment for example)."""
    from prefect.client.orchestration import get_client
    from prefect.runtime import flow_run

    run_id = flow_run.id
    if run_id is None:
        return
    version = code_version()
    wanted = [tag for tag in tags if tag] + ([f"commit:{version}"] if version else [])
    with get_client(sync_client=True) as client:
        current = client.read_flow_run(run_id).tags
        client.update_flow_run(run_id, tags=sorted(set(current) | set(wanted)))
