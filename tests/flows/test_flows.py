"""The Prefect flows, run for real against a temporary Prefect API (prefect_test_harness)."""

from flows.ingest import ingest_flow
from flows.shards import shards_flow
from mona_pipeline import demo
from tests.conftest import tiny_params, write_params


def _artifact_data(key: str) -> str:
    """The newest artifact's data. Read over REST with a full filter body: prefect 3.8.8's own
    client sends null for fields its server rejects (422), so Artifact.get cannot be used."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        response = client._client.post("/artifacts/filter", json={
            "artifacts": {"key": {"any_": [key]}}, "sort": "CREATED_DESC", "limit": 1, "offset": 0})
        response.raise_for_status()
        found = response.json()
    assert found, f"no artifact {key!r}"
    return found[0]["data"]


def test_ingest_and_shards_flows_run_and_publish_artifacts(tmp_path, prefect_harness):
    params = tiny_params(tmp_path)
    demo.generate_raw(params.demo.model_copy(update={"pictures_per_character": 2, "target_pictures": 3}),
                      params.data.raw_dir)
    (params.data.raw_dir / "mona" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really")
    params_file = write_params(tmp_path / "params.yaml", params)
    summary = ingest_flow(params_file)
    assert summary["pictures"] == 11 * 2 + 3 and summary["rejected"] == 1
    assert summary["rejects"]["mona/broken.jpg"].startswith(("truncated", "corrupt"))
    index = shards_flow(params_file)
    # every picture once, plus the tile negatives (shards.tile_negatives per "others" training picture)
    assert index["tiles"]["train"] > 0
    assert sum(e["pictures"] for e in index["shards"]) == summary["pictures"] + sum(index["tiles"].values())
    assert "broken.jpg" in _artifact_data("ingest-summary")
    assert "train-00000" in _artifact_data("shards-index")
