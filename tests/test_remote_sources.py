"""Sorts from an object store, run as a user runs them: `mona sort s3://...` against a local S3 server.

moto's server (the test extra) stands in for S3 on 127.0.0.1; the sort reads through
tensorflow-io's S3 file system, configured by the same variables a user sets
(S3_ENDPOINT, S3_USE_HTTPS, AWS_*). Tested remote kind: s3://. gs://, az://, hdfs://
and http(s):// go through the same RemoteSource and tf.io.gfile, but have no local
server here and are documented only.
"""

import pytest

from tests.conftest import colour_picture
from tests.servers import BIN, free_port, http_ok, quiet_environment, run, start_process

pytestmark = pytest.mark.server

PICTURES = 40  # every fourth one red (kept), the rest blue (dropped)


@pytest.fixture(scope="module")
def s3_environment(tmp_path_factory) -> dict[str, str]:
    """A moto S3 server with s3://pics/inbox/{a,b}/pNN.jpg; yields the environment a sort needs."""
    import boto3

    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    credentials = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_REGION": "us-east-1"}
    command = [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)]
    with start_process(command, http_ok(f"{endpoint}/moto-api/"), quiet_environment(**credentials)):
        client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="test",
                              aws_secret_access_key="test", region_name="us-east-1")
        client.create_bucket(Bucket="pics")
        for index in range(PICTURES):
            colour = (220, 20, 20) if index % 4 == 0 else (20, 20, 220)
            client.put_object(Bucket="pics", Key=f"inbox/{'ab'[index % 2]}/p{index:02d}.jpg",
                              Body=colour_picture(colour, size=(40 + index, 40)))
        client.put_object(Bucket="pics", Key="inbox/notes.txt", Body=b"not a picture")
        yield quiet_environment(S3_ENDPOINT=endpoint, S3_USE_HTTPS="0", S3_VERIFY_SSL="0",
                                AWS_EC2_METADATA_DISABLED="true", **credentials)


def test_mona_sort_from_s3_sorts_everything_and_exits_cleanly(s3_environment, colour_model, tmp_path):
    out = tmp_path / "out"
    result = run([str(BIN / "mona"), "sort", "s3://pics/inbox", "--out", str(out), "--model", str(colour_model),
                  "--quiet"], s3_environment, cwd=tmp_path)

    # Exit code 0: tensorflow-io's S3 file system used to abort the process at exit
    # ("pure virtual method called", 134) after the sort had finished.
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    assert "pure virtual method" not in result.stderr
    assert f"{PICTURES} pictures: 10 keep, 0 review, 30 drop" in result.stdout
    kept = sorted(path.relative_to(out / "keep").as_posix() for path in (out / "keep").rglob("*.jpg"))
    assert kept == [f"{'ab'[index % 2]}/p{index:02d}.jpg" for index in range(0, PICTURES, 4)]


def test_the_sort_flow_from_s3_sorts_everything_and_exits_cleanly(s3_environment, colour_model, tmp_path):
    environment = dict(s3_environment, PREFECT_HOME=str(tmp_path / "prefect-home"))
    environment.pop("PREFECT_API_URL", None)
    out = tmp_path / "out"
    result = run([str(BIN / "python"), "-m", "flows.sort", "s3://pics/inbox", "--out", str(out),
                  "--model", str(colour_model)], environment, timeout=240, cwd=tmp_path)

    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    # The flow lists the source before anything imports tensorflow_io: it once found 0 pictures, "Completed".
    assert "'keep': 10, 'review': 0, 'drop': 30" in result.stdout
    assert len(list((out / "keep").rglob("*.jpg"))) == 10
    assert "Error logging to API" not in result.stderr


def test_a_bucket_that_cannot_be_listed_is_an_error_not_an_empty_sort(s3_environment, colour_model, tmp_path):
    result = run([str(BIN / "mona"), "sort", "s3://no-such-bucket/inbox", "--out", str(tmp_path / "out"),
                  "--model", str(colour_model), "--quiet"], s3_environment, cwd=tmp_path)

    assert result.returncode == 1, result.stdout + result.stderr[-2000:]  # the sort's "not finished"
    assert "s3://no-such-bucket/inbox: no such folder, or it cannot be listed" in result.stdout + result.stderr


REMOTE_CAP = """
import os, sys
from mona_pipeline.sort import reading, remote
reading.MAX_PICTURE_BYTES = 2000  # the 256 MiB limit, scaled down to this test's object
try:
    remote._gfile_reader("s3://pics/big/huge.jpg")()
    print("read it all")
except reading.Unreadable as error:
    print("refused:", error)
sys.stdout.flush()
os._exit(0)  # tensorflow-io's S3 file system would abort the process at exit
"""


def test_a_huge_remote_object_is_refused_before_it_is_read(s3_environment):
    """Remote reads are capped like local ones: the object's size is asked first."""
    import boto3

    client = boto3.client("s3", endpoint_url=s3_environment["S3_ENDPOINT"], aws_access_key_id="test",
                          aws_secret_access_key="test", region_name="us-east-1")
    client.put_object(Bucket="pics", Key="big/huge.jpg", Body=colour_picture((220, 20, 20)) + bytes(10_000))
    result = run([str(BIN / "python"), "-c", REMOTE_CAP], s3_environment, timeout=120)
    assert "refused: too large:" in result.stdout and "> limit 2000" in result.stdout, result.stdout + result.stderr
