"""Crash safety (design.md section 6): kill -9 the server in the middle of a 256 MiB upload that overwrites an existing
object; after a restart on the same data dir the old object is intact (bytes and ETag), nothing partial is visible,
and the start-up pass leaves no temp file and exactly the one blob the old object references.

And kill -9 in the middle of many concurrent small PUTs (group commit: several PUTs share one metadata commit; inline
objects: small bodies live in the metadata store, committed with their record): every acknowledged PUT survives, every
key holds one whole body (the last acknowledged one, or the one in flight at the kill), and no blob file is left that
no object references.

On-disk contract used here: temp files under DATA/tmp/, blob files under DATA/blobs/ (any depth); objects whose
stored bytes are at most 16 KiB have no blob file.
"""

import hashlib
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


SMALL_KEYS = 32
WRITERS = 8
MIN_ACKS = 300


def small_body(key: str, gen: int) -> bytes:
    """A body that names its key and generation, so a survivor tells which PUT wrote it. Every fourth key alternates
    between inline sizes and a 40 KB body (a blob file), so inline objects replace files and files replace them."""
    head = f"{key}:{gen}:".encode()
    index = int(key.rsplit("-", 1)[1])
    size = 40_000 if index % 4 == 0 and gen % 2 == 1 else 100 + (index * 997 + gen * 131) % 12_000
    filler = hashlib.sha256(head).digest() * (size // 32 + 1)
    return (head + filler)[:size]


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["plain", "ssec"])
def test_kill9_during_concurrent_small_puts(start_server, mode):
    srv = start_server(name=f"crash-small-{mode}")
    bucket = unique_bucket(f"crash-small-{mode}")
    srv.client().create_bucket(Bucket=bucket)
    enc = ssec_params(secrets.token_bytes(32)) if mode == "ssec" else {}
    keys = [f"small-{i}" for i in range(SMALL_KEYS)]
    acked = {}      # key -> generation of its last acknowledged PUT
    inflight = {}   # key -> generation of the PUT sent and not (yet) acknowledged
    lock = threading.Lock()
    setup = srv.client()
    for k in keys:
        setup.put_object(Bucket=bucket, Key=k, Body=small_body(k, 0), **enc)
        acked[k] = 0
    stop = threading.Event()

    def writer(w: int):
        s3 = srv.client(read_timeout=60)
        mine = keys[w::WRITERS]
        gen = 0
        while not stop.is_set():
            gen += 1
            for k in mine:
                with lock:
                    inflight[k] = gen
                try:
                    s3.put_object(Bucket=bucket, Key=k, Body=small_body(k, gen), **enc)
                except Exception:  # the server is gone
                    return
                with lock:
                    acked[k] = gen
                    del inflight[k]

    threads = [threading.Thread(target=writer, args=(w,), daemon=True) for w in range(WRITERS)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        with lock:
            done = sum(acked.values())
        if done >= MIN_ACKS:
            break
        time.sleep(0.05)
    srv.kill()
    stop.set()
    for t in threads:
        t.join(60)
    with lock:
        acked_at_kill, inflight_at_kill = dict(acked), dict(inflight)
    assert sum(acked_at_kill.values()) >= MIN_ACKS, f"only {sum(acked_at_kill.values())} PUTs acknowledged in 120 s"
    print(f"killed with {sum(acked_at_kill.values())} PUTs acknowledged and {len(inflight_at_kill)} in flight")

    srv.start()
    s3 = srv.client()
    expected_files = 0
    sizes = {}
    for k in keys:
        got = s3.get_object(Bucket=bucket, Key=k, **enc)
        data = got["Body"].read()
        allowed = {acked_at_kill[k]} | ({inflight_at_kill[k]} if k in inflight_at_kill else set())
        gen = int(data.split(b":", 2)[1]) if data.startswith(k.encode() + b":") else None
        assert gen in allowed, f"{k}: holds generation {gen}, expected one of {sorted(allowed)}"
        assert data == small_body(k, gen), f"{k}: generation {gen} is not whole"
        assert got["ContentLength"] == len(data)
        if not enc:
            assert got["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'
        sizes[k] = len(data)
        expected_files += len(data) > 16 * 1024
    listed = s3.list_objects_v2(Bucket=bucket).get("Contents", [])
    assert {o["Key"]: o["Size"] for o in listed} == sizes

    # The start-up pass left no temp file, and no blob file that no object references (an inline object that replaced
    # a file, committed just before the kill, leaves the file to it).
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if not tree_files(srv.data_dir / "tmp") and len(blob_files(srv)) == expected_files:
            break
        time.sleep(0.2)
    assert tree_files(srv.data_dir / "tmp") == []
    assert len(blob_files(srv)) == expected_files, (
        f"{len(blob_files(srv))} blob files for {expected_files} file-backed objects")

    # And writes go on: an overwrite and a delete of an inline object.
    s3.put_object(Bucket=bucket, Key=keys[1], Body=b"after the crash", **enc)
    assert s3.get_object(Bucket=bucket, Key=keys[1], **enc)["Body"].read() == b"after the crash"
    s3.delete_object(Bucket=bucket, Key=keys[1])
    assert len(s3.list_objects_v2(Bucket=bucket).get("Contents", [])) == SMALL_KEYS - 1
