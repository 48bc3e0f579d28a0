"""Remote folders through TensorFlow's file systems (s3://, gs://, hdfs://, az://, http(s)://), and the
end of a process that used tensorflow-io's S3 file system.

    source = open_source("s3://bucket/folder")
"""

from __future__ import annotations

import atexit
import os
import sys
from typing import Callable, Iterator

from mona_pipeline.sort.reading import Item, Skips, Source, SourceError, is_picture_name, read_bounded, safe_relative

# tensorflow-io 0.37.1's S3 file system aborts the process at exit, after all work is done
# ("pure virtual method called", exit code 134): the AWS SDK's metadata client is destroyed after
# its log system (tensorflow/io#2039, no release fixes it). Such a process ends through `exit_process`.
_ABORTS_AT_EXIT = ("s3://",)
_aborting_file_system_used = False


class RemoteSource(Source):
    """A remote folder through tf.io.gfile (s3://, gs://, hdfs://, az://, http(s)://...)."""

    def __init__(self, url: str):
        global _aborting_file_system_used
        super().__init__()
        self.url = url.rstrip("/")
        _aborting_file_system_used |= self.url.startswith(_ABORTS_AT_EXIT)

    def items(self) -> Iterator[Item]:
        gfile = _gfile()
        if not gfile.isdir(self.url):  # a walk of what cannot be listed finds nothing, without a word
            raise SourceError(f"{self.url}: no such folder, or it cannot be listed (for s3:// check the bucket, "
                              f"S3_ENDPOINT and the AWS_* credentials)")
        self.skips.clear()
        for directory, _, files in gfile.walk(self.url):
            for name in sorted(files):
                if not is_picture_name(name):
                    self.skips.add(Skips.NOT_A_PICTURE_NAME)
                    continue
                url = f"{directory.rstrip('/')}/{name}"
                relative = url[len(self.url):].lstrip("/")
                yield Item(relative, safe_relative(relative).as_posix(), url, _gfile_reader(url))


    def items_for(self, item_ids: list[str]) -> Iterator[Item]:
        for item_id in item_ids:
            url = f"{self.url}/{item_id}"
            yield Item(item_id, safe_relative(item_id).as_posix(), url, _gfile_reader(url))


def _gfile():
    """tf.io.gfile with tensorflow-io's file systems (s3://, az://, hdfs://, http(s)://) registered: until
    tensorflow_io is imported, TensorFlow does not know those schemes."""
    import tensorflow as tf
    import tensorflow_io  # noqa: F401  (registers its file systems with tf.io.gfile)

    return tf.io.gfile


def _gfile_reader(url: str) -> Callable[[], bytes]:
    """Read a remote picture bounded like a local one: its size is asked first, a huge object is refused
    before any of it is read, and content that does not start like a picture after its first bytes."""
    def read() -> bytes:
        gfile = _gfile()
        size = gfile.stat(url).length
        with gfile.GFile(url, "rb") as handle:
            return read_bounded(handle, size)
    return read


def exit_process(code: int) -> int:
    """Return `code`; but in a process that used tensorflow-io's S3 file system, end it here with `code`.

    Python's own exit work runs first (atexit handlers: Prefect's log flush and temporary API server,
    then logging's shutdown); only the C++ static teardown that would abort with exit code 134 is skipped.
    """
    if not _aborting_file_system_used:
        return code
    atexit._run_exitfuncs()  # no public API runs the exit handlers before os._exit skips the C++ teardown
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
