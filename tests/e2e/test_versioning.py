"""Bucket versioning with a key per version (issue 4) against a real coffer process, through boto3 and the aws CLI.

- Get/PutBucketVersioning: never-enabled buckets report no Status; Enabled; Suspended.
- Three versions of one key under three SSE-C keys: each version (GET, HEAD, ranges) only with its own key, any other
  key 403 AccessDenied (never 400); `x-amz-version-id` on every response that concerns a version.
- The `null` version as AWS documents it: objects written before versioning was ever enabled are `null`; with
  Suspended a PUT replaces the `null` version (its blob is gone), non-null versions stay; DELETE without version id on
  a Suspended bucket makes a `null` delete marker; re-enabling keeps everything.
- Delete markers: DELETE without versionId -> marker; GET of the key 404 NoSuchKey + `x-amz-delete-marker: true`;
  GET/HEAD of the marker by versionId 405 MethodNotAllowed; deleting the marker brings the previous version back;
  deleting a version is for good (404 NoSuchVersion); ListObjects/ListObjectsV2 show current keys only.
- CopyObject and UploadPartCopy from an older version; GetObject/HeadObject partNumber on a version of a multipart
  object; key rotation by in-place copy makes a new version under the new key and the old one keeps the old key.
- ListObjectVersions: prefix, delimiter, key-marker, version-id-marker, max-keys, IsLatest, delete markers, plaintext
  sizes, document order; a paginated listing over ~3000 versions compared with an in-memory model for max-keys 1, 7
  and 1000; DeleteObjects with version ids.
- DeleteBucket needs every version and marker gone (409 BucketNotEmpty); deleted versions' blobs are removed.
- kill -9 during a 256 MiB PUT of a versioned key: the acknowledged versions survive, no half version, no temp file.

On-disk contract used here (as in test_crash.py): temp files under DATA/tmp/, one blob file per single-PUT version under
DATA/blobs/ (any depth); delete markers have no blob.
"""

from __future__ import annotations

import io
import json
import random
import secrets
import threading
import time
from collections import namedtuple
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import (assert_client_error, assert_s3_error, describe, md5_b64, ssec_headers,
                      ssec_params, tree_files, unique_bucket, xml_root)

KiB = 1024
MiB = 1024 * KiB

# One row of ListObjectVersions: a version (marker False, size/etag set) or a delete marker (marker True).
Entry = namedtuple("Entry", "key vid marker size etag")


# ------------------------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------------------------

def enable(s3, bucket):
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})


def suspend(s3, bucket):
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Suspended"})


def hdrs(resp_or_err) -> dict:
    """The HTTP response headers of a boto3 response dict or ClientError (lower-case names)."""
    resp = resp_or_err.response if hasattr(resp_or_err, "response") else resp_or_err
    return resp.get("ResponseMetadata", {}).get("HTTPHeaders", {})


def status_of(e) -> int:
    return e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")


def blob_count(srv) -> int:
    return len(tree_files(srv.data_dir / "blobs"))


def wait_blob_count(srv, want: int, timeout: float = 10.0) -> int:
    deadline = time.monotonic() + timeout
    while True:
        n = blob_count(srv)
        if n == want or time.monotonic() > deadline:
            return n
        time.sleep(0.1)


def listing(s3, bucket, **kw) -> list[tuple]:
    """Every row of ListObjectVersions (one page), versions and markers merged in model order (key asc, then the
    order the server gave within each kind). Prefer raw_listing() where the interleaving matters."""
    r = s3.list_object_versions(Bucket=bucket, **kw)
    assert not r.get("IsTruncated"), r
    return rows_of(r)


def rows_of(r) -> list[tuple]:
    rows = [("V", v["Key"], v["VersionId"], v["IsLatest"], v["Size"], v["ETag"]) for v in r.get("Versions", [])]
    rows += [("D", d["Key"], d["VersionId"], d["IsLatest"], None, None) for d in r.get("DeleteMarkers", [])]
    return rows


def raw_listing(srv, bucket, query=None) -> tuple[list[tuple], object]:
    """ListObjectVersions as raw XML, rows in document order (Version and DeleteMarker interleaved)."""
    q = {"versions": None}
    q.update(query or {})
    resp = srv.request("GET", bucket, query=q)
    assert resp.status_code == 200, describe(resp)
    root = xml_root(resp.content)
    assert root.tag == "ListVersionsResult", describe(resp)
    rows = []
    for el in root:
        if el.tag == "Version":
            rows.append(("V", el.findtext("Key"), el.findtext("VersionId"), el.findtext("IsLatest") == "true",
                         int(el.findtext("Size")), el.findtext("ETag")))
        elif el.tag == "DeleteMarker":
            assert el.find("Size") is None, f"a delete marker has no Size: {resp.content!r}"
            rows.append(("D", el.findtext("Key"), el.findtext("VersionId"), el.findtext("IsLatest") == "true",
                         None, None))
    return rows, root


def model_rows(history: dict[str, list[Entry]], prefix: str = "") -> list[tuple]:
    """What ListObjectVersions must list: keys in ascending (UTF-8 byte) order, each key's versions newest first,
    the newest one IsLatest."""
    rows = []
    for key in sorted(history, key=lambda k: k.encode()):
        if not key.startswith(prefix):
            continue
        for i, e in enumerate(reversed(history[key])):
            rows.append(("D" if e.marker else "V", key, e.vid, i == 0, e.size, e.etag))
    return rows


class Checks:
    """Checks of response fields whose failure must not hide the rest of a test's findings; `done()` fails the
    test with every one that did not hold."""

    def __init__(self):
        self.failed: list[str] = []

    def __call__(self, cond, msg):
        if not cond:
            self.failed.append(str(msg))
        return cond

    def done(self):
        assert not self.failed, f"{len(self.failed)} check(s) failed:\n- " + "\n- ".join(self.failed)


def G(rows):
    """Rows grouped by kind (versions, then delete markers), each kind in its own order: what boto3 sees, and what
    the tests compare unless the interleaving itself is under test (test_list_versions_document_order)."""
    return sort_kinds_flat(rows)


def sort_kinds_flat(rows):
    v, d = sort_kinds(rows)
    return v + d


def sort_kinds(rows):
    """Rows of a page split by kind, each kind in its order (boto3 separates Versions from DeleteMarkers)."""
    return [r for r in rows if r[0] == "V"], [r for r in rows if r[0] == "D"]


def get_bytes(s3, bucket, key, key_bytes=None, **kw):
    enc = ssec_params(key_bytes) if key_bytes is not None else {}
    r = s3.get_object(Bucket=bucket, Key=key, **enc, **kw)
    return r, r["Body"].read()


def write_key(tmp_path, name, raw: bytes):
    p = tmp_path / name
    p.write_bytes(raw)
    return f"fileb://{p}"


# ------------------------------------------------------------------------------------------------------------------
# Get/PutBucketVersioning
# ------------------------------------------------------------------------------------------------------------------

def test_bucket_versioning_states(server, s3, bucket):
    got = s3.get_bucket_versioning(Bucket=bucket)
    assert "Status" not in got, f"a never-enabled bucket reports no Status: {got}"
    resp = server.request("GET", bucket, query={"versioning": None})
    assert resp.status_code == 200, describe(resp)
    root = xml_root(resp.content)
    assert root.tag == "VersioningConfiguration" and root.find("Status") is None, describe(resp)

    enable(s3, bucket)
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    suspend(s3, bucket)
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Suspended"
    enable(s3, bucket)
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"

    assert_client_error(s3.get_bucket_versioning, 404, "NoSuchBucket", Bucket=unique_bucket("nobucket"))


def test_version_ids_unique_and_sortable(s3, bucket):
    """Issue 4: every write on an Enabled bucket gets a unique, sortable version id (sortable in write order)."""
    enable(s3, bucket)
    ids = [s3.put_object(Bucket=bucket, Key="k", Body=str(i).encode())["VersionId"] for i in range(60)]
    assert all(ids) and "null" not in ids
    assert len(set(ids)) == len(ids), "version ids repeat"
    assert ids == sorted(ids) or ids == sorted(ids, reverse=True), \
        f"version ids are not sortable in write order: {ids}"
    listed = [v["VersionId"] for v in s3.list_object_versions(Bucket=bucket, Prefix="k")["Versions"]]
    assert listed == ids[::-1], "ListObjectVersions lists a key's versions newest first"


def test_concurrent_writes_keep_every_version(server, bucket):
    """Simultaneous PUTs of one key on an Enabled bucket: every one is stored as its own version; exactly one is
    latest, and a plain GET returns that one."""
    s3 = server.client(max_pool_connections=24)
    enable(s3, bucket)
    bodies = [f"body {i} ".encode() * (i + 1) for i in range(24)]
    with ThreadPoolExecutor(24) as pool:
        vids = list(pool.map(lambda b: s3.put_object(Bucket=bucket, Key="hot", Body=b)["VersionId"], bodies))
    assert len(set(vids)) == len(vids)
    r = s3.list_object_versions(Bucket=bucket)
    listed = r["Versions"]
    assert sorted(v["VersionId"] for v in listed) == sorted(vids)
    latest = [v for v in listed if v["IsLatest"]]
    assert len(latest) == 1 and listed[0]["IsLatest"], [(v["VersionId"], v["IsLatest"]) for v in listed]
    got = s3.get_object(Bucket=bucket, Key="hot")
    assert got["VersionId"] == latest[0]["VersionId"]
    assert got["Body"].read() == bodies[vids.index(latest[0]["VersionId"])]
    for v in listed:
        assert v["Size"] == len(bodies[vids.index(v["VersionId"])])

# ------------------------------------------------------------------------------------------------------------------
# three versions, three SSE-C keys
# ------------------------------------------------------------------------------------------------------------------

def test_three_versions_three_keys(server, s3, bucket):
    enable(s3, bucket)
    keys = [secrets.token_bytes(32) for _ in range(3)]
    bodies = [secrets.token_bytes(n) for n in (1000, 70_000, 200_001)]  # 1 chunk, 2 chunks, 4 chunks
    vids, etags = [], []
    for k, body in zip(keys, bodies):
        r = s3.put_object(Bucket=bucket, Key="doc", Body=body, **ssec_params(k))
        assert r.get("VersionId"), f"PutObject on an Enabled bucket must answer x-amz-version-id: {hdrs(r)}"
        assert r["SSECustomerKeyMD5"] == md5_b64(k)
        vids.append(r["VersionId"])
        etags.append(r["ETag"])
    assert len(set(vids)) == 3 and "null" not in vids

    for v, (vid, body) in enumerate(zip(vids, bodies)):
        for w, key in enumerate(keys):
            if v == w:
                r, got = get_bytes(s3, bucket, "doc", key, VersionId=vid)
                assert got == body, f"version {v} read back wrong"
                assert r["VersionId"] == vid and r["ContentLength"] == len(body) and r["ETag"] == etags[v]
                assert r["SSECustomerKeyMD5"] == md5_b64(key)
                h = s3.head_object(Bucket=bucket, Key="doc", VersionId=vid, **ssec_params(key))
                assert h["VersionId"] == vid and h["ContentLength"] == len(body) and h["ETag"] == etags[v]
                r, got = get_bytes(s3, bucket, "doc", key, VersionId=vid, Range="bytes=500-65599")
                assert got == body[500:65600] and r["VersionId"] == vid
                assert r["ContentRange"] == f"bytes 500-{min(65599, len(body) - 1)}/{len(body)}"
            else:
                # GET with another version's key: 403 AccessDenied (never 400)
                resp = server.request("GET", bucket, "doc", query={"versionId": vid}, headers=ssec_headers(key))
                assert_s3_error(resp, 403, "AccessDenied")
                e = assert_client_error(s3.head_object, 403, None, Bucket=bucket, Key="doc", VersionId=vid,
                                        **ssec_params(key))
                assert status_of(e) == 403
                resp = server.request("HEAD", bucket, "doc", query={"versionId": vid}, headers=ssec_headers(key))
                assert_s3_error(resp, 403)

    # the current version is the third; the first two keys are wrong for it
    r, got = get_bytes(s3, bucket, "doc", keys[2])
    assert got == bodies[2] and r["VersionId"] == vids[2]
    assert s3.head_object(Bucket=bucket, Key="doc", **ssec_params(keys[2]))["VersionId"] == vids[2]
    for k in keys[:2]:
        assert_client_error(s3.get_object, 403, "AccessDenied", Bucket=bucket, Key="doc", **ssec_params(k))
    # a version read without any key: 400 InvalidRequest (design.md section 4)
    resp = server.request("GET", bucket, "doc", query={"versionId": vids[0]})
    assert_s3_error(resp, 400, "InvalidRequest")

    # the listing gives each version's plaintext size
    rows = listing(s3, bucket)
    assert rows == [("V", "doc", vids[i], i == 2, len(bodies[i]), etags[i]) for i in (2, 1, 0)]

    # DeleteObject of one version echoes its id; the others keep their own keys
    d = s3.delete_object(Bucket=bucket, Key="doc", VersionId=vids[1])
    assert d.get("VersionId") == vids[1], hdrs(d)
    assert not d.get("DeleteMarker")
    assert_client_error(s3.get_object, 404, "NoSuchVersion", Bucket=bucket, Key="doc", VersionId=vids[1],
                        **ssec_params(keys[1]))
    assert get_bytes(s3, bucket, "doc", keys[0], VersionId=vids[0])[1] == bodies[0]
    assert_client_error(s3.get_object, 403, "AccessDenied", Bucket=bucket, Key="doc", VersionId=vids[0],
                        **ssec_params(keys[2]))


def test_cli_versions_and_keys(server, s3, bucket, tmp_path):
    """The same through the aws CLI: versioning config, put-object per key, get/head-object --version-id."""
    work = tmp_path / "cli"
    work.mkdir()
    out = server.aws("s3api", "get-bucket-versioning", "--bucket", bucket, workdir=work).stdout
    assert "Status" not in (json.loads(out) if out.strip() else {}), out
    server.aws("s3api", "put-bucket-versioning", "--bucket", bucket,
               "--versioning-configuration", "Status=Enabled", workdir=work)
    assert json.loads(server.aws("s3api", "get-bucket-versioning", "--bucket", bucket,
                                 workdir=work).stdout)["Status"] == "Enabled"

    keys = [secrets.token_bytes(32) for _ in range(3)]
    key_args = [write_key(work, f"k{i}", k) for i, k in enumerate(keys)]
    bodies = [secrets.token_bytes(3000 + i) for i in range(3)]
    vids = []
    for i, body in enumerate(bodies):
        (work / f"in{i}").write_bytes(body)
        res = json.loads(server.aws("s3api", "put-object", "--bucket", bucket, "--key", "cli-doc",
                                    "--body", f"in{i}", "--sse-customer-algorithm", "AES256",
                                    "--sse-customer-key", key_args[i], workdir=work).stdout)
        assert res.get("VersionId"), res
        vids.append(res["VersionId"])

    # each version with its own key (get-object + head-object); a wrong key: AccessDenied / 403 (the CLI is slow to
    # start, so the full 3x3 matrix is left to the boto3 test above)
    def cli_read(v, w, check):
        args = ["--bucket", bucket, "--key", "cli-doc", "--version-id", vids[v],
                "--sse-customer-algorithm", "AES256", "--sse-customer-key", key_args[w]]
        got = server.aws("s3api", "get-object", *args, f"out{v}{w}", workdir=work, check=check)
        head = server.aws("s3api", "head-object", *args, workdir=work, check=check)
        return got, head

    for v in range(3):
        got, head = cli_read(v, v, True)
        assert (work / f"out{v}{v}").read_bytes() == bodies[v]
        assert json.loads(got.stdout)["VersionId"] == vids[v]
        assert json.loads(head.stdout)["VersionId"] == vids[v]
        assert json.loads(head.stdout)["ContentLength"] == len(bodies[v])
    got, head = cli_read(0, 2, False)
    assert got.returncode != 0 and "AccessDenied" in got.stderr, got.stderr
    assert head.returncode != 0 and "403" in head.stderr, head.stderr

    res = json.loads(server.aws("s3api", "list-object-versions", "--bucket", bucket, workdir=work).stdout)
    assert [(v["VersionId"], v["IsLatest"], v["Size"]) for v in res["Versions"]] == \
        [(vids[2], True, 3002), (vids[1], False, 3001), (vids[0], False, 3000)]

    # key rotation of the current version through the CLI: a new version under the new key
    new_key = secrets.token_bytes(32)
    res = json.loads(server.aws(
        "s3api", "copy-object", "--bucket", bucket, "--key", "cli-doc", "--copy-source", f"{bucket}/cli-doc",
        "--sse-customer-algorithm", "AES256", "--sse-customer-key", write_key(work, "knew", new_key),
        "--copy-source-sse-customer-algorithm", "AES256", "--copy-source-sse-customer-key", key_args[2],
        workdir=work).stdout)
    assert res.get("VersionId") and res["VersionId"] not in vids, res
    assert res.get("CopySourceVersionId") == vids[2], res
    assert get_bytes(s3, bucket, "cli-doc", new_key, VersionId=res["VersionId"])[1] == bodies[2]
    assert get_bytes(s3, bucket, "cli-doc", keys[2], VersionId=vids[2])[1] == bodies[2]


# ------------------------------------------------------------------------------------------------------------------
# the null version: suspend / resume
# ------------------------------------------------------------------------------------------------------------------

def test_null_version_suspend_resume(start_server):
    srv = start_server(name="nullver")
    s3 = srv.client()
    bucket = unique_bucket("nullver")
    s3.create_bucket(Bucket=bucket)
    kA, kB, kC, kD = (secrets.token_bytes(32) for _ in range(4))
    # Every body is above 16 KiB, so that every version has a blob file to count (smaller objects live in the
    # metadata store; coffer-store's inline tests check that their bytes go with their version the same way).
    A, B, C, D = (secrets.token_bytes(n) for n in (17_111, 17_222, 17_333, 17_444))
    OTHER, FIRST, SECOND = b"other" * 4000, b"first" * 4000, b"second!" * 3000

    # before versioning was ever enabled: no version id in the answer, the version is `null`
    r = s3.put_object(Bucket=bucket, Key="k", Body=A, **ssec_params(kA))
    assert "x-amz-version-id" not in hdrs(r), f"never-versioned bucket answered a version id: {hdrs(r)}"
    etagA = r["ETag"]
    other = s3.put_object(Bucket=bucket, Key="other", Body=OTHER)
    assert blob_count(srv) == 2
    rows = listing(s3, bucket)
    assert rows == [("V", "k", "null", True, len(A), etagA), ("V", "other", "null", True, len(OTHER), other["ETag"])]
    r = s3.list_object_versions(Bucket=bucket, MaxKeys=1)
    assert r["IsTruncated"] is True and rows_of(r) == rows[:1]
    assert (r.get("NextKeyMarker"), r.get("NextVersionIdMarker")) == ("k", "null"), r
    r = s3.list_object_versions(Bucket=bucket, MaxKeys=1, KeyMarker="k", VersionIdMarker="null")
    assert not r["IsTruncated"] and rows_of(r) == rows[1:]

    # Enabled: a new version on top of the null one
    enable(s3, bucket)
    r = s3.put_object(Bucket=bucket, Key="k", Body=B, **ssec_params(kB))
    vidB, etagB = r["VersionId"], r["ETag"]
    assert vidB and vidB != "null"
    assert listing(s3, bucket, Prefix="k") == [("V", "k", vidB, True, len(B), etagB),
                                               ("V", "k", "null", False, len(A), etagA)]
    r, got = get_bytes(s3, bucket, "k", kA, VersionId="null")
    assert got == A and r["VersionId"] == "null"
    assert_client_error(s3.get_object, 403, "AccessDenied", Bucket=bucket, Key="k", VersionId="null",
                        **ssec_params(kB))
    assert blob_count(srv) == 3

    # Suspended: a PUT replaces the null version (A is gone for good), vidB stays
    suspend(s3, bucket)
    r = s3.put_object(Bucket=bucket, Key="k", Body=C, **ssec_params(kC))
    assert r.get("VersionId") in (None, "null"), f"PUT on a Suspended bucket writes the null version: {hdrs(r)}"
    etagC = r["ETag"]
    assert listing(s3, bucket, Prefix="k") == [("V", "k", "null", True, len(C), etagC),
                                               ("V", "k", vidB, False, len(B), etagB)]
    r, got = get_bytes(s3, bucket, "k", kC, VersionId="null")
    assert got == C and r["VersionId"] == "null"
    r, got = get_bytes(s3, bucket, "k", kC)
    assert got == C and r["VersionId"] == "null"
    assert_client_error(s3.get_object, 403, "AccessDenied", Bucket=bucket, Key="k", VersionId="null",
                        **ssec_params(kA))
    assert get_bytes(s3, bucket, "k", kB, VersionId=vidB)[1] == B
    n = wait_blob_count(srv, 3)
    assert n == 3, f"the replaced null version's blob was not removed: {n} blob files, expected 3"

    # a second PUT of a new key on the Suspended bucket replaces its own null version too
    s3.put_object(Bucket=bucket, Key="k2", Body=FIRST)
    r = s3.put_object(Bucket=bucket, Key="k2", Body=SECOND)
    assert listing(s3, bucket, Prefix="k2") == [("V", "k2", "null", True, len(SECOND), r["ETag"])]
    assert s3.get_object(Bucket=bucket, Key="k2", VersionId="null")["Body"].read() == SECOND
    assert wait_blob_count(srv, 4) == 4

    # DELETE without version id on a Suspended bucket: the null version becomes a null delete marker
    d = s3.delete_object(Bucket=bucket, Key="k")
    assert d.get("DeleteMarker") is True, hdrs(d)
    assert d.get("VersionId") == "null", f"the delete marker's version id is null: {hdrs(d)}"
    rows, _ = raw_listing(srv, bucket, {"prefix": "k"})
    assert G(rows) == G([("D", "k", "null", True, None, None), ("V", "k", vidB, False, len(B), etagB),
                         ("V", "k2", "null", True, len(SECOND), r["ETag"])])
    e = assert_client_error(s3.get_object, 404, "NoSuchKey", Bucket=bucket, Key="k", **ssec_params(kC))
    assert hdrs(e).get("x-amz-delete-marker") == "true", hdrs(e)
    assert_client_error(s3.get_object, 405, "MethodNotAllowed", Bucket=bucket, Key="k", VersionId="null")
    n = wait_blob_count(srv, 3)
    assert n == 3, f"the null version replaced by a null marker kept its blob: {n} blob files, expected 3"
    before = listing(s3, bucket)

    # re-enabling keeps everything; new writes get fresh version ids again
    enable(s3, bucket)
    assert listing(s3, bucket) == before
    r = s3.put_object(Bucket=bucket, Key="k", Body=D, **ssec_params(kD))
    vidD, etagD = r["VersionId"], r["ETag"]
    assert vidD and vidD not in ("null", vidB)
    rows, _ = raw_listing(srv, bucket, {"prefix": "k"})
    assert G(rows) == G([("V", "k", vidD, True, len(D), etagD), ("D", "k", "null", False, None, None),
                         ("V", "k", vidB, False, len(B), etagB), ("V", "k2", "null", True, len(SECOND), r2etag(s3, bucket))])
    assert get_bytes(s3, bucket, "k", kD)[1] == D
    assert get_bytes(s3, bucket, "k", kB, VersionId=vidB)[1] == B
    assert s3.get_object(Bucket=bucket, Key="other", VersionId="null")["Body"].read() == OTHER
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"

    # deleting the null marker by its version id removes it; vidD stays current
    d = s3.delete_object(Bucket=bucket, Key="k", VersionId="null")
    assert d.get("VersionId") == "null" and d.get("DeleteMarker") is True, hdrs(d)
    assert [x[2] for x in listing(s3, bucket, Prefix="k") if x[1] == "k"] == [vidD, vidB]

    # a restart keeps it all
    srv.restart()
    s3 = srv.client()
    assert get_bytes(s3, bucket, "k", kB, VersionId=vidB)[1] == B
    assert get_bytes(s3, bucket, "k", kD)[1] == D
    assert blob_count(srv) == 4  # B, D, other, k2


def r2etag(s3, bucket):
    return s3.head_object(Bucket=bucket, Key="k2")["ETag"]


# ------------------------------------------------------------------------------------------------------------------
# delete markers
# ------------------------------------------------------------------------------------------------------------------

def test_delete_marker_lifecycle(server, s3, bucket):
    check = Checks()
    enable(s3, bucket)
    k = secrets.token_bytes(32)
    v1 = s3.put_object(Bucket=bucket, Key="dm", Body=b"one", **ssec_params(k))
    v2 = s3.put_object(Bucket=bucket, Key="dm", Body=b"two!", **ssec_params(k))
    s3.put_object(Bucket=bucket, Key="keep", Body=b"keep")

    d = s3.delete_object(Bucket=bucket, Key="dm")
    assert d.get("DeleteMarker") is True and hdrs(d).get("x-amz-delete-marker") == "true", hdrs(d)
    m1 = d.get("VersionId")
    assert m1 and m1 not in ("null", v1["VersionId"], v2["VersionId"]), hdrs(d)

    # GET / HEAD of the key: 404 with the marker header
    resp = server.request("GET", bucket, "dm", headers=ssec_headers(k))
    assert_s3_error(resp, 404, "NoSuchKey")
    assert resp.headers.get("x-amz-delete-marker") == "true", describe(resp)
    check(resp.headers.get("x-amz-version-id") == m1, f"404 of a key under a marker names the marker:\n{describe(resp)}")
    resp = server.request("HEAD", bucket, "dm", headers=ssec_headers(k))
    assert_s3_error(resp, 404)
    assert resp.headers.get("x-amz-delete-marker") == "true", describe(resp)
    e = assert_client_error(s3.get_object, 404, "NoSuchKey", Bucket=bucket, Key="dm")
    assert hdrs(e).get("x-amz-delete-marker") == "true"

    # GET / HEAD of the marker by version id: 405 MethodNotAllowed (with Last-Modified)
    for method in ("GET", "HEAD"):
        resp = server.request(method, bucket, "dm", query={"versionId": m1})
        assert_s3_error(resp, 405, "MethodNotAllowed")
        check(resp.headers.get("x-amz-delete-marker") == "true", f"405 without x-amz-delete-marker:\n{describe(resp)}")
        check(resp.headers.get("Last-Modified"), f"405 without Last-Modified (AWS sends it):\n{describe(resp)}")
        check(resp.headers.get("x-amz-version-id") == m1, f"405 without x-amz-version-id:\n{describe(resp)}")
    assert_client_error(s3.get_object, 405, "MethodNotAllowed", Bucket=bucket, Key="dm", VersionId=m1)

    # listings show only current, non-deleted keys
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])] == ["keep"]
    assert [o["Key"] for o in s3.list_objects(Bucket=bucket).get("Contents", [])] == ["keep"]
    rows, _ = raw_listing(server, bucket, {"prefix": "dm"})
    assert G(rows) == G([("D", "dm", m1, True, None, None),
                         ("V", "dm", v2["VersionId"], False, 4, v2["ETag"]),
                         ("V", "dm", v1["VersionId"], False, 3, v1["ETag"])])

    # a second simple DELETE stacks another marker
    m2 = s3.delete_object(Bucket=bucket, Key="dm")["VersionId"]
    assert m2 not in (m1, None)
    assert [x[2] for x in G(raw_listing(server, bucket, {"prefix": "dm"})[0])] == [v2["VersionId"], v1["VersionId"],
                                                                                  m2, m1]

    # deleting the markers by version id brings v2 back
    for m in (m2, m1):
        d = s3.delete_object(Bucket=bucket, Key="dm", VersionId=m)
        assert d.get("VersionId") == m and d.get("DeleteMarker") is True, hdrs(d)
    r, got = get_bytes(s3, bucket, "dm", k)
    assert got == b"two!" and r["VersionId"] == v2["VersionId"]
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["dm", "keep"]
    assert [o["Key"] for o in s3.list_objects(Bucket=bucket)["Contents"]] == ["dm", "keep"]
    assert listing(s3, bucket, Prefix="dm") == [("V", "dm", v2["VersionId"], True, 4, v2["ETag"]),
                                                ("V", "dm", v1["VersionId"], False, 3, v1["ETag"])]

    # deleting a specific version is for good: 404 NoSuchVersion, and the previous one is current
    d = s3.delete_object(Bucket=bucket, Key="dm", VersionId=v2["VersionId"])
    assert d.get("VersionId") == v2["VersionId"] and not d.get("DeleteMarker"), hdrs(d)
    resp = server.request("GET", bucket, "dm", query={"versionId": v2["VersionId"]}, headers=ssec_headers(k))
    assert_s3_error(resp, 404, "NoSuchVersion")
    resp = server.request("HEAD", bucket, "dm", query={"versionId": v2["VersionId"]}, headers=ssec_headers(k))
    assert_s3_error(resp, 404)
    r, got = get_bytes(s3, bucket, "dm", k)
    assert got == b"one" and r["VersionId"] == v1["VersionId"]
    lst = s3.list_objects_v2(Bucket=bucket)["Contents"]
    assert [(o["Key"], o["Size"], o["ETag"]) for o in lst][0] == ("dm", 3, v1["ETag"])

    # a simple DELETE of a key that does not exist still writes a marker on a versioned bucket
    d = s3.delete_object(Bucket=bucket, Key="never-there")
    assert d.get("DeleteMarker") is True and d.get("VersionId"), hdrs(d)
    assert listing(s3, bucket, Prefix="never") == [("D", "never-there", d["VersionId"], True, None, None)]
    check.done()


def test_delete_objects_with_version_ids(server, s3, bucket):
    check = Checks()
    enable(s3, bucket)
    a1 = s3.put_object(Bucket=bucket, Key="a", Body=b"a1")["VersionId"]
    a2 = s3.put_object(Bucket=bucket, Key="a", Body=b"a22")["VersionId"]
    b1 = s3.put_object(Bucket=bucket, Key="b", Body=b"b1")["VersionId"]
    c1 = s3.put_object(Bucket=bucket, Key="c", Body=b"c1")["VersionId"]
    mc = s3.delete_object(Bucket=bucket, Key="c")["VersionId"]

    r = s3.delete_objects(Bucket=bucket, Delete={"Objects": [
        {"Key": "a", "VersionId": a1},   # a plain version, for good
        {"Key": "b"},                    # no version id: makes a marker
        {"Key": "c", "VersionId": mc},   # removes a marker
    ]})
    assert not r.get("Errors"), r
    deleted = {d["Key"]: d for d in r["Deleted"]}
    assert set(deleted) == {"a", "b", "c"}, r
    assert deleted["a"].get("VersionId") == a1 and not deleted["a"].get("DeleteMarker"), deleted["a"]
    assert deleted["b"].get("DeleteMarker") is True and deleted["b"].get("DeleteMarkerVersionId"), deleted["b"]
    mb = deleted["b"]["DeleteMarkerVersionId"]
    assert mb not in (b1, "null")
    assert deleted["c"].get("VersionId") == mc, deleted["c"]
    assert deleted["c"].get("DeleteMarker") is True, deleted["c"]
    check(deleted["c"].get("DeleteMarkerVersionId") == mc,
          f"DeleteObjects of a marker by version id: DeleteMarkerVersionId must name it: {deleted['c']}")

    rows, _ = raw_listing(server, bucket)
    assert [(x[0], x[1], x[2], x[3]) for x in G(rows)] == G([
        ("V", "a", a2, True), ("D", "b", mb, True), ("V", "b", b1, False), ("V", "c", c1, True)])
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["a", "c"]

    # quiet mode with version ids
    r = s3.delete_objects(Bucket=bucket, Delete={"Quiet": True, "Objects": [
        {"Key": "a", "VersionId": a2}, {"Key": "b", "VersionId": mb}, {"Key": "b", "VersionId": b1},
        {"Key": "c", "VersionId": c1}]})
    assert not r.get("Errors") and not r.get("Deleted"), r
    assert "Versions" not in s3.list_object_versions(Bucket=bucket)
    assert "DeleteMarkers" not in s3.list_object_versions(Bucket=bucket)
    s3.delete_bucket(Bucket=bucket)
    check.done()


# ------------------------------------------------------------------------------------------------------------------
# copy, upload-part-copy and partNumber on versions; key rotation
# ------------------------------------------------------------------------------------------------------------------

def test_copy_and_multipart_on_versions(server, s3, bucket):
    check = Checks()
    enable(s3, bucket)
    kA, kM, kN, kD, kE = (secrets.token_bytes(32) for _ in range(5))
    A = secrets.token_bytes(300_000)
    old = s3.put_object(Bucket=bucket, Key="src", Body=A, **ssec_params(kA))
    v_old = old["VersionId"]

    # a multipart version: 5 MiB + (1 MiB + 3) parts under kM
    p1, p2 = secrets.token_bytes(5 * MiB), secrets.token_bytes(MiB + 3)
    up = s3.create_multipart_upload(Bucket=bucket, Key="src", **ssec_params(kM))
    parts = []
    for n, data in ((1, p1), (2, p2)):
        e = s3.upload_part(Bucket=bucket, Key="src", UploadId=up["UploadId"], PartNumber=n, Body=data,
                           **ssec_params(kM))["ETag"]
        parts.append({"PartNumber": n, "ETag": e})
    done = s3.complete_multipart_upload(Bucket=bucket, Key="src", UploadId=up["UploadId"],
                                        MultipartUpload={"Parts": parts}, **ssec_params(kM))
    vm = done.get("VersionId")
    assert vm and vm != v_old, f"CompleteMultipartUpload must answer x-amz-version-id: {hdrs(done)}"

    new = s3.put_object(Bucket=bucket, Key="src", Body=b"newest", **ssec_params(kN))
    assert new["VersionId"] not in (vm, v_old)

    # GetObject / HeadObject partNumber on the (no longer current) multipart version
    for n, data in ((1, p1), (2, p2)):
        r, got = get_bytes(s3, bucket, "src", kM, VersionId=vm, PartNumber=n)
        assert got == data, f"part {n} of version {vm}"
        assert r["VersionId"] == vm and r["PartsCount"] == 2 and r["ContentLength"] == len(data)
        h = s3.head_object(Bucket=bucket, Key="src", VersionId=vm, PartNumber=n, **ssec_params(kM))
        assert h["VersionId"] == vm and h["PartsCount"] == 2 and h["ContentLength"] == len(data)
    assert_client_error(s3.get_object, 403, "AccessDenied", Bucket=bucket, Key="src", VersionId=vm, PartNumber=1,
                        **ssec_params(kN))
    assert_client_error(s3.get_object, 403, "AccessDenied", Bucket=bucket, Key="src", VersionId=vm,
                        **ssec_params(kA))
    r, got = get_bytes(s3, bucket, "src", kM, VersionId=vm, Range=f"bytes={5 * MiB - 10}-{5 * MiB + 9}")
    assert got == p1[-10:] + p2[:10] and r["VersionId"] == vm

    # CopyObject from the older single-PUT version, SSE-C(kA) -> SSE-C(kD)
    c = s3.copy_object(Bucket=bucket, Key="copy-old", CopySource={"Bucket": bucket, "Key": "src", "VersionId": v_old},
                       CopySourceSSECustomerAlgorithm="AES256", CopySourceSSECustomerKey=kA, **ssec_params(kD))
    check(c.get("CopySourceVersionId") == v_old,
          f"CopyObject (request {hdrs(c).get('x-amz-request-id')}): x-amz-copy-source-version-id must be {v_old}: {hdrs(c)}")
    assert c.get("VersionId") and c["VersionId"] not in (v_old, vm), hdrs(c)
    r, got = get_bytes(s3, bucket, "copy-old", kD)
    assert got == A and r["VersionId"] == c["VersionId"]
    # ... with the wrong source key: 403
    assert_client_error(s3.copy_object, 403, "AccessDenied", Bucket=bucket, Key="copy-bad",
                        CopySource={"Bucket": bucket, "Key": "src", "VersionId": v_old},
                        CopySourceSSECustomerAlgorithm="AES256", CopySourceSSECustomerKey=kN)
    # CopyObject of the multipart version to a plain object in another bucket
    other = unique_bucket("copydst")
    s3.create_bucket(Bucket=other)
    c2 = s3.copy_object(Bucket=other, Key="plain", CopySource={"Bucket": bucket, "Key": "src", "VersionId": vm},
                        CopySourceSSECustomerAlgorithm="AES256", CopySourceSSECustomerKey=kM)
    check(c2.get("CopySourceVersionId") == vm,
          f"CopyObject (request {hdrs(c2).get('x-amz-request-id')}): x-amz-copy-source-version-id must be {vm}: {hdrs(c2)}")
    assert "VersionId" not in c2 or c2["VersionId"] is None, f"unversioned destination: {hdrs(c2)}"
    assert s3.get_object(Bucket=other, Key="plain")["Body"].read() == p1 + p2
    # CopyObject source without VersionId copies the current version and names it
    c3 = s3.copy_object(Bucket=bucket, Key="copy-cur", CopySource={"Bucket": bucket, "Key": "src"},
                        CopySourceSSECustomerAlgorithm="AES256", CopySourceSSECustomerKey=kN)
    check(c3.get("CopySourceVersionId") == new["VersionId"],
          f"CopyObject (request {hdrs(c3).get('x-amz-request-id')}): x-amz-copy-source-version-id must be {new['VersionId']}: {hdrs(c3)}")
    assert s3.get_object(Bucket=bucket, Key="copy-cur")["Body"].read() == b"newest"

    # UploadPartCopy from versions: part 1 = first 5 MiB of the multipart version, part 2 = the old version
    up = s3.create_multipart_upload(Bucket=bucket, Key="upc", **ssec_params(kE))
    pc1 = s3.upload_part_copy(Bucket=bucket, Key="upc", UploadId=up["UploadId"], PartNumber=1,
                              CopySource={"Bucket": bucket, "Key": "src", "VersionId": vm},
                              CopySourceRange=f"bytes=0-{5 * MiB - 1}",
                              CopySourceSSECustomerAlgorithm="AES256", CopySourceSSECustomerKey=kM,
                              **ssec_params(kE))
    check(pc1.get("CopySourceVersionId") == vm,
          f"UploadPartCopy (request {hdrs(pc1).get('x-amz-request-id')}): x-amz-copy-source-version-id must be {vm}: {hdrs(pc1)}")
    pc2 = s3.upload_part_copy(Bucket=bucket, Key="upc", UploadId=up["UploadId"], PartNumber=2,
                              CopySource={"Bucket": bucket, "Key": "src", "VersionId": v_old},
                              CopySourceSSECustomerAlgorithm="AES256", CopySourceSSECustomerKey=kA,
                              **ssec_params(kE))
    check(pc2.get("CopySourceVersionId") == v_old,
          f"UploadPartCopy (request {hdrs(pc2).get('x-amz-request-id')}): x-amz-copy-source-version-id must be {v_old}: {hdrs(pc2)}")
    assert_client_error(s3.upload_part_copy, 403, "AccessDenied", Bucket=bucket, Key="upc",
                        UploadId=up["UploadId"], PartNumber=3,
                        CopySource={"Bucket": bucket, "Key": "src", "VersionId": v_old},
                        CopySourceSSECustomerAlgorithm="AES256", CopySourceSSECustomerKey=kM, **ssec_params(kE))
    done = s3.complete_multipart_upload(Bucket=bucket, Key="upc", UploadId=up["UploadId"], MultipartUpload={"Parts": [
        {"PartNumber": 1, "ETag": pc1["CopyPartResult"]["ETag"]},
        {"PartNumber": 2, "ETag": pc2["CopyPartResult"]["ETag"]}]}, **ssec_params(kE))
    assert done.get("VersionId"), hdrs(done)
    r, got = get_bytes(s3, bucket, "upc", kE)
    assert got == p1 + A and r["VersionId"] == done["VersionId"]

    # sizes in the listing are plaintext sizes, multipart included
    rows = listing(s3, bucket, Prefix="src")
    assert [(x[2], x[3], x[4]) for x in rows] == [(new["VersionId"], True, 6), (vm, False, len(p1) + len(p2)),
                                                  (v_old, False, len(A))]
    check.done()


def test_key_rotation_by_in_place_copy(start_server):
    srv = start_server(name="rotate")
    s3 = srv.client()
    bucket = unique_bucket("rotate")
    s3.create_bucket(Bucket=bucket)
    enable(s3, bucket)
    k_old, k_new, k_newer = (secrets.token_bytes(32) for _ in range(3))
    data = secrets.token_bytes(150_000)
    v1 = s3.put_object(Bucket=bucket, Key="secret", Body=data, **ssec_params(k_old))["VersionId"]

    c = s3.copy_object(Bucket=bucket, Key="secret", CopySource={"Bucket": bucket, "Key": "secret"},
                       CopySourceSSECustomerAlgorithm="AES256", CopySourceSSECustomerKey=k_old,
                       **ssec_params(k_new))
    v2 = c.get("VersionId")
    assert v2 and v2 != v1, f"in-place copy on a versioned bucket makes a new version: {hdrs(c)}"
    assert c.get("CopySourceVersionId") == v1, hdrs(c)
    assert c.get("SSECustomerKeyMD5") == md5_b64(k_new)

    # the new version only under the new key, the old one only under the old key
    r, got = get_bytes(s3, bucket, "secret", k_new)
    assert got == data and r["VersionId"] == v2
    assert_client_error(s3.get_object, 403, "AccessDenied", Bucket=bucket, Key="secret", **ssec_params(k_old))
    assert get_bytes(s3, bucket, "secret", k_old, VersionId=v1)[1] == data
    assert_client_error(s3.get_object, 403, "AccessDenied", Bucket=bucket, Key="secret", VersionId=v1,
                        **ssec_params(k_new))
    assert_client_error(s3.head_object, 403, None, Bucket=bucket, Key="secret", VersionId=v2, **ssec_params(k_old))
    assert [(x[2], x[3], x[4]) for x in listing(s3, bucket)] == [(v2, True, len(data)), (v1, False, len(data))]

    # rotate an old version (by VersionId) into a third version
    c = s3.copy_object(Bucket=bucket, Key="secret", CopySource={"Bucket": bucket, "Key": "secret", "VersionId": v1},
                       CopySourceSSECustomerAlgorithm="AES256", CopySourceSSECustomerKey=k_old,
                       **ssec_params(k_newer))
    v3 = c["VersionId"]
    assert c.get("CopySourceVersionId") == v1 and v3 not in (v1, v2)
    assert get_bytes(s3, bucket, "secret", k_newer)[1] == data

    # deleting the version a rotation started from must not take the newer versions' data with it
    s3.delete_object(Bucket=bucket, Key="secret", VersionId=v1)
    assert_client_error(s3.get_object, 404, "NoSuchVersion", Bucket=bucket, Key="secret", VersionId=v1,
                        **ssec_params(k_old))
    assert get_bytes(s3, bucket, "secret", k_new, VersionId=v2)[1] == data
    assert get_bytes(s3, bucket, "secret", k_newer, VersionId=v3)[1] == data
    srv.restart()  # and the start-up GC keeps what committed versions reference
    s3 = srv.client()
    assert get_bytes(s3, bucket, "secret", k_new, VersionId=v2)[1] == data
    s3.delete_object(Bucket=bucket, Key="secret", VersionId=v2)
    assert get_bytes(s3, bucket, "secret", k_newer, VersionId=v3)[1] == data
    s3.delete_object(Bucket=bucket, Key="secret", VersionId=v3)
    n = wait_blob_count(srv, 0)
    assert n == 0, f"{n} blob file(s) left after every version was deleted"
    s3.delete_bucket(Bucket=bucket)


# ------------------------------------------------------------------------------------------------------------------
# ListObjectVersions
# ------------------------------------------------------------------------------------------------------------------

def test_list_object_versions_parameters(server, s3, bucket):
    k = secrets.token_bytes(32)
    hist: dict[str, list[Entry]] = {}

    def put(key, size, ssec):
        r = s3.put_object(Bucket=bucket, Key=key, Body=secrets.token_bytes(size), **(ssec_params(k) if ssec else {}))
        hist.setdefault(key, []).append(Entry(key, r.get("VersionId") or "null", False, size, r["ETag"]))

    def dele(key):
        r = s3.delete_object(Bucket=bucket, Key=key)
        assert r.get("DeleteMarker") is True, hdrs(r)
        hist.setdefault(key, []).append(Entry(key, r["VersionId"], True, None, None))

    put("n", 10, False)            # before versioning: the null version
    enable(s3, bucket)
    put("n", 20, True)
    put("a/1", 100, False)
    put("a/1", 200, True)
    put("a/2", 70_000, True)
    dele("a/2")
    put("b", 5, False)
    put("b", 6, False)
    put("b", 7, True)
    put("c/x/y", 33, True)
    dele("d")                      # a marker with no version under it
    model = model_rows(hist)

    # everything: plaintext sizes, IsLatest, ETags (document order: test_list_versions_document_order)
    rows, root = raw_listing(server, bucket)
    assert G(rows) == G(model)
    assert root.findtext("IsTruncated") == "false"
    assert root.findtext("MaxKeys") == "1000"
    for el in root.iter("Version"):
        assert el.findtext("LastModified") and el.findtext("StorageClass")
    for el in root.iter("DeleteMarker"):
        assert el.findtext("LastModified")
    v, d = sort_kinds(model)
    assert sort_kinds(listing(s3, bucket)) == (v, d)

    # prefix
    assert listing(s3, bucket, Prefix="a/") == sort_kinds_flat([r for r in model if r[1].startswith("a/")])
    r = s3.list_object_versions(Bucket=bucket, Prefix="a/")
    assert r["Prefix"] == "a/"

    # delimiter
    r = s3.list_object_versions(Bucket=bucket, Delimiter="/")
    assert [p["Prefix"] for p in r.get("CommonPrefixes", [])] == ["a/", "c/"]
    assert rows_of(r) == sort_kinds_flat([x for x in model if "/" not in x[1]])
    assert r["Delimiter"] == "/"
    r = s3.list_object_versions(Bucket=bucket, Prefix="c/", Delimiter="/")
    assert [p["Prefix"] for p in r.get("CommonPrefixes", [])] == ["c/x/"]
    assert rows_of(r) == []
    r = s3.list_object_versions(Bucket=bucket, Prefix="a/", Delimiter="/")
    assert "CommonPrefixes" not in r and rows_of(r) == sort_kinds_flat([x for x in model if x[1].startswith("a/")])

    # key-marker alone: keys strictly after it
    rows, _ = raw_listing(server, bucket, {"key-marker": "a/2"})
    assert G(rows) == G([x for x in model if x[1] > "a/2"])
    r = s3.list_object_versions(Bucket=bucket, KeyMarker="a/2")
    assert r["KeyMarker"] == "a/2"
    # key-marker + version-id-marker: the versions of that key older than the marker, then the next keys
    b_vids = [e.vid for e in reversed(hist["b"])]
    rows, _ = raw_listing(server, bucket, {"key-marker": "b", "version-id-marker": b_vids[0]})
    start = model.index(next(x for x in model if x[1] == "b" and x[2] == b_vids[0])) + 1
    assert G(rows) == G(model[start:])
    r = s3.list_object_versions(Bucket=bucket, KeyMarker="b", VersionIdMarker=b_vids[0])
    assert r["VersionIdMarker"] == b_vids[0]
    # version-id-marker "null" (the oldest version of n): nothing of n is left
    n_vids = [e.vid for e in reversed(hist["n"])]
    assert n_vids[-1] == "null"
    rows, _ = raw_listing(server, bucket, {"key-marker": "n", "version-id-marker": n_vids[0]})
    assert G(rows) == G([x for x in model if x[1] == "n"][1:])
    rows, _ = raw_listing(server, bucket, {"key-marker": "n", "version-id-marker": "null"})
    assert rows == []
    # the last version of a/1 as version-id-marker: continue at a/2
    a1_last = hist["a/1"][0].vid
    rows, _ = raw_listing(server, bucket, {"key-marker": "a/1", "version-id-marker": a1_last})
    assert G(rows) == G([x for x in model if x[1] > "a/1"])

    # max-keys: truncation and the Next markers
    rows, root = raw_listing(server, bucket, {"max-keys": "2"})
    assert G(rows) == G(model[:2])
    assert root.findtext("IsTruncated") == "true"
    assert root.findtext("NextKeyMarker") == model[1][1] and root.findtext("NextVersionIdMarker") == model[1][2]
    r = s3.list_object_versions(Bucket=bucket, MaxKeys=3)
    assert r["IsTruncated"] is True and r["MaxKeys"] == 3
    assert (r["NextKeyMarker"], r["NextVersionIdMarker"]) == (model[2][1], model[2][2])
    # the page after a delete marker at the page end
    idx = model.index(next(x for x in model if x[1] == "a/2" and x[0] == "D"))
    rows, root = raw_listing(server, bucket, {"max-keys": str(idx + 1)})
    assert G(rows) == G(model[:idx + 1]) and root.findtext("NextVersionIdMarker") == model[idx][2]
    rows, _ = raw_listing(server, bucket, {"key-marker": model[idx][1], "version-id-marker": model[idx][2]})
    assert G(rows) == G(model[idx + 1:])

    # ListObjects / ListObjectsV2: current, non-deleted keys with their plaintext sizes
    current = [(key, h[-1].size, h[-1].etag) for key, h in sorted(hist.items()) if not h[-1].marker]
    assert [(o["Key"], o["Size"], o["ETag"]) for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == current
    assert [(o["Key"], o["Size"], o["ETag"]) for o in s3.list_objects(Bucket=bucket)["Contents"]] == current
    assert [(o["Key"], o["Size"]) for o in s3.list_objects_v2(Bucket=bucket, Prefix="a/")["Contents"]] == \
        [("a/1", 200)]

    # version-id-marker without key-marker: 400 InvalidArgument ("A version-id marker cannot be specified without
    # a key marker.")
    resp = server.request("GET", bucket, query={"versions": None, "version-id-marker": b_vids[0]})
    assert_s3_error(resp, 400, "InvalidArgument")


@pytest.mark.xfail(
    strict=True,
    reason="Known deviation: the S3 protocol crate (s3s 0.14.1) writes all <DeleteMarker> elements, then all "
    "<Version> elements; AWS interleaves them. SDKs and the CLI split the two lists, so clients see no difference. "
    "strict: this test starts failing the day the order is fixed, so the marker gets removed.",
)
def test_list_versions_document_order(server, s3, bucket):
    """ListObjectVersions lists one sequence, key by key and newest first, with Version and DeleteMarker elements
    interleaved in that order (as AWS does: its example responses mix both); boto3 hides the interleaving, raw XML
    does not."""
    enable(s3, bucket)
    hist: dict[str, list[Entry]] = {}
    for key, ops in (("a", "VDVD"), ("b", "VVD"), ("c", "DV")):
        for op in ops:
            if op == "V":
                r = s3.put_object(Bucket=bucket, Key=key, Body=b"x" * 3)
                hist.setdefault(key, []).append(Entry(key, r["VersionId"], False, 3, r["ETag"]))
            else:
                r = s3.delete_object(Bucket=bucket, Key=key)
                hist.setdefault(key, []).append(Entry(key, r["VersionId"], True, None, None))
    model = model_rows(hist)
    rows, _ = raw_listing(server, bucket)
    assert G(rows) == G(model)
    assert [(x[0], x[1]) for x in rows] == [(x[0], x[1]) for x in model], \
        "the XML does not list versions and delete markers as one sequence ordered by key, then newest first"
    assert rows == model
    rows, _ = raw_listing(server, bucket, {"max-keys": "3"})
    assert rows == model[:3]


N_KEYS = 30
N_OPS = 100


def test_list_object_versions_paginated_model(start_server):
    """~3000 versions and markers over 30 keys, listed page by page for several max-keys, against a model."""
    srv = start_server(name="pages")
    s3 = srv.client(max_pool_connections=N_KEYS + 2)
    bucket = unique_bucket("pages")
    s3.create_bucket(Bucket=bucket)
    ssec_key = secrets.token_bytes(32)
    keys = [f"dir{i % 3}/key-{i:02d}" + ("" if i % 4 else "/sub") for i in range(N_KEYS)]
    hist: dict[str, list[Entry]] = {k: [] for k in keys}

    # null versions written before versioning was enabled
    for i, key in enumerate(keys):
        if i % 5 == 0:
            body = f"null {key}".encode()
            r = s3.put_object(Bucket=bucket, Key=key, Body=body)
            hist[key].append(Entry(key, "null", False, len(body), r["ETag"]))
    enable(s3, bucket)

    def run(i):
        key = keys[i]
        enc = ssec_params(ssec_key) if i % 3 == 0 else {}
        out = []
        for j in range(N_OPS):
            if j % 23 == 22:
                r = s3.delete_object(Bucket=bucket, Key=key)
                assert r.get("DeleteMarker") is True and r.get("VersionId"), hdrs(r)
                out.append(Entry(key, r["VersionId"], True, None, None))
            else:
                body = f"{key}#{j}|".encode() * (1 + (i + j) % 5)
                r = s3.put_object(Bucket=bucket, Key=key, Body=body, **enc)
                assert r.get("VersionId"), hdrs(r)
                out.append(Entry(key, r["VersionId"], False, len(body), r["ETag"]))
        return out

    t0 = time.monotonic()
    with ThreadPoolExecutor(N_KEYS) as pool:
        for i, out in enumerate(pool.map(run, range(N_KEYS))):
            hist[keys[i]].extend(out)
    print(f"{N_KEYS * N_OPS} writes in {time.monotonic() - t0:.1f}s")

    # some permanent deletes (a middle version, a marker, the latest version) and final markers
    for i, key in enumerate(keys):
        h = hist[key]
        if i % 4 == 1:
            a_version = next(e for e in h[10:] if not e.marker)
            a_marker = next(e for e in h if e.marker)
            for e in (a_version, a_marker):
                r = s3.delete_object(Bucket=bucket, Key=key, VersionId=e.vid)
                assert r.get("VersionId") == e.vid, hdrs(r)
                h.remove(e)
        if i % 6 == 2:
            e = h[-1]
            s3.delete_object(Bucket=bucket, Key=key, VersionId=e.vid)
            h.remove(e)
        if i % 7 == 0:
            r = s3.delete_object(Bucket=bucket, Key=key)
            h.append(Entry(key, r["VersionId"], True, None, None))
    all_ids = [e.vid for h in hist.values() for e in h if e.vid != "null"]
    assert len(set(all_ids)) == len(all_ids), "version ids repeat across keys"

    model = model_rows(hist)
    assert sum(1 for x in model if x[0] == "D") > 100 and len(model) > 2900

    def paged(max_keys, prefix="", start=0, max_pages=None):
        """Walk the listing from row `start` (markers taken from the model) for max_pages pages or to the end."""
        expected = [x for x in model if x[1].startswith(prefix)]
        pos, km, vm, pages = start, None, None, 0
        if start:
            km, vm = expected[start - 1][1], expected[start - 1][2]
        while True:
            kw = {"Bucket": bucket, "MaxKeys": max_keys}
            if prefix:
                kw["Prefix"] = prefix
            if km is not None:
                kw["KeyMarker"], kw["VersionIdMarker"] = km, vm
            r = s3.list_object_versions(**kw)
            pages += 1
            got_v, got_d = sort_kinds(rows_of(r))
            n = len(got_v) + len(got_d)
            assert n <= max_keys, f"max-keys {max_keys}: {n} rows in one page"
            chunk = expected[pos:pos + n]
            want_v, want_d = sort_kinds(chunk)
            assert (got_v, got_d) == (want_v, want_d), \
                f"max-keys {max_keys}, page {pages} after ({km!r}, {vm!r}): rows {pos}..{pos + n} differ"
            pos += n
            if not r.get("IsTruncated"):
                break
            assert n > 0, f"max-keys {max_keys}: an empty truncated page after ({km!r}, {vm!r})"
            assert (r.get("NextKeyMarker"), r.get("NextVersionIdMarker")) == (chunk[-1][1], chunk[-1][2]), \
                f"max-keys {max_keys}, page {pages}: Next markers do not name the last row listed"
            km, vm = r["NextKeyMarker"], r["NextVersionIdMarker"]
            assert pages <= len(expected) + 1
            if max_pages is not None and pages == max_pages:
                return pages
        assert pos == len(expected), f"max-keys {max_keys}: listed {pos} of {len(expected)} rows"
        return pages

    # max-keys 1 costs one request per row, so it walks one prefix (keys 0, 3, 6, 9: a null version, SSE-C, markers,
    # permanently deleted versions and markers, a final marker) and 300 rows across key boundaries mid-listing;
    # max-keys 7 and 1000 walk everything
    t0 = time.monotonic()
    assert paged(1000) == -(-len(model) // 1000)
    paged(7)
    paged(1, prefix="dir0/key-0")
    paged(1, start=len(model) // 2 - 150, max_pages=300)
    paged(7, prefix="dir1/")
    paged(1000, prefix="dir2/key-05")
    print(f"{len(model)} rows: paginated listings in {time.monotonic() - t0:.1f}s")

    # ListObjectsV2 / ListObjects, paginated: the current, non-deleted keys
    current = [(k, h[-1].size, h[-1].etag) for k, h in sorted(hist.items()) if h and not h[-1].marker]
    got, token = [], None
    while True:
        kw = {"Bucket": bucket, "MaxKeys": 7}
        if token:
            kw["ContinuationToken"] = token
        r = s3.list_objects_v2(**kw)
        got += [(o["Key"], o["Size"], o["ETag"]) for o in r.get("Contents", [])]
        if not r.get("IsTruncated"):
            break
        token = r["NextContinuationToken"]
    assert got == current
    got, marker = [], ""
    while True:
        r = s3.list_objects(Bucket=bucket, MaxKeys=7, Marker=marker)
        got += [(o["Key"], o["Size"], o["ETag"]) for o in r.get("Contents", [])]
        if not r.get("IsTruncated"):
            break
        marker = r.get("NextMarker") or r["Contents"][-1]["Key"]
    assert got == current


# ------------------------------------------------------------------------------------------------------------------
# DeleteBucket and space reclaim
# ------------------------------------------------------------------------------------------------------------------

def test_delete_bucket_needs_every_version_gone(server, s3, bucket):
    enable(s3, bucket)
    vs = [s3.put_object(Bucket=bucket, Key="x", Body=b"x%d" % i)["VersionId"] for i in range(2)]
    y = s3.put_object(Bucket=bucket, Key="y", Body=b"y")["VersionId"]
    assert_client_error(s3.delete_bucket, 409, "BucketNotEmpty", Bucket=bucket)

    # no current object left, only old versions and markers: still not empty
    mx = s3.delete_object(Bucket=bucket, Key="x")["VersionId"]
    my = s3.delete_object(Bucket=bucket, Key="y")["VersionId"]
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)
    assert_client_error(s3.delete_bucket, 409, "BucketNotEmpty", Bucket=bucket)

    for key, vid in (("x", vs[0]), ("x", vs[1]), ("y", y), ("x", mx)):
        s3.delete_object(Bucket=bucket, Key=key, VersionId=vid)
    # one delete marker left
    assert listing(s3, bucket) == [("D", "y", my, True, None, None)]
    assert_client_error(s3.delete_bucket, 409, "BucketNotEmpty", Bucket=bucket)
    s3.delete_object(Bucket=bucket, Key="y", VersionId=my)
    s3.delete_bucket(Bucket=bucket)
    assert_client_error(s3.head_bucket, 404, None, Bucket=bucket)


def test_deleted_versions_space_is_reclaimed(start_server):
    srv = start_server(name="reclaim")
    s3 = srv.client()
    bucket = unique_bucket("reclaim")
    s3.create_bucket(Bucket=bucket)
    enable(s3, bucket)
    k = secrets.token_bytes(32)
    assert blob_count(srv) == 0
    xs = [s3.put_object(Bucket=bucket, Key="x", Body=secrets.token_bytes(100_000), **ssec_params(k))["VersionId"]
          for _ in range(5)]
    ys = [s3.put_object(Bucket=bucket, Key="y", Body=secrets.token_bytes(50_000))["VersionId"] for _ in range(3)]
    assert blob_count(srv) == 8, "one blob file per single-PUT version"

    for vid in xs[:3]:
        s3.delete_object(Bucket=bucket, Key="x", VersionId=vid)
    n = wait_blob_count(srv, 5)
    assert n == 5, f"deleting 3 of 8 versions left {n} blob files (expected 5)"

    m = s3.delete_object(Bucket=bucket, Key="y")["VersionId"]  # a marker frees nothing
    assert blob_count(srv) == 5
    r = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "y", "VersionId": v} for v in ys + [m]] +
                                                 [{"Key": "x", "VersionId": v} for v in xs[3:]]})
    assert not r.get("Errors") and len(r["Deleted"]) == 6, r
    n = wait_blob_count(srv, 0)
    assert n == 0, f"{n} blob file(s) left after every version was deleted"
    s3.delete_bucket(Bucket=bucket)
    srv.restart()
    assert blob_count(srv) == 0


# ------------------------------------------------------------------------------------------------------------------
# crash during a versioned overwrite
# ------------------------------------------------------------------------------------------------------------------

BIG = 256 * MiB
KILL_AT_TMP = 100 * MiB     # kill once this much has reached DATA/tmp...
KILL_AT_SENT = 224 * MiB    # ...or, failing that, once the client has sent this much


class GenBody(io.RawIOBase):
    """A seekable, generated 256 MiB body (nothing on disk) that remembers how far it has been read."""

    def __init__(self, size: int, seed: int):
        self.size, self.pos, self.sent = size, 0, 0
        self.block = random.Random(seed).randbytes(MiB)

    def readable(self):
        return True

    def seekable(self):
        return True

    def tell(self):
        return self.pos

    def seek(self, off, whence=io.SEEK_SET):
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.pos, io.SEEK_END: self.size}[whence]
        self.pos = max(0, base + off)
        return self.pos

    def readinto(self, b):
        n = max(0, min(len(b), self.size - self.pos))
        out = memoryview(b).cast("B")
        done = 0
        while done < n:
            off = (self.pos + done) % MiB
            take = min(n - done, MiB - off)
            out[done:done + take] = self.block[off:off + take]
            done += take
        self.pos += n
        self.sent = max(self.sent, self.pos)
        return n


def tmp_bytes(srv) -> int:
    total = 0
    for p in tree_files(srv.data_dir / "tmp"):
        try:
            total += p.stat().st_size
        except FileNotFoundError:
            pass
    return total


@pytest.mark.slow
def test_kill9_during_versioned_overwrite(start_server):
    srv = start_server(name="vcrash")
    s3 = srv.client(read_timeout=600)
    bucket = unique_bucket("vcrash")
    s3.create_bucket(Bucket=bucket)
    enable(s3, bucket)
    k1, k2, k3 = (secrets.token_bytes(32) for _ in range(3))
    d1, d2 = secrets.token_bytes(300_000), secrets.token_bytes(123_457)
    r1 = s3.put_object(Bucket=bucket, Key="victim", Body=d1, **ssec_params(k1))
    r2 = s3.put_object(Bucket=bucket, Key="victim", Body=d2, **ssec_params(k2))
    acked = [(r2["VersionId"], len(d2), r2["ETag"]), (r1["VersionId"], len(d1), r1["ETag"])]
    assert blob_count(srv) == 2

    body = GenBody(BIG, seed=4)
    outcome = {}

    def upload():
        try:
            outcome["result"] = s3.put_object(Bucket=bucket, Key="victim", Body=body, **ssec_params(k3))
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
        time.sleep(0.01)
    assert t.is_alive(), f"the 256 MiB upload ended before the kill: {outcome}"
    sent_at_kill = body.sent
    srv.kill()
    t.join(120)
    assert "result" not in outcome, "the upload cannot have succeeded: the server was killed mid-body"
    print(f"killed after {sent_at_kill // MiB} MiB sent, {seen_tmp // MiB} MiB seen in DATA/tmp")

    srv.start()
    s3 = srv.client()
    # the acknowledged versions, and only they
    r = s3.list_object_versions(Bucket=bucket)
    assert "DeleteMarkers" not in r, r
    assert [(v["VersionId"], v["Size"], v["ETag"]) for v in r["Versions"]] == acked, \
        "the version list after the crash is not exactly the acknowledged versions"
    assert [v["IsLatest"] for v in r["Versions"]] == [True, False]
    got_r, got = get_bytes(s3, bucket, "victim", k1, VersionId=r1["VersionId"])
    assert got == d1 and got_r["ETag"] == r1["ETag"] and got_r["VersionId"] == r1["VersionId"]
    got_r, got = get_bytes(s3, bucket, "victim", k2)
    assert got == d2 and got_r["VersionId"] == r2["VersionId"]
    assert_client_error(s3.get_object, 403, "AccessDenied", Bucket=bucket, Key="victim", **ssec_params(k3))
    assert_client_error(s3.get_object, 403, "AccessDenied", Bucket=bucket, Key="victim",
                        VersionId=r1["VersionId"], **ssec_params(k2))
    assert [(o["Key"], o["Size"], o["ETag"]) for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == \
        [("victim", len(d2), r2["ETag"])]

    # start-up pass: no temp file; one blob per acknowledged version
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if not tree_files(srv.data_dir / "tmp") and blob_count(srv) == len(acked):
            break
        time.sleep(0.2)
    assert tree_files(srv.data_dir / "tmp") == [], "temp files survived the start-up pass"
    assert blob_count(srv) == len(acked), f"blob files != versions: {tree_files(srv.data_dir / 'blobs')}"
    assert seen_tmp > 0, (f"nothing appeared under {srv.data_dir / 'tmp'} while {sent_at_kill // MiB} MiB were "
                          "sent: is the upload buffered in memory, or written elsewhere?")

    # and versioning goes on
    r3 = s3.put_object(Bucket=bucket, Key="victim", Body=b"after", **ssec_params(k3))
    assert r3["VersionId"] not in (r1["VersionId"], r2["VersionId"])
    assert [v["VersionId"] for v in s3.list_object_versions(Bucket=bucket)["Versions"]] == \
        [r3["VersionId"], r2["VersionId"], r1["VersionId"]]
