"""`coffer dev populate` (crates/coffer/src/dev_cli.rs, issue 6 "scale with data"): zero-byte objects written straight
into the metadata store of a stopped server must behave, once the server runs on that data dir, exactly like zero-byte
objects PUT through the API: GET, HEAD, ?partNumber=1, ListObjectsV2 (paging, start-after, prefix, folders rolled
up by a delimiter), CopyObject, overwrite and DELETE. The tool must refuse a data dir a running server holds.
"""

from __future__ import annotations

import hashlib
import subprocess

import pytest

from conftest import CofferServer, coffer_bin

EMPTY_ETAG = '"' + hashlib.md5(b"").hexdigest() + '"'
COUNT = 2500


def populate(data_dir, *args, check=True) -> subprocess.CompletedProcess:
    res = subprocess.run([str(coffer_bin()), "dev", "populate", "--data-dir", str(data_dir), *map(str, args)],
                         capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    if check:
        assert res.returncode == 0, f"exit {res.returncode}\nstdout: {res.stdout}\nstderr: {res.stderr}"
    return res


@pytest.fixture(scope="module")
def populated(tmp_path_factory):
    """A server started on a data dir populated with COUNT objects pop/00000000... in bucket `pop`."""
    srv = CofferServer(tmp_path_factory.mktemp("populated"))
    res = populate(srv.data_dir, "--bucket", "pop", "--count", COUNT, "--prefix", "pop/", "--batch", 1000)
    assert f"populated {COUNT} zero-byte objects pop/00000000..pop/00002499 in bucket pop (created)" in res.stdout
    res = populate(srv.data_dir, "--bucket", "dirs", "--count", COUNT, "--prefix", "d/", "--per-folder", 7)
    assert "d/00000000/00000000..d/00000357/00002499 in bucket dirs (created)" in res.stdout
    srv.start()
    yield srv
    srv.stop()


def test_get_and_head_of_a_populated_object(populated):
    s3 = populated.client()
    got = s3.get_object(Bucket="pop", Key="pop/00001234")
    assert got["Body"].read() == b""
    assert got["ContentLength"] == 0
    assert got["ETag"] == EMPTY_ETAG
    assert got["ContentType"] == "application/octet-stream"
    head = s3.head_object(Bucket="pop", Key="pop/00000000")
    assert head["ContentLength"] == 0 and head["ETag"] == EMPTY_ETAG
    part = s3.get_object(Bucket="pop", Key="pop/00002499", PartNumber=1)
    assert part["Body"].read() == b"" and part["ResponseMetadata"]["HTTPStatusCode"] == 200
    # Raw request: the exact headers a zero-byte object answers with.
    resp = populated.request("GET", "pop", "pop/00000007")
    assert resp.status_code == 200 and resp.content == b""
    assert resp.headers["Content-Length"] == "0" and resp.headers["ETag"] == EMPTY_ETAG


def test_populated_objects_match_one_put_through_the_api(populated):
    s3 = populated.client()
    s3.put_object(Bucket="pop", Key="api/empty", Body=b"", ContentType="application/octet-stream")
    api = s3.head_object(Bucket="pop", Key="api/empty")
    pop = s3.head_object(Bucket="pop", Key="pop/00000001")
    for field in ("ContentLength", "ETag", "ContentType"):
        assert api[field] == pop[field], field
    s3.delete_object(Bucket="pop", Key="api/empty")


def test_list_pages_start_after_and_prefix(populated):
    s3 = populated.client()
    keys = []
    kwargs = {"Bucket": "pop", "Prefix": "pop/", "MaxKeys": 1000}
    while True:
        page = s3.list_objects_v2(**kwargs)
        keys += [o["Key"] for o in page["Contents"]]
        assert all(o["Size"] == 0 and o["ETag"] == EMPTY_ETAG for o in page["Contents"])
        if not page["IsTruncated"]:
            break
        kwargs["ContinuationToken"] = page["NextContinuationToken"]
    assert keys == [f"pop/{i:08d}" for i in range(COUNT)]
    page = s3.list_objects_v2(Bucket="pop", StartAfter="pop/00001249", MaxKeys=1000)
    assert page["KeyCount"] == 1000
    assert page["Contents"][0]["Key"] == "pop/00001250" and page["Contents"][-1]["Key"] == "pop/00002249"
    page = s3.list_objects_v2(Bucket="pop", Prefix="pop/00001")
    assert page["KeyCount"] == 1000 and not page["IsTruncated"]
    assert page["Contents"][0]["Key"] == "pop/00001000" and page["Contents"][-1]["Key"] == "pop/00001999"


def test_list_folders_with_a_delimiter(populated):
    """Common prefixes of many keys each, paged: one entry per folder, every folder once, in order."""
    s3 = populated.client()
    folders, kwargs = [], {"Bucket": "dirs", "Prefix": "d/", "Delimiter": "/", "MaxKeys": 100}
    while True:
        page = s3.list_objects_v2(**kwargs)
        assert "Contents" not in page
        folders += [p["Prefix"] for p in page["CommonPrefixes"]]
        assert page["KeyCount"] == len(page["CommonPrefixes"])
        if not page["IsTruncated"]:
            break
        kwargs["ContinuationToken"] = page["NextContinuationToken"]
    assert folders == [f"d/{f:08d}/" for f in range(358)]
    inside = s3.list_objects_v2(Bucket="dirs", Prefix="d/00000100/", Delimiter="/")
    assert [o["Key"] for o in inside["Contents"]] == [f"d/00000100/{i:08d}" for i in range(700, 707)]
    # start-after inside a folder: the rest of that folder still rolls up into its common prefix (as on AWS).
    page = s3.list_objects_v2(Bucket="dirs", Prefix="d/", Delimiter="/", StartAfter="d/00000005/00000037",
                              MaxKeys=3)
    assert "Contents" not in page and page["IsTruncated"]
    assert [p["Prefix"] for p in page["CommonPrefixes"]] == ["d/00000005/", "d/00000006/", "d/00000007/"]
    # V1 with a marker that is itself a common prefix skips that folder.
    v1 = s3.list_objects(Bucket="dirs", Prefix="d/", Delimiter="/", Marker="d/00000356/")
    assert [p["Prefix"] for p in v1["CommonPrefixes"]] == ["d/00000357/"] and not v1["IsTruncated"]


def test_copy_overwrite_and_delete(populated):
    s3 = populated.client()
    s3.copy_object(Bucket="pop", Key="copies/a", CopySource={"Bucket": "pop", "Key": "pop/00000010"})
    copy = s3.get_object(Bucket="pop", Key="copies/a")
    assert copy["Body"].read() == b"" and copy["ETag"] == EMPTY_ETAG
    s3.put_object(Bucket="pop", Key="pop/00000011", Body=b"now with data")
    assert s3.get_object(Bucket="pop", Key="pop/00000011")["Body"].read() == b"now with data"
    assert s3.delete_object(Bucket="pop", Key="pop/00000012")["ResponseMetadata"]["HTTPStatusCode"] == 204
    resp = populated.request("GET", "pop", "pop/00000012")
    assert resp.status_code == 404
    assert b"<Code>NoSuchKey</Code>" in resp.content
    page = s3.list_objects_v2(Bucket="pop", Prefix="pop/0000001", MaxKeys=20)
    assert [o["Key"] for o in page["Contents"]] == [f"pop/{i:08d}" for i in range(10, 20) if i != 12]
    assert [o["Size"] for o in page["Contents"]][1] == len(b"now with data")


def test_refuses_a_data_dir_a_server_holds(populated):
    res = populate(populated.data_dir, "--bucket", "pop", "--count", 1, "--prefix", "late/", check=False)
    assert res.returncode == 1
    assert "cannot open the store" in res.stderr and "is a server running on it?" in res.stderr
    assert populated.client().list_objects_v2(Bucket="pop", Prefix="late/")["KeyCount"] == 0


def test_populating_an_existing_bucket_after_a_restart(tmp_path_factory):
    srv = CofferServer(tmp_path_factory.mktemp("repopulate"))
    srv.start()
    s3 = srv.client()
    s3.create_bucket(Bucket="mine")
    s3.put_object(Bucket="mine", Key="p/00000001", Body=b"real data")
    srv.stop()
    res = populate(srv.data_dir, "--bucket", "mine", "--count", 3, "--prefix", "p/")
    assert "(1 replaced)" in res.stdout and "(created)" not in res.stdout
    srv.start()
    try:
        s3 = srv.client()
        page = s3.list_objects_v2(Bucket="mine")
        assert [(o["Key"], o["Size"]) for o in page["Contents"]] == [(f"p/{i:08d}", 0) for i in range(3)]
        # The replaced object's blob went with it, as after an overwrite through the API.
        blobs = [p for p in (srv.data_dir / "blobs").rglob("*") if p.is_file()]
        assert blobs == []
    finally:
        srv.stop()


def test_bad_arguments(tmp_path):
    res = populate(tmp_path / "d", "--bucket", "Bad_Name", "--count", 1, check=False)
    assert res.returncode == 1 and "not a valid bucket name" in res.stderr
    res = populate(tmp_path / "d", "--bucket", "ok-name", "--count", 1, "--batch", 0, check=False)
    assert res.returncode == 1 and "--batch" in res.stderr
