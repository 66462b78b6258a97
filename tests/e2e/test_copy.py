"""CopyObject, `aws s3 cp` between buckets and in-place key rotation with SSE-C (issue 3, design.md sections 4-5).

- `aws s3 cp s3://a/x s3://b/y --sse-c-copy-source ... --sse-c ...` across buckets for a small object (CopyObject)
  and a 20 MiB one (the CLI's multipart copy: CreateMultipartUpload + UploadPartCopy); k2 reads, k1 gets 403.
- CopyObject: metadata directive COPY / REPLACE, URL-encoded source keys (spaces, unicode, `+`), the four
  `x-amz-copy-source-if-*` conditions, self-copy without change (400 InvalidRequest), every SSE-C combination and
  its errors.
- Key rotation in place with `aws s3api copy-object` (K1 -> K2 on the same key) for a 1 KiB and a 1 GiB object:
  the blob files are untouched (same inode / mtime / size) and both rotations take about the same time.
- A change of encryption mode in place (plain <-> SSE-C) rewrites the data.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import secrets
import time
from pathlib import Path

import pytest
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError

from conftest import describe, md5_b64, s3_error, ssec_headers, tree_files, unique_bucket

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB
CLI_PART = 8 * MiB


# ------------------------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------------------------

def write_random_file(path: Path, size: int, block: int = 8 * MiB) -> str:
    """Write `size` random bytes (os.urandom in 8 MiB blocks), hashing while writing; returns the sha256 hex."""
    path.parent.mkdir(parents=True, exist_ok=True)
    h = hashlib.sha256()
    with open(path, "wb") as f:
        left = size
        while left > 0:
            piece = os.urandom(min(block, left))
            h.update(piece)
            f.write(piece)
            left -= len(piece)
    return h.hexdigest()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while piece := f.read(8 * MiB):
            h.update(piece)
    return h.hexdigest()


def cli_config(work: Path) -> dict:
    """env_extra for server.aws(): the CLI's default 8 MiB multipart threshold and part size."""
    cfg = work / "aws-config-copy"
    cfg.write_text("[default]\nregion = us-east-1\ns3 =\n    multipart_threshold = 8MB\n"
                   "    multipart_chunksize = 8MB\n    max_concurrent_requests = 10\n")
    return {"AWS_CONFIG_FILE": str(cfg)}


def sse(key: bytes) -> dict:
    return {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": key}


def copy_sse(key: bytes) -> dict:
    return {"CopySourceSSECustomerAlgorithm": "AES256", "CopySourceSSECustomerKey": key}


def copy_ssec_headers(key: bytes) -> dict:
    return {"x-amz-copy-source-" + name.removeprefix("x-amz-"): value for name, value in ssec_headers(key).items()}


def _redact(kwargs: dict) -> dict:
    out = {}
    for k, v in kwargs.items():
        if k == "Body":
            out[k] = f"<{len(v)} bytes>" if isinstance(v, (bytes, bytearray)) else "<stream>"
        elif k.endswith("SSECustomerKey"):
            out[k] = f"<key md5 {md5_b64(v if isinstance(v, bytes) else v.encode())}>"
        else:
            out[k] = v
    return out


def expect_error(fn, status: int, code: str | None, **kwargs) -> ClientError:
    """Call a boto3 operation that must fail with exactly (status, code); the failure message names the request."""
    what = f"{fn.__name__}({_redact(kwargs)})"
    try:
        resp = fn(**kwargs)
    except ClientError as e:
        got_status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        got_code = e.response.get("Error", {}).get("Code")
        assert (got_status, got_code if code is not None else None) == (status, code), \
            f"{what}: expected {status} {code}, got {got_status} {got_code}: {e.response.get('Error')}"
        return e
    meta = resp.get("ResponseMetadata", {}) if isinstance(resp, dict) else {}
    raise AssertionError(f"{what}: expected {status} {code}, but it succeeded with "
                         f"{meta.get('HTTPStatusCode')}: { {k: v for k, v in resp.items() if k != 'Body'} }")


def get_bytes(s3, bucket, key, k: bytes | None = None, **kw) -> bytes:
    return s3.get_object(Bucket=bucket, Key=key, **(sse(k) if k else {}), **kw)["Body"].read()


def blob_stats(srv) -> dict[str, tuple[int, int, int]]:
    """(inode, mtime_ns, size) of every file under DATA/blobs."""
    out = {}
    for p in tree_files(srv.data_dir / "blobs"):
        st = p.stat()
        out[str(p.relative_to(srv.data_dir))] = (st.st_ino, st.st_mtime_ns, st.st_size)
    return out


@pytest.fixture
def k1() -> bytes:
    return secrets.token_bytes(32)


@pytest.fixture
def k2() -> bytes:
    return secrets.token_bytes(32)


@pytest.fixture
def other_bucket(s3) -> str:
    name = unique_bucket("copy-dst")
    s3.create_bucket(Bucket=name)
    return name


# ------------------------------------------------------------------------------------------------------------------
# aws s3 cp s3:// -> s3:// with SSE-C on both sides
# ------------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("size", [1000, 20 * MiB], ids=["1000B-CopyObject", "20MiB-UploadPartCopy"])
def test_cli_cp_between_buckets_ssec_k1_to_k2(server, s3, bucket, other_bucket, tmp_path, k1, k2, size):
    (tmp_path / "k1").write_bytes(k1)
    (tmp_path / "k2").write_bytes(k2)
    env = cli_config(tmp_path)
    src = tmp_path / "src.bin"
    digest = write_random_file(src, size)
    server.aws("s3", "cp", src, f"s3://{bucket}/x", "--sse-c", "AES256", "--sse-c-key", "fileb://k1",
               workdir=tmp_path, env_extra=env)
    server.aws("s3", "cp", f"s3://{bucket}/x", f"s3://{other_bucket}/y",
               "--sse-c-copy-source", "AES256", "--sse-c-copy-source-key", "fileb://k1",
               "--sse-c", "AES256", "--sse-c-key", "fileb://k2", workdir=tmp_path, env_extra=env)
    head = s3.head_object(Bucket=other_bucket, Key="y", **sse(k2))
    assert head["ContentLength"] == size
    assert head["SSECustomerKeyMD5"] == md5_b64(k2)
    if size > CLI_PART:  # the CLI copied it with UploadPartCopy
        n = -(-size // CLI_PART)
        assert re.fullmatch(rf'"[0-9a-f]{{32}}-{n}"', head["ETag"]), head["ETag"]
    dst = tmp_path / "dst.bin"
    server.aws("s3", "cp", f"s3://{other_bucket}/y", dst, "--sse-c", "AES256", "--sse-c-key", "fileb://k2",
               workdir=tmp_path, env_extra=env)
    assert sha256_file(dst) == digest
    with open(src, "rb") as f:
        f.seek(size // 2 - 50)
        middle = f.read(100)
    assert get_bytes(s3, other_bucket, "y", k2, Range=f"bytes={size // 2 - 50}-{size // 2 + 49}") == middle
    expect_error(s3.get_object, 403, "AccessDenied", Bucket=other_bucket, Key="y", **sse(k1))
    expect_error(s3.get_object, 400, "InvalidRequest", Bucket=other_bucket, Key="y")
    # the source is unchanged and still under k1
    assert s3.head_object(Bucket=bucket, Key="x", **sse(k1))["ContentLength"] == size
    expect_error(s3.get_object, 403, "AccessDenied", Bucket=bucket, Key="x", **sse(k2))


# ------------------------------------------------------------------------------------------------------------------
# CopyObject: metadata, keys, conditions, self-copy
# ------------------------------------------------------------------------------------------------------------------

def test_metadata_directive_copy_and_replace(s3, bucket, other_bucket):
    s3.put_object(Bucket=bucket, Key="src", Body=b"hello", Metadata={"color": "blue", "n": "1"},
                  ContentType="text/x-coffer", CacheControl="max-age=60",
                  ContentDisposition='attachment; filename="a.txt"')
    s3.copy_object(Bucket=other_bucket, Key="copied", CopySource={"Bucket": bucket, "Key": "src"})
    h = s3.head_object(Bucket=other_bucket, Key="copied")
    assert h["Metadata"] == {"color": "blue", "n": "1"}, h["Metadata"]
    assert h["ContentType"] == "text/x-coffer"
    assert h.get("CacheControl") == "max-age=60"
    assert h.get("ContentDisposition") == 'attachment; filename="a.txt"'
    s3.copy_object(Bucket=other_bucket, Key="copied2", CopySource={"Bucket": bucket, "Key": "src"},
                   MetadataDirective="COPY", Metadata={"ignored": "yes"})
    assert s3.head_object(Bucket=other_bucket, Key="copied2")["Metadata"] == {"color": "blue", "n": "1"}
    s3.copy_object(Bucket=other_bucket, Key="replaced", CopySource={"Bucket": bucket, "Key": "src"},
                   MetadataDirective="REPLACE", Metadata={"shape": "round"}, ContentType="application/x-new")
    h = s3.head_object(Bucket=other_bucket, Key="replaced")
    assert h["Metadata"] == {"shape": "round"}, h["Metadata"]
    assert h["ContentType"] == "application/x-new"
    assert "CacheControl" not in h and "ContentDisposition" not in h, h
    for key in ("copied", "copied2", "replaced"):
        assert get_bytes(s3, other_bucket, key) == b"hello"
    # the source is untouched
    assert s3.head_object(Bucket=bucket, Key="src")["Metadata"] == {"color": "blue", "n": "1"}


def test_copy_response_and_etag(s3, bucket):
    s3.put_object(Bucket=bucket, Key="src", Body=b"abc")
    r = s3.copy_object(Bucket=bucket, Key="dst", CopySource=f"{bucket}/src")
    res = r["CopyObjectResult"]
    assert re.fullmatch(r'"[0-9a-f]{32}"', res["ETag"]), res
    assert res["ETag"] == s3.head_object(Bucket=bucket, Key="dst")["ETag"]
    assert isinstance(res["LastModified"], dt.datetime)


WEIRD_KEYS = ["with space/and more.txt", "ünïcødé/ключ/日本.bin", "a+b=c&d.txt", "100%25 literal%.txt",
              "q?x=1#frag", "tab\tand~tilde"]


@pytest.mark.parametrize("key", WEIRD_KEYS, ids=range(len(WEIRD_KEYS)))
def test_copy_url_encoded_source_keys(server, s3, bucket, key):
    body = key.encode() * 3
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    # boto3 percent-encodes the source key in x-amz-copy-source
    s3.copy_object(Bucket=bucket, Key=key + ".boto3", CopySource={"Bucket": bucket, "Key": key})
    assert get_bytes(s3, bucket, key + ".boto3") == body
    # raw requests: with and without the leading slash; '+' sent as %2B must stay a plus
    from urllib.parse import quote
    for i, source in enumerate([f"/{bucket}/{quote(key, safe='/')}", f"{bucket}/{quote(key, safe='/')}"]):
        r = server.request("PUT", bucket, f"{key}.raw{i}", headers={"x-amz-copy-source": source})
        assert r.status_code == 200, f"x-amz-copy-source: {source!r}\n{describe(r)}"
        assert b"<CopyObjectResult" in r.content, describe(r)
        assert get_bytes(s3, bucket, f"{key}.raw{i}") == body
    if "+" in key:
        # the same key with a space where the plus is: no such source
        r = server.request("PUT", bucket, "nope", headers={"x-amz-copy-source":
                                                          f"/{bucket}/{quote(key.replace('+', ' '), safe='/')}"})
        assert r.status_code == 404 and s3_error(r).get("Code") == "NoSuchKey", describe(r)


def test_copy_source_missing_is_404(s3, bucket):
    expect_error(s3.copy_object, 404, "NoSuchKey", Bucket=bucket, Key="dst",
                 CopySource={"Bucket": bucket, "Key": "absent"})
    expect_error(s3.copy_object, 404, "NoSuchBucket", Bucket=bucket, Key="dst",
                 CopySource={"Bucket": unique_bucket("absent"), "Key": "x"})


def test_copy_source_conditions(s3, bucket):
    s3.put_object(Bucket=bucket, Key="src", Body=b"conditional")
    head = s3.head_object(Bucket=bucket, Key="src")
    etag, modified = head["ETag"], head["LastModified"]
    time.sleep(2)  # so that "Last-Modified + 1 s" is in the past (future dates are ignored by HTTP semantics)
    before = modified - dt.timedelta(days=1)
    after = modified + dt.timedelta(seconds=1)
    src = {"Bucket": bucket, "Key": "src"}
    ok = [
        {"CopySourceIfMatch": etag},
        {"CopySourceIfNoneMatch": '"0123456789abcdef0123456789abcdef"'},
        {"CopySourceIfModifiedSince": before},
        {"CopySourceIfUnmodifiedSince": after},
        # AWS: if-match true together with if-unmodified-since false -> 200 and the copy is made
        {"CopySourceIfMatch": etag, "CopySourceIfUnmodifiedSince": before},
    ]
    failing = [
        {"CopySourceIfMatch": '"0123456789abcdef0123456789abcdef"'},
        {"CopySourceIfNoneMatch": etag},
        {"CopySourceIfModifiedSince": after},
        {"CopySourceIfUnmodifiedSince": before},
        # AWS: if-none-match false together with if-modified-since true -> 412
        {"CopySourceIfNoneMatch": etag, "CopySourceIfModifiedSince": before},
    ]
    for i, cond in enumerate(ok):
        s3.copy_object(Bucket=bucket, Key=f"ok{i}", CopySource=src, **cond)
        assert get_bytes(s3, bucket, f"ok{i}") == b"conditional", cond
    for i, cond in enumerate(failing):
        expect_error(s3.copy_object, 412, "PreconditionFailed", Bucket=bucket, Key=f"fail{i}", CopySource=src, **cond)
        expect_error(s3.head_object, 404, "404", Bucket=bucket, Key=f"fail{i}")


def test_self_copy_without_change_is_400_invalid_request(s3, bucket):
    s3.put_object(Bucket=bucket, Key="self", Body=b"me", Metadata={"a": "1"})
    etag = s3.head_object(Bucket=bucket, Key="self")["ETag"]
    expect_error(s3.copy_object, 400, "InvalidRequest", Bucket=bucket, Key="self",
                 CopySource={"Bucket": bucket, "Key": "self"})
    expect_error(s3.copy_object, 400, "InvalidRequest", Bucket=bucket, Key="self",
                 CopySource={"Bucket": bucket, "Key": "self"}, MetadataDirective="COPY")
    h = s3.head_object(Bucket=bucket, Key="self")
    assert h["ETag"] == etag and h["Metadata"] == {"a": "1"}
    # with REPLACE it is a change: allowed
    s3.copy_object(Bucket=bucket, Key="self", CopySource={"Bucket": bucket, "Key": "self"},
                   MetadataDirective="REPLACE", Metadata={"b": "2"})
    h = s3.head_object(Bucket=bucket, Key="self")
    assert h["Metadata"] == {"b": "2"}
    assert get_bytes(s3, bucket, "self") == b"me"


# ------------------------------------------------------------------------------------------------------------------
# CopyObject: every SSE-C combination
# ------------------------------------------------------------------------------------------------------------------

def test_copy_plain_to_ssec(s3, bucket, other_bucket, k1):
    data = os.urandom(200_000)
    s3.put_object(Bucket=bucket, Key="plain", Body=data)
    r = s3.copy_object(Bucket=other_bucket, Key="enc", CopySource={"Bucket": bucket, "Key": "plain"}, **sse(k1))
    assert r.get("SSECustomerAlgorithm") == "AES256" and r.get("SSECustomerKeyMD5") == md5_b64(k1), r
    assert "ServerSideEncryption" not in r, r
    assert get_bytes(s3, other_bucket, "enc", k1) == data
    assert get_bytes(s3, other_bucket, "enc", k1, Range="bytes=65535-65537") == data[65535:65538]
    expect_error(s3.get_object, 400, "InvalidRequest", Bucket=other_bucket, Key="enc")
    expect_error(s3.get_object, 403, "AccessDenied", Bucket=other_bucket, Key="enc", **sse(secrets.token_bytes(32)))
    assert get_bytes(s3, bucket, "plain") == data


def test_copy_ssec_to_plain(s3, bucket, other_bucket, k1):
    data = os.urandom(200_000)
    s3.put_object(Bucket=bucket, Key="enc", Body=data, **sse(k1))
    r = s3.copy_object(Bucket=other_bucket, Key="plain", CopySource={"Bucket": bucket, "Key": "enc"}, **copy_sse(k1))
    assert "SSECustomerKeyMD5" not in r, r
    assert get_bytes(s3, other_bucket, "plain") == data
    # a plain object refuses SSE-C headers on reads
    expect_error(s3.get_object, 400, "InvalidRequest", Bucket=other_bucket, Key="plain", **sse(k1))


def test_copy_ssec_k1_to_ssec_k2(s3, bucket, other_bucket, k1, k2):
    data = os.urandom(300_001)
    s3.put_object(Bucket=bucket, Key="enc", Body=data, **sse(k1))
    r = s3.copy_object(Bucket=other_bucket, Key="enc2", CopySource={"Bucket": bucket, "Key": "enc"},
                       **copy_sse(k1), **sse(k2))
    assert r.get("SSECustomerKeyMD5") == md5_b64(k2), r
    assert get_bytes(s3, other_bucket, "enc2", k2) == data
    assert get_bytes(s3, other_bucket, "enc2", k2, Range="bytes=131071-131072") == data[131071:131073]
    expect_error(s3.get_object, 403, "AccessDenied", Bucket=other_bucket, Key="enc2", **sse(k1))
    # same key on both sides, another object key in the same bucket
    s3.copy_object(Bucket=bucket, Key="enc-same", CopySource={"Bucket": bucket, "Key": "enc"},
                   **copy_sse(k1), **sse(k1))
    assert get_bytes(s3, bucket, "enc-same", k1) == data


def test_copy_of_multipart_ssec_source(s3, bucket, other_bucket, k1, k2):
    parts = [os.urandom(5 * MiB + 1), os.urandom(70_000)]
    uid = s3.create_multipart_upload(Bucket=bucket, Key="mp", **sse(k1))["UploadId"]
    etags = [s3.upload_part(Bucket=bucket, Key="mp", UploadId=uid, PartNumber=n, Body=p, **sse(k1))["ETag"]
             for n, p in enumerate(parts, start=1)]
    s3.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=uid,
                                 MultipartUpload={"Parts": [{"PartNumber": n, "ETag": e}
                                                            for n, e in enumerate(etags, start=1)]}, **sse(k1))
    s3.copy_object(Bucket=other_bucket, Key="mp2", CopySource={"Bucket": bucket, "Key": "mp"},
                   **copy_sse(k1), **sse(k2))
    data = b"".join(parts)
    got = get_bytes(s3, other_bucket, "mp2", k2)
    assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()
    b = len(parts[0])
    assert get_bytes(s3, other_bucket, "mp2", k2, Range=f"bytes={b - 1}-{b}") == data[b - 1:b + 1]


def test_copy_ssec_source_without_copy_source_key_is_400(s3, bucket, other_bucket, k1):
    s3.put_object(Bucket=bucket, Key="enc", Body=b"secret", **sse(k1))
    expect_error(s3.copy_object, 400, "InvalidRequest", Bucket=other_bucket, Key="x",
                 CopySource={"Bucket": bucket, "Key": "enc"})
    # a destination key alone is not a copy-source key
    expect_error(s3.copy_object, 400, "InvalidRequest", Bucket=other_bucket, Key="x",
                 CopySource={"Bucket": bucket, "Key": "enc"}, **sse(k1))
    expect_error(s3.head_object, 404, "404", Bucket=other_bucket, Key="x")


def test_copy_ssec_source_with_wrong_copy_source_key_is_403(s3, bucket, other_bucket, k1, k2):
    s3.put_object(Bucket=bucket, Key="enc", Body=b"secret", **sse(k1))
    expect_error(s3.copy_object, 403, "AccessDenied", Bucket=other_bucket, Key="x",
                 CopySource={"Bucket": bucket, "Key": "enc"}, **copy_sse(k2))
    expect_error(s3.copy_object, 403, "AccessDenied", Bucket=other_bucket, Key="x",
                 CopySource={"Bucket": bucket, "Key": "enc"}, **copy_sse(k2), **sse(k1))
    expect_error(s3.head_object, 404, "404", Bucket=other_bucket, Key="x")
    # in place (a rotation attempt with the wrong old key) changes nothing
    expect_error(s3.copy_object, 403, "AccessDenied", Bucket=bucket, Key="enc",
                 CopySource={"Bucket": bucket, "Key": "enc"}, **copy_sse(k2), **sse(k2))
    assert get_bytes(s3, bucket, "enc", k1) == b"secret"


def test_copy_source_key_on_plain_source_is_400(s3, bucket, other_bucket, k1):
    s3.put_object(Bucket=bucket, Key="plain", Body=b"open")
    expect_error(s3.copy_object, 400, "InvalidRequest", Bucket=other_bucket, Key="x",
                 CopySource={"Bucket": bucket, "Key": "plain"}, **copy_sse(k1))


def test_copy_source_ssec_header_validation(server, bucket, k1):
    """The copy-source trio is validated like the destination trio (design.md section 4, raw requests)."""
    r = server.request("PUT", bucket, "enc", body=b"secret", headers=ssec_headers(k1))
    assert r.status_code == 200, describe(r)
    cases = [
        # MD5 of other bytes
        ({**copy_ssec_headers(k1), "x-amz-copy-source-server-side-encryption-customer-key-MD5": md5_b64(b"x")},
         400, "InvalidArgument"),
        # key without algorithm
        ({k: v for k, v in copy_ssec_headers(k1).items() if not k.endswith("algorithm")}, 400, "InvalidArgument"),
        # algorithm without key
        ({"x-amz-copy-source-server-side-encryption-customer-algorithm": "AES256"}, 400, "InvalidArgument"),
        # another algorithm
        ({**copy_ssec_headers(k1), "x-amz-copy-source-server-side-encryption-customer-algorithm": "AES128"},
         400, "InvalidEncryptionAlgorithmError"),
    ]
    for headers, status, code in cases:
        r = server.request("PUT", bucket, "dst", headers={"x-amz-copy-source": f"/{bucket}/enc", **headers})
        assert r.status_code == status and s3_error(r).get("Code") == code, \
            f"copy-source headers {sorted(headers)}: expected {status} {code}\n{describe(r)}"
    # over plain HTTP the copy-source trio is refused before anything else
    r = server.request("PUT", bucket, "dst", scheme="http",
                       headers={"x-amz-copy-source": f"/{bucket}/enc", **copy_ssec_headers(k1)})
    assert r.status_code == 400 and s3_error(r).get("Code") == "InvalidRequest", describe(r)
    r = server.request("GET", bucket, "dst")
    assert r.status_code == 404, describe(r)
    # the same raw headers, correct: copied (SSE-C -> plain)
    r = server.request("PUT", bucket, "dst", headers={"x-amz-copy-source": f"/{bucket}/enc", **copy_ssec_headers(k1)})
    assert r.status_code == 200, describe(r)
    r = server.request("GET", bucket, "dst")
    assert r.status_code == 200 and r.content == b"secret", describe(r)


# ------------------------------------------------------------------------------------------------------------------
# in place: key rotation (metadata only) and encryption mode changes (rewrite)
# ------------------------------------------------------------------------------------------------------------------

def rotate_with_cli(srv, work: Path, bucket: str, key: str) -> tuple[float, dict]:
    t0 = time.monotonic()
    res = srv.aws("s3api", "copy-object", "--bucket", bucket, "--key", key, "--copy-source", f"{bucket}/{key}",
                  "--copy-source-sse-customer-algorithm", "AES256", "--copy-source-sse-customer-key", "fileb://k1",
                  "--sse-customer-algorithm", "AES256", "--sse-customer-key", "fileb://k2", workdir=work)
    elapsed = time.monotonic() - t0
    return elapsed, json.loads(res.stdout)


@pytest.mark.slow
def test_key_rotation_in_place_is_metadata_only(start_server, tmp_path, k1, k2, capsys):
    srv = start_server(name="rotate")
    s3 = srv.client()
    bucket = unique_bucket("rotate")
    s3.create_bucket(Bucket=bucket)
    (tmp_path / "k1").write_bytes(k1)
    (tmp_path / "k2").write_bytes(k2)

    small = os.urandom(KiB)
    s3.put_object(Bucket=bucket, Key="small", Body=small, **sse(k1))

    big_path = tmp_path / "big.bin"
    digest = write_random_file(big_path, GiB)
    part = 64 * MiB
    probes = [(0, 99), (part - 2, part + 1), (5 * part + 12_345, 5 * part + 12_345 + 3 * 64 * KiB),
              (GiB - 1000, GiB - 1)]
    with open(big_path, "rb") as f:
        expected = {}
        for a, b in probes:
            f.seek(a)
            expected[(a, b)] = f.read(b - a + 1)
    try:
        s3.upload_file(str(big_path), bucket, "big", ExtraArgs=sse(k1),
                       Config=TransferConfig(multipart_threshold=part, multipart_chunksize=part, max_concurrency=4))
    finally:
        big_path.unlink()
    head = s3.head_object(Bucket=bucket, Key="big", **sse(k1))
    assert head["ContentLength"] == GiB and head["ETag"].endswith('-16"'), head

    before = blob_stats(srv)
    assert before, "no blob files under DATA/blobs?"
    t_small, out_small = rotate_with_cli(srv, tmp_path, bucket, "small")
    t_big, out_big = rotate_with_cli(srv, tmp_path, bucket, "big")
    after = blob_stats(srv)
    with capsys.disabled():
        print(f"\n[rotation] aws s3api copy-object K1->K2 in place: 1 KiB {t_small:.3f}s | 1 GiB {t_big:.3f}s "
              f"(ratio {t_big / t_small:.2f})")
    for out in (out_small, out_big):
        assert out.get("SSECustomerKeyMD5") == md5_b64(k2), out
    changed = {p: (before.get(p), after.get(p)) for p in before.keys() | after.keys() if before.get(p) != after.get(p)}
    assert not changed, f"blob files changed by rotation (path: (inode, mtime_ns, size) before, after): {changed}"
    assert t_big < 10 * t_small + 1.0, f"rotating 1 GiB took {t_big:.2f}s vs {t_small:.2f}s for 1 KiB"

    # k2 reads both, k1 and no key do not
    assert get_bytes(s3, bucket, "small", k2) == small
    assert get_bytes(s3, bucket, "small", k2, Range="bytes=100-611") == small[100:612]
    for (a, b), want in expected.items():
        assert get_bytes(s3, bucket, "big", k2, Range=f"bytes={a}-{b}") == want, (a, b)
    h = s3.head_object(Bucket=bucket, Key="big", **sse(k2))
    assert h["ContentLength"] == GiB and h["SSECustomerKeyMD5"] == md5_b64(k2)
    for key in ("small", "big"):
        expect_error(s3.get_object, 403, "AccessDenied", Bucket=bucket, Key=key, Range="bytes=0-9", **sse(k1))
        expect_error(s3.get_object, 400, "InvalidRequest", Bucket=bucket, Key=key, Range="bytes=0-9")
    # and the whole 1 GiB object still decrypts to the original under k2
    dst = tmp_path / "big.down"
    try:
        s3.download_file(bucket, "big", str(dst), ExtraArgs=sse(k2),
                         Config=TransferConfig(multipart_threshold=part, multipart_chunksize=part, max_concurrency=4))
        assert sha256_file(dst) == digest
    finally:
        dst.unlink(missing_ok=True)
    # rotating again with the old key is refused and changes nothing
    res = srv.aws("s3api", "copy-object", "--bucket", bucket, "--key", "small", "--copy-source", f"{bucket}/small",
                  "--copy-source-sse-customer-algorithm", "AES256", "--copy-source-sse-customer-key", "fileb://k1",
                  "--sse-customer-algorithm", "AES256", "--sse-customer-key", "fileb://k1", workdir=tmp_path,
                  check=False)
    assert res.returncode != 0 and "AccessDenied" in res.stderr, res.stderr
    assert get_bytes(s3, bucket, "small", k2) == small
    s3.delete_object(Bucket=bucket, Key="big")


def test_encryption_mode_change_in_place_rewrites(server, s3, bucket, k1):
    data = os.urandom(300_000)
    s3.put_object(Bucket=bucket, Key="obj", Body=data)
    before = blob_stats(server)
    s3.copy_object(Bucket=bucket, Key="obj", CopySource={"Bucket": bucket, "Key": "obj"}, **sse(k1))
    after = blob_stats(server)
    assert after.keys() - before.keys(), "plain -> SSE-C in place wrote no new blob"
    assert get_bytes(s3, bucket, "obj", k1) == data
    expect_error(s3.get_object, 400, "InvalidRequest", Bucket=bucket, Key="obj")
    # and back: SSE-C -> plain in place
    before = after
    s3.copy_object(Bucket=bucket, Key="obj", CopySource={"Bucket": bucket, "Key": "obj"}, **copy_sse(k1))
    after = blob_stats(server)
    assert after.keys() - before.keys(), "SSE-C -> plain in place wrote no new blob"
    assert get_bytes(s3, bucket, "obj") == data
    expect_error(s3.get_object, 400, "InvalidRequest", Bucket=bucket, Key="obj", **sse(k1))
