"""The sort flow under a temporary Prefect API: threads and a Dask LocalCluster, with its artifacts."""

from pathlib import Path

import pytest

from flows.sort import sort_flow
from tests.conftest import colour_picture
from tests.flows.test_flows import _artifact_data


@pytest.fixture
def pile(tmp_path) -> Path:
    root = tmp_path / "pile"
    root.mkdir()
    for index in range(30):
        colour = (220, 20, 20) if index % 3 == 0 else (20, 20, 220)
        (root / f"p{index:02d}.jpg").write_bytes(colour_picture(colour, size=(40 + index, 40)))
    (root / "bad.jpg").write_bytes(b"\xff\xd8\xffbad")
    return root


def _flow_run(state):
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return client.read_flow_run(state.state_details.flow_run_id)


def test_sort_flow_on_threads_publishes_progress_counts_and_summary(pile, tmp_path, colour_model, prefect_harness):
    overrides = {"model": colour_model, "chunk_size": 7, "batch_size": 4, "run": "threads-test"}
    state = sort_flow(str(pile), tmp_path / "out", overrides, tmp_path / "no-params.yaml", return_state=True)
    summary = state.result()
    assert summary.counts == {"keep": 10, "review": 0, "drop": 20, "unreadable": 1}
    assert len(list((tmp_path / "out" / "keep").iterdir())) == 10
    flow_run = _flow_run(state)
    assert flow_run.name == f"sort threads-test of {pile}"
    assert {"sort", "action:copy", "source:pile", "target:mona"} <= set(flow_run.tags)
    # Artifact keys are the run's own, so the next run of it adds a version instead of overwriting others.
    markdown = _artifact_data("sort-threads-test-summary")
    report = tmp_path / "out" / "runs" / "threads-test" / "report.html"
    # Paths to copy, not file:// links (the UI cannot open those).
    assert "**10 keep**" in markdown and f"contact sheet: `{report}`" in markdown and "file://" not in markdown
    assert "## Kept" in markdown and markdown.count("data:image/jpeg;base64,") >= 6  # kept and closest drops
    assert "keep" in _artifact_data("sort-threads-test-counts")
    assert float(_artifact_data("sort-threads-test-progress")) == pytest.approx(100.0)
    # Each chunk is a task run named for its place and size (31 pictures in chunks of 7: 5 chunks).
    names = sorted(task_run.name for task_run in _task_runs(flow_run.id) if task_run.name.startswith("chunk"))
    assert names == [f"chunk {n}/5 (7 pictures)" for n in range(1, 5)] + ["chunk 5/5 (3 pictures)"]
    # A second run of the same request finds everything done and changes nothing.
    again = sort_flow(str(pile), tmp_path / "out", overrides, tmp_path / "no-params.yaml")
    assert again.resumed_skipped == 31 and again.counts == summary.counts


def test_several_characters_in_one_flow_run_of_chunks(pile, tmp_path, colour_model, prefect_harness):
    """The run form's models: each chunk scores every picture with both, the summary counts per target."""
    from tests.conftest import make_colour_model

    blue = make_colour_model(tmp_path / "models" / "blue", target="kiri", weights=(-1.0, 0.0, 1.0))
    overrides = {"models": [str(colour_model), str(blue)], "chunk_size": 8, "batch_size": 4, "run": "two"}
    state = sort_flow(str(pile), tmp_path / "out", overrides, tmp_path / "no-params.yaml", return_state=True)
    summary = state.result()
    assert summary.counts == {"keep": 30, "review": 0, "drop": 0, "unreadable": 1}
    assert {t.target: t.counts["keep"] for t in summary.targets} == {"mona": 10, "kiri": 20}
    assert len(list((tmp_path / "out" / "keep" / "kiri").iterdir())) == 20
    assert {"target:mona", "target:kiri"} <= set(_flow_run(state).tags)
    assert "## Per character" in _artifact_data("sort-two-summary")


def test_a_flow_run_walks_the_source_as_it_submits_never_holding_every_id(tmp_path, colour_model, prefect_harness,
                                                                         monkeypatch):
    """While the first chunk runs, the walk that names the chunks has gone at most IN_FLIGHT chunks ahead:
    a list of every id (the flow's before) would have walked all 60 pictures first."""
    from flows.sort import IN_FLIGHT
    from mona_pipeline.sort.sources import FolderSource

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for index in range(60):
        (inbox / f"p{index:02d}.png").write_bytes(colour_picture((220, 20, 20), "PNG", size=(20, 20)))
    walked, seen_at_chunk = [0], []
    walk, take = FolderSource.ids, FolderSource.items_for

    def ids(self):
        for item_id in walk(self):
            walked[0] += 1
            yield item_id

    def items_for(self, item_ids):
        seen_at_chunk.append(walked[0])
        return take(self, item_ids)

    monkeypatch.setattr(FolderSource, "ids", ids)
    monkeypatch.setattr(FolderSource, "items_for", items_for)
    summary = sort_flow(str(inbox), tmp_path / "out", {"model": colour_model, "chunk_size": 5, "run": "walk"},
                        tmp_path / "no-params.yaml")
    assert summary.counts["keep"] == 60 and len(seen_at_chunk) == 12
    assert walked[0] == 60 + 60  # one walk to count, one to submit (a generator each)
    assert min(seen_at_chunk) - 60 <= (IN_FLIGHT + 1) * 5, seen_at_chunk  # the second walk: lazily, chunk by chunk


def _task_runs(flow_run_id):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        return client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))


def _logs(flow_run_id) -> list[str]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.logging.handlers import APILogHandler

    APILogHandler().flush()  # logs travel to the API in batches
    with get_client(sync_client=True) as client:
        logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
    return [log.message for log in logs]


def test_a_chunk_logs_its_start_and_its_counts(pile, tmp_path, colour_model, prefect_harness):
    state = sort_flow(str(pile), tmp_path / "out", {"model": colour_model, "chunk_size": 16, "run": "chunk-logs"},
                      tmp_path / "no-params.yaml", return_state=True)
    messages = _logs(_flow_run(state).id)
    assert any(m.startswith("chunk 1/2: 16 pictures, from ") for m in messages), messages
    done = [m for m in messages if m.startswith("chunk ") and " done: " in m]
    counts = [dict((decision, int(count)) for count, decision in (part.split(" ") for part in
              m.split(" done: ")[1].split(";")[0].split(", "))) for m in done]
    assert len(done) == 2 and sum(c["keep"] for c in counts) == 10 and sum(c["unreadable"] for c in counts) == 1


def test_a_missing_source_refuses_the_run_in_one_line_with_its_absolute_path(tmp_path, colour_model,
                                                                            prefect_harness, monkeypatch):
    monkeypatch.chdir(tmp_path)
    state = sort_flow("inbox", tmp_path / "out", {"model": colour_model}, tmp_path / "no-params.yaml",
                      return_state=True)
    assert state.is_failed() and state.name == "Refused"
    assert state.message.startswith(f"source not found: {tmp_path / 'inbox'}. Relative paths are relative to "
                                    f"{tmp_path}") and "\n" not in state.message
    messages = _logs(_flow_run(state).id)
    assert state.message in messages and not any("Traceback" in m for m in messages)


def test_a_nightly_inbox_is_made_on_its_first_run(tmp_path, colour_model, prefect_harness, monkeypatch):
    monkeypatch.chdir(tmp_path)
    summary = sort_flow("inbox", tmp_path / "out", {"model": colour_model, "action": "move"},
                        tmp_path / "no-params.yaml", create_source=True)
    assert (tmp_path / "inbox").is_dir() and summary.pictures == 0 and summary.complete
    # Only inside a folder that exists: a typo further up is refused, not made.
    state = sort_flow("typo/inbox", tmp_path / "out", {"model": colour_model}, tmp_path / "no-params.yaml",
                      create_source=True, return_state=True)
    assert state.name == "Refused" and f"source not found: {tmp_path / 'typo' / 'inbox'}" in state.message
    assert not (tmp_path / "typo").exists()


def test_sort_run_name_without_a_run_name_comes_from_source_and_action(pile, tmp_path, colour_model,
                                                                      prefect_harness):
    state = sort_flow(str(pile), tmp_path / "out", {"model": colour_model, "action": "none"},
                      tmp_path / "no-params.yaml", return_state=True)
    assert state.is_completed()
    assert _flow_run(state).name.startswith("sort pile-none-") and _flow_run(state).name.endswith(f" of {pile}")


def test_sort_flow_on_a_dask_local_cluster(pile, tmp_path, colour_model, prefect_harness):
    from prefect_dask import DaskTaskRunner

    runner = DaskTaskRunner(cluster_class="distributed.LocalCluster",
                            cluster_kwargs={"n_workers": 2, "threads_per_worker": 1, "processes": True,
                                            "dashboard_address": None})
    overrides = {"model": colour_model, "chunk_size": 8, "action": "move", "batch_size": 4}
    summary = sort_flow.with_options(task_runner=runner)(str(pile), tmp_path / "out", overrides,
                                                         tmp_path / "no-params.yaml")
    assert summary.counts == {"keep": 10, "review": 0, "drop": 20, "unreadable": 1}
    assert len(list((tmp_path / "out" / "keep").iterdir())) == 10
    assert len(list(pile.iterdir())) == 21  # the 20 dropped and the unreadable one stay
    # Chunks on worker processes are counted as they come back.
    assert float(_artifact_data(f"sort-{summary.report.split('/')[-2]}-progress")) == pytest.approx(100.0)


def test_the_run_form_has_a_plain_described_box_per_setting_and_sends_no_nulls():
    from mona_pipeline.sort import SortOverrides

    schema = sort_flow.parameters.model_dump()
    fields = schema["definitions"]["SortOverrides"]["properties"]
    # No "float or None" toggles: a number box with its range, a choice of actions; empty = params.yaml's value.
    assert fields["confidence"] == {"title": "Confidence", "type": "number", "minimum": 0.0, "maximum": 1.0,
                                    "description": fields["confidence"]["description"]}
    assert fields["action"]["enum"] == ["copy", "move", "link", "delete", "none"]
    assert all("anyOf" not in field and "default" not in field and field["description"] for field in fields.values())
    assert schema["properties"]["overrides"]["default"] == {}
    assert SortOverrides(action="move", confidence=None).model_dump(mode="json") == {"action": "move"}


def test_the_sort_artifact_shows_where_a_tile_found_the_character(tmp_path, colour_model, prefect_harness):
    from tests.test_tiling import scene

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "small.png").write_bytes(scene())  # a small red square: only a tile sees it
    (inbox / "grey.png").write_bytes(scene(square=(0, 0, 1)))
    summary = sort_flow(str(inbox), tmp_path / "out", {"model": colour_model, "run": "tiles-test"},
                        tmp_path / "no-params.yaml")
    assert summary.counts["keep"] == 1 and summary.found_in_tiles == 1
    markdown = _artifact_data("sort-tiles-test-summary")
    box = summary.found_in_tiles_sample[0]["box"]
    assert "tiling `auto`: 1 kept or review pictures found in a tile" in markdown and f"(tile {box})" in markdown


def test_the_model_cache_follows_the_models_content_not_its_path(tmp_path):
    """A long-lived worker keeps a loaded model per folder; after `dvc repro` retrains it, the next chunk must
    score with the new one."""
    import shutil

    from flows.sort import _scorer
    from tests.conftest import make_colour_model

    folder = make_colour_model(tmp_path / "models" / "target", threshold=0.9)
    first = _scorer(folder)
    assert _scorer(folder) is first  # loaded once
    retrained = make_colour_model(tmp_path / "retrained" / "target", threshold=0.6)
    shutil.rmtree(folder)
    shutil.copytree(retrained, folder)  # the same path, other content
    second = _scorer(folder)
    assert second is not first and second.trained.metadata.threshold == 0.6


def test_a_tar_gz_is_read_once_whatever_the_chunking(tmp_path, colour_model, prefect_harness, monkeypatch):
    """A streamed archive cannot be read out of order: every chunk re-reading it from the start read a
    20 GB .tar.gz about once per chunk. Now it is sorted as one stream: the archive's bytes read once."""
    import io
    import tarfile

    from mona_pipeline.sort import archives

    import numpy as np
    from PIL import Image

    archive = tmp_path / "pile.tar.gz"
    noise = np.random.default_rng(0).integers(0, 40, (120, 120, 3), dtype=np.uint8)  # megabytes: opening is small
    with tarfile.open(archive, "w:gz") as tar:
        for index in range(40):
            buffer = io.BytesIO()
            Image.fromarray(noise + np.uint8(180 if index % 2 else 0) * np.array([1, 0, 0], np.uint8)).save(buffer, "PNG")
            data = buffer.getvalue()
            member = tarfile.TarInfo(f"p{index:02d}.png")
            member.size = len(data)
            tar.addfile(member, io.BytesIO(data))
    read = [0]

    class Counting(io.FileIO):
        def read(self, size=-1):
            data = super().read(size)
            read[0] += len(data)
            return data

        def readinto(self, buffer):
            count = super().readinto(buffer)
            read[0] += count or 0
            return count

    opened = tarfile.open
    monkeypatch.setattr(archives.tarfile, "open", lambda name, mode="r", **kw: opened(
        fileobj=Counting(name, "rb"), mode=mode, **kw))
    summary = sort_flow(str(archive), tmp_path / "out", {"model": colour_model, "chunk_size": 5, "run": "tar"},
                        tmp_path / "no-params.yaml")
    assert summary.pictures == 40 and summary.counts["keep"] == 20
    assert read[0] <= 1.05 * archive.stat().st_size, (read[0], archive.stat().st_size)  # before: about 9x


def test_chunks_are_planned_without_holding_every_id(tmp_path):
    """The flow walks a source once to count and once as it submits: no list of every id (a folder of
    millions would be gigabytes in the flow's process)."""
    from flows.sort import plan_chunks

    class Counting:
        streamed, produced = False, 0

        def ids(self):
            for index in range(100):
                Counting.produced += 1
                yield f"p{index}"

    source = Counting()
    chunks, pictures, total = plan_chunks(source, 8)
    assert (pictures, total) == (100, 13)
    Counting.produced = 0
    first = next(chunks)
    assert first == [f"p{i}" for i in range(8)] and Counting.produced <= 9  # taken as the chunks are taken
