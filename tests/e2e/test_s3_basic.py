"""The S3 protocol surface of issue 2 (plain objects): buckets, objects, listing, ranges, conditionals, overrides,
metadata, Content-MD5, error bodies and request ids, path- and virtual-hosted-style addressing, every SigV4 form
(header, presigned, unsigned payload, signed single chunk, signed aws-chunked, unsigned aws-chunked with trailers),
anonymous and skewed requests, checksums, and per-user bucket ownership.
"""

import base64
import datetime as dt
import hashlib
import hmac
import http.client
import secrets
import ssl
import time
import zlib
from email.utils import format_datetime
from urllib.parse import unquote_plus

import botocore.auth
import pytest
import requests

from conftest import (assert_client_error, assert_s3_error, describe, md5_b64, s3_error, unique_bucket,
                      utcnow_naive, xml_root)


# ------------------------------------------------------------------------------------------------------------------
# buckets
# ------------------------------------------------------------------------------------------------------------------

def test_list_buckets(s3):
    names = [unique_bucket("lb1"), unique_bucket("lb2")]
    for n in names:
        s3.create_bucket(Bucket=n)
    resp = s3.list_buckets()
    listed = [b["Name"] for b in resp["Buckets"]]
    assert set(names) <= set(listed)
    assert listed == sorted(listed), "ListBuckets is ordered by name"
    assert resp["Owner"].get("ID")
    for b in resp["Buckets"]:
        assert b["CreationDate"]


def test_create_bucket_without_location_constraint_and_get_location(s3):
    name = unique_bucket("noloc")
    s3.create_bucket(Bucket=name)
    s3.head_bucket(Bucket=name)
    loc = s3.get_bucket_location(Bucket=name)["LocationConstraint"]
    assert loc in (None, "", "us-east-1"), loc  # AWS answers null for us-east-1


def test_create_bucket_with_location_constraint(start_server):
    srv = start_server(args=["--region", "eu-central-1"], name="region")
    s3 = srv.client(region="eu-central-1")
    with_loc = unique_bucket("withloc")
    s3.create_bucket(Bucket=with_loc, CreateBucketConfiguration={"LocationConstraint": "eu-central-1"})
    assert s3.get_bucket_location(Bucket=with_loc)["LocationConstraint"] == "eu-central-1"
    s3.put_object(Bucket=with_loc, Key="k", Body=b"v")
    assert s3.get_object(Bucket=with_loc, Key="k")["Body"].read() == b"v"


@pytest.mark.parametrize("name", [
    "ab", "a" * 64, "Upper-Case-Name", "under_score", "-leading-hyphen", "trailing-hyphen-", "192.168.5.4",
    "double..dot", ".leading-dot", "trailing-dot.", "sp ace",
])
def test_invalid_bucket_names_are_refused(server, name):
    r = server.request("PUT", name)
    assert_s3_error(r, 400, "InvalidBucketName")


def test_valid_unusual_bucket_names_are_accepted(server, s3):
    for name in ("abc" + secrets.token_hex(2), "a.b-c." + secrets.token_hex(4), "9" + secrets.token_hex(31)):
        assert 3 <= len(name) <= 63
        r = server.request("PUT", name)
        assert r.status_code == 200, describe(r)
        s3.head_bucket(Bucket=name)


def test_create_existing_own_bucket_is_bucket_already_owned_by_you(s3, bucket, start_server):
    # us-east-1 keeps AWS's legacy answer: re-creating your own bucket is a 200 that changes nothing.
    s3.put_object(Bucket=bucket, Key="kept", Body=b"1")
    assert s3.create_bucket(Bucket=bucket)["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert s3.get_object(Bucket=bucket, Key="kept")["Body"].read() == b"1"
    # Every other region answers 409 BucketAlreadyOwnedByYou.
    srv = start_server(args=["--region", "eu-west-1"])
    eu = srv.client(region="eu-west-1")
    name = unique_bucket("eu")
    cfg = {"LocationConstraint": "eu-west-1"}
    eu.create_bucket(Bucket=name, CreateBucketConfiguration=cfg)
    assert_client_error(eu.create_bucket, 409, "BucketAlreadyOwnedByYou", Bucket=name, CreateBucketConfiguration=cfg)


def test_head_bucket(server, s3, bucket):
    assert s3.head_bucket(Bucket=bucket)["ResponseMetadata"]["HTTPStatusCode"] == 200
    missing = unique_bucket("missing")
    assert_client_error(s3.head_bucket, 404, None, Bucket=missing)
    assert_s3_error(server.request("HEAD", missing), 404)


def test_delete_bucket(server, s3):
    name = unique_bucket("del")
    s3.create_bucket(Bucket=name)
    s3.put_object(Bucket=name, Key="x", Body=b"1")
    assert_client_error(s3.delete_bucket, 409, "BucketNotEmpty", Bucket=name)
    s3.delete_object(Bucket=name, Key="x")
    assert s3.delete_bucket(Bucket=name)["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert_client_error(s3.head_bucket, 404, None, Bucket=name)
    assert_client_error(s3.delete_bucket, 404, "NoSuchBucket", Bucket=name)
    assert name not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


# ------------------------------------------------------------------------------------------------------------------
# objects
# ------------------------------------------------------------------------------------------------------------------

def test_put_get_head_delete_object(s3, bucket):
    data = secrets.token_bytes(10_000)
    put = s3.put_object(Bucket=bucket, Key="dir/obj", Body=data)
    etag = put["ETag"]
    assert etag == f'"{hashlib.md5(data).hexdigest()}"', "a plain single-PUT object's ETag is the MD5 of its data"
    got = s3.get_object(Bucket=bucket, Key="dir/obj")
    assert got["Body"].read() == data
    assert got["ETag"] == etag and got["ContentLength"] == len(data)
    head = s3.head_object(Bucket=bucket, Key="dir/obj")
    assert head["ContentLength"] == len(data) and head["ETag"] == etag
    age = dt.datetime.now(dt.timezone.utc) - head["LastModified"]
    assert dt.timedelta(seconds=-60) < age < dt.timedelta(minutes=10), head["LastModified"]
    assert s3.delete_object(Bucket=bucket, Key="dir/obj")["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert_client_error(s3.get_object, 404, "NoSuchKey", Bucket=bucket, Key="dir/obj")
    assert_client_error(s3.head_object, 404, None, Bucket=bucket, Key="dir/obj")
    # deleting what is not there succeeds, as on S3
    assert s3.delete_object(Bucket=bucket, Key="dir/obj")["ResponseMetadata"]["HTTPStatusCode"] == 204


def test_overwrite_replaces_object(s3, bucket):
    s3.put_object(Bucket=bucket, Key="o", Body=b"first version")
    s3.put_object(Bucket=bucket, Key="o", Body=b"second")
    got = s3.get_object(Bucket=bucket, Key="o")
    assert got["Body"].read() == b"second" and got["ContentLength"] == 6


def test_zero_byte_object(s3, bucket):
    put = s3.put_object(Bucket=bucket, Key="empty", Body=b"")
    assert put["ETag"] == '"d41d8cd98f00b204e9800998ecf8427e"'
    got = s3.get_object(Bucket=bucket, Key="empty")
    assert got["Body"].read() == b"" and got["ContentLength"] == 0


def test_missing_bucket_and_key_errors(server, s3, bucket):
    missing = unique_bucket("nob")
    assert_client_error(s3.get_object, 404, "NoSuchBucket", Bucket=missing, Key="k")
    assert_client_error(s3.put_object, 404, "NoSuchBucket", Bucket=missing, Key="k", Body=b"x")
    assert_client_error(s3.list_objects_v2, 404, "NoSuchBucket", Bucket=missing)
    assert_client_error(s3.get_object, 404, "NoSuchKey", Bucket=bucket, Key="nope")


def test_delete_objects_verbose_and_quiet(s3, bucket):
    for k in ("d1", "d2", "d3", "keep"):
        s3.put_object(Bucket=bucket, Key=k, Body=k.encode())
    resp = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "d1"}, {"Key": "d2"}, {"Key": "never"}]})
    assert sorted(d["Key"] for d in resp.get("Deleted", [])) == ["d1", "d2", "never"]
    assert not resp.get("Errors")
    resp = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "d3"}], "Quiet": True})
    assert not resp.get("Deleted"), "Quiet mode reports only errors"
    assert not resp.get("Errors")
    left = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert left == ["keep"]


# ------------------------------------------------------------------------------------------------------------------
# listing
# ------------------------------------------------------------------------------------------------------------------

LIST_KEYS = sorted(["a/1", "a/2", "a/b/3", "a/b/4", "b/5", "c", "d/e/f", "e", "e0", "f/"])


@pytest.fixture(scope="module")
def listing_bucket(s3):
    name = unique_bucket("listing")
    s3.create_bucket(Bucket=name)
    for k in LIST_KEYS:
        s3.put_object(Bucket=name, Key=k, Body=k.encode())
    return name


def keys_of(resp):
    return [o["Key"] for o in resp.get("Contents", [])]


def prefixes_of(resp):
    return [p["Prefix"] for p in resp.get("CommonPrefixes", [])]


def test_list_all(s3, listing_bucket):
    v1 = s3.list_objects(Bucket=listing_bucket)
    v2 = s3.list_objects_v2(Bucket=listing_bucket)
    assert keys_of(v1) == LIST_KEYS and keys_of(v2) == LIST_KEYS
    assert v2["KeyCount"] == len(LIST_KEYS)
    assert not v1["IsTruncated"] and not v2["IsTruncated"]
    for o in v2["Contents"]:
        assert o["Size"] == len(o["Key"])
        assert o["ETag"] == f'"{hashlib.md5(o["Key"].encode()).hexdigest()}"'


def test_list_prefix(s3, listing_bucket):
    assert keys_of(s3.list_objects(Bucket=listing_bucket, Prefix="a/")) == ["a/1", "a/2", "a/b/3", "a/b/4"]
    assert keys_of(s3.list_objects_v2(Bucket=listing_bucket, Prefix="a/b")) == ["a/b/3", "a/b/4"]
    assert keys_of(s3.list_objects_v2(Bucket=listing_bucket, Prefix="e")) == ["e", "e0"]
    assert keys_of(s3.list_objects_v2(Bucket=listing_bucket, Prefix="zzz")) == []


def test_list_delimiter_common_prefixes(s3, listing_bucket):
    for op in (s3.list_objects, s3.list_objects_v2):
        top = op(Bucket=listing_bucket, Delimiter="/")
        assert keys_of(top) == ["c", "e", "e0"]
        assert prefixes_of(top) == ["a/", "b/", "d/", "f/"]
        sub = op(Bucket=listing_bucket, Prefix="a/", Delimiter="/")
        assert keys_of(sub) == ["a/1", "a/2"] and prefixes_of(sub) == ["a/b/"]
        nested = op(Bucket=listing_bucket, Prefix="d/", Delimiter="/")
        assert keys_of(nested) == [] and prefixes_of(nested) == ["d/e/"]
    v2 = s3.list_objects_v2(Bucket=listing_bucket, Delimiter="/")
    assert v2["KeyCount"] == 3 + 4


def test_list_v1_max_keys_and_marker(s3, listing_bucket):
    seen, marker, pages = [], "", 0
    while True:
        resp = s3.list_objects(Bucket=listing_bucket, MaxKeys=3, Marker=marker)
        page = keys_of(resp)
        assert len(page) <= 3
        seen += page
        pages += 1
        if not resp["IsTruncated"]:
            break
        assert len(page) == 3
        marker = resp.get("NextMarker") or page[-1]
        assert pages < 20
    assert seen == LIST_KEYS and pages == 4
    after = s3.list_objects(Bucket=listing_bucket, Marker="b/5")
    assert keys_of(after) == [k for k in LIST_KEYS if k > "b/5"]


def test_list_v1_delimiter_pagination_uses_next_marker(s3, listing_bucket):
    entries, marker = [], ""
    for _ in range(20):
        resp = s3.list_objects(Bucket=listing_bucket, Delimiter="/", MaxKeys=2, Marker=marker)
        got = keys_of(resp) + prefixes_of(resp)
        assert len(got) <= 2
        entries += got
        if not resp["IsTruncated"]:
            break
        assert resp.get("NextMarker"), "a truncated v1 listing with a delimiter returns NextMarker"
        marker = resp["NextMarker"]
    assert sorted(entries) == ["a/", "b/", "c", "d/", "e", "e0", "f/"]
    assert len(entries) == len(set(entries))


def test_list_v2_max_keys_continuation_token(s3, listing_bucket):
    seen, token, pages = [], None, 0
    while True:
        kwargs = {"ContinuationToken": token} if token else {}
        resp = s3.list_objects_v2(Bucket=listing_bucket, MaxKeys=4, **kwargs)
        assert resp["KeyCount"] == len(keys_of(resp)) <= 4
        assert resp["MaxKeys"] == 4
        seen += keys_of(resp)
        pages += 1
        if not resp["IsTruncated"]:
            assert "NextContinuationToken" not in resp
            break
        token = resp["NextContinuationToken"]
        assert pages < 20
    assert seen == LIST_KEYS and pages == 3


def test_list_v2_start_after(s3, listing_bucket):
    resp = s3.list_objects_v2(Bucket=listing_bucket, StartAfter="a/b/3")
    assert keys_of(resp) == [k for k in LIST_KEYS if k > "a/b/3"]
    assert resp["StartAfter"] == "a/b/3"
    resp = s3.list_objects_v2(Bucket=listing_bucket, StartAfter="a/b/3", MaxKeys=2)
    assert keys_of(resp) == ["a/b/4", "b/5"] and resp["IsTruncated"]
    resp2 = s3.list_objects_v2(Bucket=listing_bucket, StartAfter="a/b/3", MaxKeys=100,
                               ContinuationToken=resp["NextContinuationToken"])
    assert keys_of(resp2) == [k for k in LIST_KEYS if k > "b/5"]


def test_list_v2_delimiter_pagination(s3, listing_bucket):
    entries, token = [], None
    for _ in range(20):
        kwargs = {"ContinuationToken": token} if token else {}
        resp = s3.list_objects_v2(Bucket=listing_bucket, Delimiter="/", MaxKeys=3, **kwargs)
        got = keys_of(resp) + prefixes_of(resp)
        assert resp["KeyCount"] == len(got) <= 3
        entries += got
        if not resp["IsTruncated"]:
            break
        token = resp["NextContinuationToken"]
    assert sorted(entries) == ["a/", "b/", "c", "d/", "e", "e0", "f/"]
    assert len(entries) == len(set(entries))


def test_list_v2_fetch_owner(s3, listing_bucket):
    without = s3.list_objects_v2(Bucket=listing_bucket, MaxKeys=2)
    assert all("Owner" not in o for o in without["Contents"]), "ListObjectsV2 omits Owner unless fetch-owner=true"
    with_owner = s3.list_objects_v2(Bucket=listing_bucket, MaxKeys=2, FetchOwner=True)
    for o in with_owner["Contents"]:
        assert o.get("Owner", {}).get("ID"), o


WEIRD_KEYS = sorted(["sp ace/x", "plus+sign", "uni/\u00e7\u00e9\u4e2d", "pct%41", "amp&<lt>", "ctl\x01char",
                     "tab\tkey", "quote\"'", "star*(paren)", "tilde~", "new\nline", "hash#q?"])


def test_list_encoding_type_url_with_weird_keys(server, s3):
    name = unique_bucket("weird")
    s3.create_bucket(Bucket=name)
    for k in WEIRD_KEYS:
        s3.put_object(Bucket=name, Key=k, Body=k.encode())
    for k in WEIRD_KEYS:
        assert s3.get_object(Bucket=name, Key=k)["Body"].read() == k.encode()
    # boto3 asks for encoding-type=url and decodes (unquote_plus) on its own
    assert keys_of(s3.list_objects_v2(Bucket=name)) == WEIRD_KEYS
    assert keys_of(s3.list_objects(Bucket=name)) == WEIRD_KEYS
    # and on the wire, every key is URL-encoded so that the XML stays valid
    for query in ({"list-type": "2", "encoding-type": "url"}, {"encoding-type": "url"}):
        r = server.request("GET", name, query=query)
        assert r.status_code == 200, describe(r)
        assert b"\x01" not in r.content and b"\t" not in r.content.split(b"<Contents>", 1)[-1]
        root = xml_root(r.content)
        assert root.findtext("EncodingType") == "url"
        wire = [el.text for el in root.iter("Key")]
        assert sorted(unquote_plus(w) for w in wire) == WEIRD_KEYS, wire
    # delimiter results are encoded too
    r = server.request("GET", name, query={"list-type": "2", "encoding-type": "url", "delimiter": "/"})
    root = xml_root(r.content)
    prefixes = sorted(unquote_plus(p.findtext("Prefix")) for p in root.iter("CommonPrefixes"))
    assert prefixes == ["sp ace/", "uni/"]


# ------------------------------------------------------------------------------------------------------------------
# ranges, conditionals, overrides
# ------------------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def thousand(server, s3):
    name = unique_bucket("thousand")
    s3.create_bucket(Bucket=name)
    data = secrets.token_bytes(1000)
    s3.put_object(Bucket=name, Key="obj", Body=data)
    head = server.request("HEAD", name, "obj")
    return name, data, head.headers["ETag"], head.headers["Last-Modified"]


@pytest.mark.parametrize("spec,start,end", [
    ("bytes=0-9", 0, 9), ("bytes=990-", 990, 999), ("bytes=-10", 990, 999), ("bytes=500-500", 500, 500),
    ("bytes=900-5000", 900, 999), ("bytes=-5000", 0, 999), ("bytes=0-", 0, 999),
])
def test_range_forms(server, thousand, spec, start, end):
    name, data, _, _ = thousand
    r = server.request("GET", name, "obj", headers={"Range": spec})
    assert r.status_code == 206, describe(r)
    assert r.headers["Content-Range"] == f"bytes {start}-{end}/1000"
    assert r.content == data[start:end + 1]
    assert int(r.headers["Content-Length"]) == end - start + 1


def test_range_not_satisfiable_is_416_invalid_range(server, thousand):
    name, _, _, _ = thousand
    r = server.request("GET", name, "obj", headers={"Range": "bytes=1000-"})
    assert_s3_error(r, 416, "InvalidRange")
    r = server.request("GET", name, "obj", headers={"Range": "bytes=5000-6000"})
    assert_s3_error(r, 416, "InvalidRange")


def test_boto3_range(s3, thousand):
    name, data, _, _ = thousand
    got = s3.get_object(Bucket=name, Key="obj", Range="bytes=10-19")
    assert got["Body"].read() == data[10:20] and got["ContentRange"] == "bytes 10-19/1000"


PAST = "Sat, 01 Jan 2000 00:00:00 GMT"


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_conditional_requests(server, thousand, method):
    name, data, etag, last_modified = thousand

    def req(**headers):
        return server.request(method, name, "obj", headers=headers)

    def ok(r):
        assert r.status_code == 200, describe(r)
        if method == "GET":
            assert r.content == data

    ok(req(**{"If-Match": etag}))
    assert_s3_error(req(**{"If-Match": '"0123456789abcdef0123456789abcdef"'}), 412, "PreconditionFailed")
    r = req(**{"If-None-Match": etag})
    assert r.status_code == 304, describe(r)
    assert r.content == b""
    assert r.headers.get("ETag") == etag, "a 304 carries the ETag"
    ok(req(**{"If-None-Match": '"0123456789abcdef0123456789abcdef"'}))
    r = req(**{"If-Modified-Since": last_modified})
    assert r.status_code == 304, describe(r)
    ok(req(**{"If-Modified-Since": PAST}))
    assert_s3_error(req(**{"If-Unmodified-Since": PAST}), 412, "PreconditionFailed")
    ok(req(**{"If-Unmodified-Since": last_modified}))
    # AWS's documented combinations
    ok(req(**{"If-Match": etag, "If-Unmodified-Since": PAST}))
    r = req(**{"If-None-Match": etag, "If-Modified-Since": PAST})
    assert r.status_code == 304, describe(r)


def test_response_header_overrides(server, thousand):
    name, data, _, _ = thousand
    overrides = {
        "response-content-type": "application/x-coffer-test",
        "response-content-language": "de-CH",
        "response-expires": "Thu, 01 Dec 2033 16:00:00 GMT",
        "response-cache-control": "no-cache, private",
        "response-content-disposition": 'attachment; filename="x y.bin"',
        "response-content-encoding": "x-coffer",
    }
    r = server.request("GET", name, "obj", query=overrides)
    assert r.status_code == 200, describe(r)
    assert r.content == data
    assert r.headers["Content-Type"] == overrides["response-content-type"]
    assert r.headers["Content-Language"] == overrides["response-content-language"]
    assert r.headers["Expires"] == overrides["response-expires"]
    assert r.headers["Cache-Control"] == overrides["response-cache-control"]
    assert r.headers["Content-Disposition"] == overrides["response-content-disposition"]
    assert r.headers["Content-Encoding"] == overrides["response-content-encoding"]


# ------------------------------------------------------------------------------------------------------------------
# metadata, Content-MD5
# ------------------------------------------------------------------------------------------------------------------

def test_metadata_and_standard_headers_round_trip(server, s3, bucket):
    expires = dt.datetime(2030, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)
    meta = {"color": "blue", "multi-word": "two words", "empty-ish": "-"}
    s3.put_object(Bucket=bucket, Key="m", Body=b"not really gzip", Metadata=meta, ContentType="text/x-coffer",
                  ContentEncoding="gzip", ContentDisposition='attachment; filename="a b.txt"',
                  CacheControl="max-age=60", Expires=expires, ContentLanguage="fr")
    head = s3.head_object(Bucket=bucket, Key="m")
    assert head["Metadata"] == meta
    assert head["ContentType"] == "text/x-coffer"
    assert head["ContentEncoding"] == "gzip", "aws-chunked must be stripped from the stored Content-Encoding"
    assert head["ContentDisposition"] == 'attachment; filename="a b.txt"'
    assert head["CacheControl"] == "max-age=60"
    assert head["ContentLanguage"] == "fr"
    for method in ("HEAD", "GET"):
        r = server.request(method, bucket, "m", stream=True)  # stream: requests would try to gunzip the body
        r.close()
        assert r.status_code == 200, r.headers
        assert r.headers["Expires"] == format_datetime(expires, usegmt=True)
        assert r.headers["x-amz-meta-color"] == "blue"
        assert r.headers["x-amz-meta-multi-word"] == "two words"
        assert r.headers["Content-Encoding"] == "gzip"
    got = s3.get_object(Bucket=bucket, Key="m")
    assert got["Metadata"] == meta and got["Body"].read() == b"not really gzip"


def test_metadata_with_raw_signed_put(server, bucket):
    headers = {"x-amz-meta-Mixed-Case": "Value With Spaces", "Content-Type": "image/png"}
    r = server.request("PUT", bucket, "raw-meta", body=b"\x89PNG", headers=headers)
    assert r.status_code == 200, describe(r)
    r = server.request("HEAD", bucket, "raw-meta")
    assert r.headers["x-amz-meta-mixed-case"] == "Value With Spaces"
    assert r.headers["Content-Type"] == "image/png"


def test_content_md5_is_verified(server, s3, bucket):
    data = secrets.token_bytes(2048)
    r = server.request("PUT", bucket, "md5-ok", body=data, headers={"Content-MD5": md5_b64(data)})
    assert r.status_code == 200, describe(r)
    r = server.request("PUT", bucket, "md5-bad", body=data, headers={"Content-MD5": md5_b64(b"other")})
    assert_s3_error(r, 400, "BadDigest")
    assert_client_error(s3.head_object, 404, None, Bucket=bucket, Key="md5-bad")
    # the same through boto3's default aws-chunked upload
    assert_client_error(s3.put_object, 400, "BadDigest", Bucket=bucket, Key="md5-bad2", Body=data,
                        ContentMD5=md5_b64(b"other"))
    assert_client_error(s3.head_object, 404, None, Bucket=bucket, Key="md5-bad2")
    s3.put_object(Bucket=bucket, Key="md5-ok2", Body=data, ContentMD5=md5_b64(data))


# ------------------------------------------------------------------------------------------------------------------
# errors and request ids
# ------------------------------------------------------------------------------------------------------------------

def test_error_xml_has_code_message_resource_request_id(server, bucket):
    r = server.request("GET", bucket, "no/such key")
    err = assert_s3_error(r, 404, "NoSuchKey")
    for field in ("Code", "Message", "Resource", "RequestId"):
        assert err.get(field), f"error XML lacks {field}\n{describe(r)}"
    assert "xml" in r.headers.get("Content-Type", ""), describe(r)
    r = server.request("GET", unique_bucket("nob"), "k")
    err = assert_s3_error(r, 404, "NoSuchBucket")
    for field in ("Code", "Message", "Resource", "RequestId"):
        assert err.get(field), f"error XML lacks {field}\n{describe(r)}"


def test_error_request_id_matches_header(server, bucket):
    r = server.request("GET", bucket, "missing")
    assert s3_error(r).get("RequestId") == r.headers.get("x-amz-request-id"), describe(r)


def test_every_response_has_a_request_id(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="rid", Body=b"0123456789")
    etag = s3.head_object(Bucket=bucket, Key="rid")["ETag"]
    responses = [
        server.request("GET"),                                                 # ListBuckets 200
        server.request("PUT", bucket, "rid2", body=b"x"),                      # 200
        server.request("GET", bucket, "rid"),                                  # 200
        server.request("HEAD", bucket, "rid"),                                 # 200
        server.request("HEAD", bucket, "missing"),                             # 404, no body
        server.request("GET", bucket, "rid", headers={"If-None-Match": etag}),  # 304
        server.request("GET", bucket, "rid", headers={"If-Match": '"x"'}),     # 412
        server.request("GET", bucket, "rid", headers={"Range": "bytes=50-"}),  # 416
        server.request("GET", bucket, "rid", sign=False),                      # 403 anonymous
        server.request("PUT", "Bad_Name"),                                     # 400
        server.request("DELETE", bucket, "rid2"),                              # 204
        server.request("GET", bucket, query={"list-type": "2"}),               # 200 listing
        server.request("GET", bucket, "rid", scheme="http"),                   # plain HTTP listener
    ]
    ids = []
    for r in responses:
        rid = r.headers.get("x-amz-request-id")
        assert rid, f"no x-amz-request-id\n{describe(r)}"
        ids.append(rid)
    assert len(set(ids)) == len(ids), f"request ids are not unique: {ids}"


def test_head_error_has_no_body_on_a_kept_alive_connection(server, s3, bucket):
    """A HEAD error must not send a body: the next response on the same connection must parse cleanly."""
    s3.put_object(Bucket=bucket, Key="present", Body=b"present!")
    ctx = ssl.create_default_context(cafile=server.ca)
    host = server.https.split("://", 1)[1]
    conn = http.client.HTTPSConnection(host, context=ctx, timeout=30)
    try:
        for key, want in (("absent", 404), ("present", 200), ("absent", 404)):
            url = server.url(bucket, key)
            conn.request("HEAD", url.split(host, 1)[1], headers=server.sign("HEAD", url))
            resp = conn.getresponse()
            assert resp.status == want
            assert resp.read() == b""
        url = server.url(bucket, "present")
        conn.request("GET", url.split(host, 1)[1], headers=server.sign("GET", url))
        resp = conn.getresponse()
        assert resp.status == 200 and resp.read() == b"present!"
    finally:
        conn.close()


# ------------------------------------------------------------------------------------------------------------------
# addressing
# ------------------------------------------------------------------------------------------------------------------

def test_virtual_hosted_style_addressing(start_server):
    srv = start_server(args=["--domain", "coffer.test"], name="vhost")
    port = srv.https_port
    name = unique_bucket("vhost")

    def vreq(method, path="/", host=f"{name}.coffer.test:{port}", **kw):
        url = f"https://127.0.0.1:{port}{path}"
        headers = {"Host": host, **kw.pop("headers", {})}
        return srv.request(method, url=url, headers=headers, **kw)

    r = vreq("PUT")
    assert r.status_code == 200, describe(r)
    r = vreq("PUT", "/dir/hello.txt", body=b"virtual hello")
    assert r.status_code == 200, describe(r)
    r = vreq("GET", "/dir/hello.txt")
    assert r.status_code == 200 and r.content == b"virtual hello", describe(r)
    r = vreq("GET", "/?list-type=2")
    assert r.status_code == 200, describe(r)
    root = xml_root(r.content)
    assert root.findtext("Name") == name
    assert [k.text for k in root.iter("Key")] == ["dir/hello.txt"]
    # the same bucket path-style, and the bare domain / the IP as the service endpoint
    r = srv.request("GET", name, "dir/hello.txt")
    assert r.status_code == 200 and r.content == b"virtual hello", describe(r)
    r = vreq("GET", "/", host=f"coffer.test:{port}")
    assert r.status_code == 200 and name.encode() in r.content, describe(r)
    r = srv.request("GET")
    assert r.status_code == 200 and name.encode() in r.content, describe(r)
    r = vreq("GET", "/dir/hello.txt", host=f"{unique_bucket('absent')}.coffer.test:{port}")
    assert_s3_error(r, 404, "NoSuchBucket")


# ------------------------------------------------------------------------------------------------------------------
# authentication
# ------------------------------------------------------------------------------------------------------------------

def test_presigned_get_works_and_expires(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="pre", Body=b"presigned body")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "pre"}, ExpiresIn=300)
    r = requests.get(url, verify=server.ca, timeout=30)
    assert r.status_code == 200 and r.content == b"presigned body", describe(r)
    # tampering with the signature is refused
    bad = url[:-1] + ("0" if url[-1] != "0" else "1")
    assert_s3_error(requests.get(bad, verify=server.ca, timeout=30), 403, "SignatureDoesNotMatch")
    # signed two hours ago, valid for a minute: expired
    real = botocore.auth.get_current_datetime
    botocore.auth.get_current_datetime = lambda *a, **k: utcnow_naive() - dt.timedelta(hours=2)
    try:
        old = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "pre"}, ExpiresIn=60)
    finally:
        botocore.auth.get_current_datetime = real
    assert_s3_error(requests.get(old, verify=server.ca, timeout=30), 403, "AccessDenied")
    # and a short expiry runs out in real time
    short = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "pre"}, ExpiresIn=5)
    assert requests.get(short, verify=server.ca, timeout=30).status_code == 200
    time.sleep(6.5)
    assert_s3_error(requests.get(short, verify=server.ca, timeout=30), 403, "AccessDenied")


def test_presigned_put(server, s3, bucket):
    url = s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "pre-put"}, ExpiresIn=300)
    r = requests.put(url, data=b"uploaded with a presigned URL", verify=server.ca, timeout=30)
    assert r.status_code == 200, describe(r)
    assert s3.get_object(Bucket=bucket, Key="pre-put")["Body"].read() == b"uploaded with a presigned URL"


def test_anonymous_requests_are_refused(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="secret", Body=b"top secret")
    assert_s3_error(server.request("GET", sign=False), 403, "AccessDenied")
    r = server.request("GET", bucket, "secret", sign=False)
    assert_s3_error(r, 403, "AccessDenied")
    assert b"top secret" not in r.content
    assert_s3_error(server.request("GET", bucket, sign=False), 403, "AccessDenied")
    assert_s3_error(server.request("PUT", bucket, "anon", body=b"x", sign=False), 403, "AccessDenied")
    assert_s3_error(server.request("PUT", unique_bucket("anon"), sign=False), 403, "AccessDenied")
    assert_s3_error(server.request("GET", bucket, "secret", sign=False, scheme="http"), 403, "AccessDenied")
    assert_client_error(s3.head_object, 404, None, Bucket=bucket, Key="anon")


def test_bad_credentials_are_refused(server, bucket):
    r = server.request("GET", bucket, creds=(server.access_key, server.secret_key + "x"))
    assert_s3_error(r, 403, "SignatureDoesNotMatch")
    r = server.request("GET", bucket, creds=("AKNOSUCHKEY000000000", server.secret_key))
    assert_s3_error(r, 403, "InvalidAccessKeyId")


@pytest.mark.parametrize("minutes", [-20, 20])
def test_clock_skew_over_15_minutes_is_request_time_too_skewed(server, bucket, minutes):
    now = utcnow_naive() + dt.timedelta(minutes=minutes)
    r = server.request("GET", bucket, query={"list-type": "2"}, now=now)
    assert_s3_error(r, 403, "RequestTimeTooSkewed")
    r = server.request("PUT", bucket, "skewed", body=b"x", now=now)
    assert_s3_error(r, 403, "RequestTimeTooSkewed")


def test_small_clock_skew_is_accepted(server, bucket):
    r = server.request("GET", bucket, query={"list-type": "2"}, now=utcnow_naive() - dt.timedelta(minutes=5))
    assert r.status_code == 200, describe(r)


def test_unsigned_payload_and_signed_payload_puts(server, bucket):
    r = server.request("PUT", bucket, "unsigned", body=b"unsigned payload", payload_hash="UNSIGNED-PAYLOAD")
    assert r.status_code == 200, describe(r)
    r = server.request("PUT", bucket, "signed", body=b"signed payload")
    assert r.status_code == 200, describe(r)
    assert server.request("GET", bucket, "unsigned").content == b"unsigned payload"
    assert server.request("GET", bucket, "signed").content == b"signed payload"
    # a payload that does not match its signed hash is refused
    r = server.request("PUT", bucket, "lying", body=b"the real body",
                       payload_hash=hashlib.sha256(b"another body").hexdigest())
    assert r.status_code in (400, 403), describe(r)
    assert s3_error(r).get("Code") in ("XAmzContentSHA256Mismatch", "BadDigest", "SignatureDoesNotMatch"), \
        describe(r)
    assert_s3_error(server.request("GET", bucket, "lying"), 404, "NoSuchKey")


def test_boto3_over_plain_http(server, bucket):
    """Over HTTP botocore signs the payload and sends the checksum as a header."""
    c = server.client(endpoint=server.http)
    c.put_object(Bucket=bucket, Key="via-http", Body=b"plain http body")
    assert c.get_object(Bucket=bucket, Key="via-http")["Body"].read() == b"plain http body"


# ------------------------------------------------------------------------------------------------------------------
# aws-chunked bodies and checksums
# ------------------------------------------------------------------------------------------------------------------

def _crc_reflected(data: bytes, poly: int, width: int) -> int:
    mask = (1 << width) - 1
    crc = mask
    table = _crc_table(poly)
    for b in data:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ mask


_TABLES = {}


def _crc_table(poly):
    if poly not in _TABLES:
        t = []
        for i in range(256):
            c = i
            for _ in range(8):
                c = (c >> 1) ^ poly if c & 1 else c >> 1
            t.append(c)
        _TABLES[poly] = t
    return _TABLES[poly]


def checksum_b64(algo: str, data: bytes) -> str:
    if algo == "crc32":
        raw = (zlib.crc32(data) & 0xFFFFFFFF).to_bytes(4, "big")
    elif algo == "crc32c":
        raw = _crc_reflected(data, 0x82F63B78, 32).to_bytes(4, "big")
    elif algo == "crc64nvme":
        raw = _crc_reflected(data, 0x9A6C9329AC4BC9B5, 64).to_bytes(8, "big")
    elif algo == "sha1":
        raw = hashlib.sha1(data).digest()
    elif algo == "sha256":
        raw = hashlib.sha256(data).digest()
    else:
        raise ValueError(algo)
    return base64.b64encode(raw).decode()


def test_checksum_helpers_known_answers():
    assert _crc_reflected(b"123456789", 0x82F63B78, 32) == 0xE3069283
    assert _crc_reflected(b"123456789", 0x9A6C9329AC4BC9B5, 64) == 0xAE8B14860A799888
    assert (zlib.crc32(b"123456789") & 0xFFFFFFFF) == 0xCBF43926


def test_boto3_default_upload_and_checksum_mode(s3, bucket):
    data = secrets.token_bytes(200_000)
    put = s3.put_object(Bucket=bucket, Key="crc", Body=data)  # aws-chunked + CRC32 trailer over HTTPS
    assert put.get("ChecksumCRC32") == checksum_b64("crc32", data)
    head = s3.head_object(Bucket=bucket, Key="crc", ChecksumMode="ENABLED")
    assert head.get("ChecksumCRC32") == checksum_b64("crc32", data), head
    got = s3.get_object(Bucket=bucket, Key="crc", ChecksumMode="ENABLED")
    assert got.get("ChecksumCRC32") == checksum_b64("crc32", data), got
    assert got["Body"].read() == data


@pytest.mark.parametrize("algo", ["SHA256", "SHA1"])
def test_boto3_upload_with_other_checksum_algorithms(s3, bucket, algo):
    data = secrets.token_bytes(70_000)
    s3.put_object(Bucket=bucket, Key=f"ck-{algo}", Body=data, ChecksumAlgorithm=algo)
    head = s3.head_object(Bucket=bucket, Key=f"ck-{algo}", ChecksumMode="ENABLED")
    assert head.get(f"Checksum{algo}") == checksum_b64(algo.lower(), data), head


def aws_chunked_trailer_body(data: bytes, trailer_name: str, trailer_value: str, chunk=8192) -> bytes:
    out = bytearray()
    for i in range(0, len(data), chunk):
        piece = data[i:i + chunk]
        out += f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    out += b"0\r\n" + f"{trailer_name}:{trailer_value}\r\n".encode() + b"\r\n"
    return bytes(out)


def put_with_trailer(server, bucket, key, data, algo, value):
    name = f"x-amz-checksum-{algo}"
    body = aws_chunked_trailer_body(data, name, value)
    headers = {"Content-Encoding": "aws-chunked", "x-amz-decoded-content-length": str(len(data)),
               "x-amz-trailer": name, "x-amz-sdk-checksum-algorithm": algo.upper()}
    return server.request("PUT", bucket, key, body=body, headers=headers,
                          payload_hash="STREAMING-UNSIGNED-PAYLOAD-TRAILER")


@pytest.mark.parametrize("algo", ["crc32", "crc32c", "crc64nvme", "sha1", "sha256"])
def test_unsigned_trailer_checksums_verified_stored_and_returned(server, bucket, algo):
    data = secrets.token_bytes(30_000)
    r = put_with_trailer(server, bucket, f"tr-{algo}", data, algo, checksum_b64(algo, data))
    assert r.status_code == 200, describe(r)
    r = server.request("GET", bucket, f"tr-{algo}", headers={"x-amz-checksum-mode": "ENABLED"})
    assert r.status_code == 200 and r.content == data, describe(r)
    assert r.headers.get(f"x-amz-checksum-{algo}") == checksum_b64(algo, data), describe(r)
    # a wrong trailer checksum is refused and nothing is stored
    r = put_with_trailer(server, bucket, f"tr-bad-{algo}", data, algo, checksum_b64(algo, data + b"!"))
    assert r.status_code == 400, describe(r)
    assert s3_error(r).get("Code") in ("BadDigest", "InvalidRequest"), describe(r)
    assert_s3_error(server.request("GET", bucket, f"tr-bad-{algo}"), 404, "NoSuchKey")


def test_header_checksum_is_verified(server, bucket):
    data = secrets.token_bytes(5000)
    r = server.request("PUT", bucket, "hdr-ok", body=data,
                       headers={"x-amz-checksum-sha256": checksum_b64("sha256", data)})
    assert r.status_code == 200, describe(r)
    r = server.request("HEAD", bucket, "hdr-ok", headers={"x-amz-checksum-mode": "ENABLED"})
    assert r.headers.get("x-amz-checksum-sha256") == checksum_b64("sha256", data), describe(r)
    r = server.request("PUT", bucket, "hdr-bad", body=data,
                       headers={"x-amz-checksum-sha256": checksum_b64("sha256", b"other")})
    assert r.status_code == 400, describe(r)
    assert s3_error(r).get("Code") in ("BadDigest", "InvalidRequest"), describe(r)
    assert_s3_error(server.request("GET", bucket, "hdr-bad"), 404, "NoSuchKey")


def test_decoded_content_length_mismatch_is_not_stored(server, bucket):
    data = secrets.token_bytes(10_000)
    body = aws_chunked_trailer_body(data, "x-amz-checksum-crc32", checksum_b64("crc32", data))
    headers = {"Content-Encoding": "aws-chunked", "x-amz-decoded-content-length": str(len(data) + 10),
               "x-amz-trailer": "x-amz-checksum-crc32"}
    r = server.request("PUT", bucket, "short", body=body, headers=headers,
                       payload_hash="STREAMING-UNSIGNED-PAYLOAD-TRAILER")
    assert 400 <= r.status_code < 500, describe(r)
    assert_s3_error(server.request("GET", bucket, "short"), 404, "NoSuchKey")


def _hmac(key, msg):
    return hmac.new(key, msg.encode() if isinstance(msg, str) else msg, hashlib.sha256).digest()


def signed_chunked_put(server, bucket, key, data, chunk=16384, tamper_chunk=None):
    """PUT with x-amz-content-sha256: STREAMING-AWS4-HMAC-SHA256-PAYLOAD (per-chunk signatures)."""
    n_chunks = -(-len(data) // chunk)
    sig_len = 64
    length = sum(len(f"{min(chunk, len(data) - i):x};chunk-signature=") + sig_len + 2 + min(chunk, len(data) - i) + 2
                 for i in range(0, len(data), chunk))
    length += len("0;chunk-signature=") + sig_len + 4
    headers = {"Content-Encoding": "aws-chunked", "x-amz-decoded-content-length": str(len(data)),
               "Content-Length": str(length)}
    url = server.url(bucket, key)
    signed = server.sign("PUT", url, headers, payload_hash="STREAMING-AWS4-HMAC-SHA256-PAYLOAD")
    seed = signed["Authorization"].rsplit("Signature=", 1)[1]
    ts = signed["X-Amz-Date"]
    scope = f"{ts[:8]}/us-east-1/s3/aws4_request"
    k = _hmac(("AWS4" + server.secret_key).encode(), ts[:8])
    for part in ("us-east-1", "s3", "aws4_request"):
        k = _hmac(k, part)
    empty = hashlib.sha256(b"").hexdigest()
    prev, body = seed, bytearray()
    pieces = [data[i:i + chunk] for i in range(0, len(data), chunk)] + [b""]
    for idx, piece in enumerate(pieces):
        sts = "\n".join(["AWS4-HMAC-SHA256-PAYLOAD", ts, scope, prev, empty, hashlib.sha256(piece).hexdigest()])
        sig = hmac.new(k, sts.encode(), hashlib.sha256).hexdigest()
        sent = piece
        if tamper_chunk == idx and piece:
            sent = bytes([piece[0] ^ 1]) + piece[1:]
        body += f"{len(piece):x};chunk-signature={sig}\r\n".encode() + sent + b"\r\n"
        prev = sig
    assert len(body) == length and n_chunks + 1 == len(pieces)
    return requests.put(url, data=bytes(body), headers=signed, verify=server.ca, timeout=60)


def test_signed_aws_chunked_upload(server, bucket):
    data = secrets.token_bytes(50_000)
    r = signed_chunked_put(server, bucket, "streamed", data)
    assert r.status_code == 200, describe(r)
    assert server.request("GET", bucket, "streamed").content == data
    r = signed_chunked_put(server, bucket, "tampered", data, tamper_chunk=1)
    assert_s3_error(r, 403, "SignatureDoesNotMatch")
    assert_s3_error(server.request("GET", bucket, "tampered"), 404, "NoSuchKey")


# ------------------------------------------------------------------------------------------------------------------
# users and ownership
# ------------------------------------------------------------------------------------------------------------------

USERS = {
    "alice": ("AKALICE" + secrets.token_hex(6).upper(), secrets.token_urlsafe(30)[:40]),
    "bob": ("AKBOB" + secrets.token_hex(7).upper(), secrets.token_urlsafe(30)[:40]),
}


@pytest.fixture(scope="module")
def users_server(module_servers):
    config = "".join(f'[[users]]\nname = "{n}"\naccess_key = "{a}"\nsecret_key = "{s}"\n\n'
                     for n, (a, s) in USERS.items())
    return module_servers(config=config, name="users")


def test_users_own_their_buckets(users_server):
    alice = users_server.client(*USERS["alice"])
    bob = users_server.client(*USERS["bob"])
    root = users_server.client()
    a_bucket = unique_bucket("alice")
    alice.create_bucket(Bucket=a_bucket)
    alice.put_object(Bucket=a_bucket, Key="diary", Body=b"dear diary")
    assert alice.get_object(Bucket=a_bucket, Key="diary")["Body"].read() == b"dear diary"

    assert_client_error(bob.get_object, 403, "AccessDenied", Bucket=a_bucket, Key="diary")
    assert_client_error(bob.head_object, 403, None, Bucket=a_bucket, Key="diary")
    assert_client_error(bob.put_object, 403, "AccessDenied", Bucket=a_bucket, Key="graffiti", Body=b"x")
    assert_client_error(bob.list_objects_v2, 403, "AccessDenied", Bucket=a_bucket)
    assert_client_error(bob.list_objects, 403, "AccessDenied", Bucket=a_bucket)
    assert_client_error(bob.delete_object, 403, "AccessDenied", Bucket=a_bucket, Key="diary")
    assert_client_error(bob.delete_objects, 403, "AccessDenied", Bucket=a_bucket,
                        Delete={"Objects": [{"Key": "diary"}]})
    assert_client_error(bob.head_bucket, 403, None, Bucket=a_bucket)
    assert_client_error(bob.get_bucket_location, 403, "AccessDenied", Bucket=a_bucket)
    assert_client_error(bob.delete_bucket, 403, "AccessDenied", Bucket=a_bucket)
    assert_client_error(bob.create_bucket, 409, "BucketAlreadyExists", Bucket=a_bucket)
    assert alice.get_object(Bucket=a_bucket, Key="diary")["Body"].read() == b"dear diary"
    assert_client_error(alice.head_object, 404, None, Bucket=a_bucket, Key="graffiti")

    # the root user may do anything
    assert root.get_object(Bucket=a_bucket, Key="diary")["Body"].read() == b"dear diary"
    assert [o["Key"] for o in root.list_objects_v2(Bucket=a_bucket)["Contents"]] == ["diary"]

    # and the other way round
    b_bucket = unique_bucket("bob")
    bob.create_bucket(Bucket=b_bucket)
    bob.put_object(Bucket=b_bucket, Key="notes", Body=b"bob's notes")
    assert_client_error(alice.get_object, 403, "AccessDenied", Bucket=b_bucket, Key="notes")
    assert bob.get_object(Bucket=b_bucket, Key="notes")["Body"].read() == b"bob's notes"


def test_users_list_only_their_own_buckets(users_server):
    alice = users_server.client(*USERS["alice"])
    bob = users_server.client(*USERS["bob"])
    a_bucket, b_bucket = unique_bucket("alist"), unique_bucket("blist")
    alice.create_bucket(Bucket=a_bucket)
    bob.create_bucket(Bucket=b_bucket)
    a_names = [b["Name"] for b in alice.list_buckets()["Buckets"]]
    b_names = [b["Name"] for b in bob.list_buckets()["Buckets"]]
    assert a_bucket in a_names and b_bucket not in a_names
    assert b_bucket in b_names and a_bucket not in b_names


def test_root_creates_and_users_are_denied(users_server):
    root = users_server.client()
    alice = users_server.client(*USERS["alice"])
    r_bucket = unique_bucket("rootb")
    root.create_bucket(Bucket=r_bucket)
    root.put_object(Bucket=r_bucket, Key="k", Body=b"root data")
    assert_client_error(alice.get_object, 403, "AccessDenied", Bucket=r_bucket, Key="k")


def test_error_bodies_always_have_a_message(server, bucket):
    r = server.request("GET", bucket, "k" * 1025)
    err = assert_s3_error(r, 400, "KeyTooLongError")
    assert err.get("Message"), describe(r)


@pytest.mark.parametrize("name", ["sthree-bucket", "amzn-s3-demo-bucket", "bucket-s3alias", "bucket--ol-s3",
                                  "bucket--x-s3", "bucket--table-s3"])
def test_reserved_bucket_names_are_refused(s3, name):
    assert_client_error(s3.create_bucket, 400, "InvalidBucketName", Bucket=name)
