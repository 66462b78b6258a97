"""Crash safety (design.md section 6): kill -9 the server in the middle of a 256 MiB upload that overwrites an existing
object; after a restart on the same data dir the old object is intact (bytes and ETag), nothing partial is visible,
and the start-up pass leaves no temp file and exactly the one blob the old object references.

On-disk contract used here: temp files under DATA/tmp/, blob files under DATA/blobs/ (any depth).
"""

import io
import secrets
import threading
import time

import pytest

from conftest import md5_b64, ssec_params, tree_files, unique_bucket

MiB = 1024 * 1024
BIG = 256 * MiB
KILL_AT_TMP = 64 * MiB      # kill once this much has reached the temp file...
KILL_AT_SENT = 192 * MiB    # ...or, failing that, once the client has sent this much


class CountingFile(io.FileIO):
    """A file whose reads are counted, so the test knows how far the upload got."""

    def __init__(self, path):
        super().__init__(path, "rb")
        self.sent = 0

    def read(self, size=-1):
        chunk = super().read(size)
        self.sent += len(chunk)
        return chunk


@pytest.fixture(scope="module")
def big_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("crash-src") / "big.bin"
    block = secrets.token_bytes(MiB)
    with open(path, "wb") as f:
        for i in range(BIG // MiB):
            f.write(i.to_bytes(8, "big") + block[8:])
    return path


def tmp_bytes(srv) -> int:
    total = 0
    for p in tree_files(srv.data_dir / "tmp"):
        try:
            total += p.stat().st_size
        except FileNotFoundError:
            pass
    return total


def blob_files(srv):
    return tree_files(srv.data_dir / "blobs")


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["plain", "ssec"])
def test_kill9_during_overwrite_keeps_old_object(start_server, big_file, mode):
    srv = start_server(name=f"crash-{mode}")
    s3 = srv.client(read_timeout=600)
    bucket = unique_bucket(f"crash-{mode}")
    s3.create_bucket(Bucket=bucket)
    enc = ssec_params(secrets.token_bytes(32)) if mode == "ssec" else {}
    old = secrets.token_bytes(300_000)
    old_etag = s3.put_object(Bucket=bucket, Key="victim", Body=old, **enc)["ETag"]
    assert len(blob_files(srv)) == 1, f"one PUT should make one blob file: {blob_files(srv)}"

    body = CountingFile(big_file)
    outcome = {}

    def upload():
        try:
            outcome["result"] = s3.put_object(Bucket=bucket, Key="victim", Body=body, **enc)
        except Exception as e:  # the connection dies with the server
            outcome["error"] = e

    t = threading.Thread(target=upload, daemon=True)
    t.start()
    deadline = time.monotonic() + 300
    seen_tmp = 0
    while time.monotonic() < deadline and t.is_alive():
        seen_tmp = max(seen_tmp, tmp_bytes(srv))
        if seen_tmp >= KILL_AT_TMP or body.sent >= KILL_AT_SENT:
            break
        time.sleep(0.02)
    assert t.is_alive(), f"the 256 MiB upload ended before the kill: {outcome}"
    sent_at_kill = body.sent
    srv.kill()
    t.join(120)
    body.close()
    assert "result" not in outcome, "the upload cannot have succeeded: the server was killed mid-body"
    assert 0 < sent_at_kill < BIG
    print(f"killed after {sent_at_kill // MiB} MiB sent, {seen_tmp // MiB} MiB seen in DATA/tmp")

    srv.start()  # same data dir, fresh process
    s3_after = srv.client()
    got = s3_after.get_object(Bucket=bucket, Key="victim", **enc)
    assert got["Body"].read() == old, "the old object is not intact after the crash"
    assert got["ETag"] == old_etag
    assert got["ContentLength"] == len(old)
    head = s3_after.head_object(Bucket=bucket, Key="victim", **enc)
    assert head["ContentLength"] == len(old) and head["ETag"] == old_etag
    if enc:
        assert head["SSECustomerKeyMD5"] == md5_b64(enc["SSECustomerKey"])
    listed = s3_after.list_objects_v2(Bucket=bucket).get("Contents", [])
    assert [(o["Key"], o["Size"], o["ETag"]) for o in listed] == [("victim", len(old), old_etag)]

    # the start-up pass: no temp file, only the blob the old object references
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if not tree_files(srv.data_dir / "tmp") and len(blob_files(srv)) == 1:
            break
        time.sleep(0.2)
    assert tree_files(srv.data_dir / "tmp") == [], "temp files survived the start-up pass"
    assert len(blob_files(srv)) == 1, f"orphan blobs survived the start-up pass: {blob_files(srv)}"

    # the server streamed the body to DATA/tmp (not into memory) before it was killed
    assert seen_tmp > 0, (f"nothing appeared under {srv.data_dir / 'tmp'} while {sent_at_kill // MiB} MiB were "
                          "sent: is the upload buffered in memory, or written elsewhere?")

    # and it keeps working: a new overwrite commits and reads back
    s3_after.put_object(Bucket=bucket, Key="victim", Body=b"after the crash", **enc)
    assert s3_after.get_object(Bucket=bucket, Key="victim", **enc)["Body"].read() == b"after the crash"
