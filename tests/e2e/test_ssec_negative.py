"""SSE-C wire behaviour (design.md section 4): every validation case with its exact status and S3 Code, the HTTPS-only
rule and its test switch, the wrong-key status switch, HEAD errors without a body, and the positive properties
(random ETags, plaintext sizes, echoed headers, ranges at chunk boundaries, Content-MD5 on the plaintext).

Requests are raw and SigV4-signed by botocore (conftest `server.request`), so that nothing is validated or "fixed"
client-side before it reaches Coffer.
"""

import base64
import hashlib
import secrets

import pytest

from conftest import (SSEC_ALGO, SSEC_KEY, SSEC_MD5, assert_s3_error, describe, md5_b64, ssec_headers,
                      ssec_params, unique_bucket)

CHUNK = 64 * 1024


def put_ssec(srv, bucket, key, data, k, scheme="https", extra=None):
    headers = {**ssec_headers(k), **(extra or {})}
    r = srv.request("PUT", bucket, key, body=data, headers=headers, scheme=scheme)
    assert r.status_code == 200, describe(r)
    return r


def assert_absent(srv, bucket, key):
    """The object must not exist at all (a refused PUT leaves nothing behind)."""
    r = srv.request("GET", bucket, key)
    assert_s3_error(r, 404, "NoSuchKey")


def assert_no_secret_echo(resp, k):
    lower = {h.lower() for h in resp.headers}
    assert SSEC_KEY.lower() not in lower, f"the key was echoed\n{describe(resp)}"
    assert "x-amz-server-side-encryption" not in lower, \
        f"x-amz-server-side-encryption must not be sent for SSE-C objects\n{describe(resp)}"
    raw = b"".join(f"{n}: {v}\n".encode() for n, v in resp.headers.items())
    assert base64.b64encode(k) not in raw


def assert_echo(resp, k):
    assert resp.headers.get(SSEC_ALGO) == "AES256", describe(resp)
    assert resp.headers.get(SSEC_MD5) == md5_b64(k), describe(resp)
    assert_no_secret_echo(resp, k)


@pytest.fixture
def ssec_object(server, bucket, ssec_key):
    data = secrets.token_bytes(1000)
    put_ssec(server, bucket, "enc", data, ssec_key)
    return bucket, "enc", data, ssec_key


# ------------------------------------------------------------------------------------------------------------------
# reads of an SSE-C object
# ------------------------------------------------------------------------------------------------------------------

def test_get_without_key_is_400_invalid_request(server, ssec_object):
    bucket, key, data, _ = ssec_object
    r = server.request("GET", bucket, key)
    assert_s3_error(r, 400, "InvalidRequest")
    assert data not in r.content


def test_get_with_wrong_key_is_403_access_denied(server, ssec_object):
    bucket, key, data, _ = ssec_object
    r = server.request("GET", bucket, key, headers=ssec_headers(secrets.token_bytes(32)))
    assert_s3_error(r, 403, "AccessDenied")
    assert data not in r.content


def test_get_with_right_key_returns_plaintext_and_echoes(server, ssec_object):
    bucket, key, data, k = ssec_object
    r = server.request("GET", bucket, key, headers=ssec_headers(k))
    assert r.status_code == 200, describe(r)
    assert r.content == data
    assert int(r.headers["Content-Length"]) == len(data)
    assert_echo(r, k)


def test_head_without_key_is_400_with_empty_body(server, ssec_object):
    bucket, key, _, _ = ssec_object
    r = server.request("HEAD", bucket, key)
    assert_s3_error(r, 400)


def test_head_with_wrong_key_is_403_with_empty_body(server, ssec_object):
    bucket, key, _, _ = ssec_object
    r = server.request("HEAD", bucket, key, headers=ssec_headers(secrets.token_bytes(32)))
    assert_s3_error(r, 403)


def test_head_with_right_key_echoes_algorithm_and_md5_never_the_key(server, ssec_object):
    bucket, key, data, k = ssec_object
    r = server.request("HEAD", bucket, key, headers=ssec_headers(k))
    assert r.status_code == 200, describe(r)
    assert int(r.headers["Content-Length"]) == len(data)
    assert_echo(r, k)


def test_get_with_bad_key_md5_is_400_invalid_argument(server, ssec_object):
    bucket, key, data, k = ssec_object
    r = server.request("GET", bucket, key, headers=ssec_headers(k, md5_of=b"something else"))
    assert_s3_error(r, 400, "InvalidArgument")
    assert data not in r.content


def test_ranged_get_without_or_with_wrong_key_is_refused(server, ssec_object):
    bucket, key, _, _ = ssec_object
    r = server.request("GET", bucket, key, headers={"Range": "bytes=0-9"})
    assert_s3_error(r, 400, "InvalidRequest")
    r = server.request("GET", bucket, key, headers={"Range": "bytes=0-9", **ssec_headers(secrets.token_bytes(32))})
    assert_s3_error(r, 403, "AccessDenied")


def test_ssec_headers_on_plain_object_are_400_invalid_request(server, bucket, ssec_key):
    r = server.request("PUT", bucket, "plain", body=b"plain data")
    assert r.status_code == 200, describe(r)
    r = server.request("GET", bucket, "plain", headers=ssec_headers(ssec_key))
    assert_s3_error(r, 400, "InvalidRequest")
    assert b"plain data" not in r.content
    r = server.request("HEAD", bucket, "plain", headers=ssec_headers(ssec_key))
    assert_s3_error(r, 400)


def test_zero_byte_ssec_object_still_refuses_a_wrong_key(server, bucket, ssec_key):
    put_ssec(server, bucket, "empty", b"", ssec_key)
    r = server.request("GET", bucket, "empty", headers=ssec_headers(ssec_key))
    assert r.status_code == 200, describe(r)
    assert r.content == b""
    assert r.headers.get("Content-Length") == "0"
    assert_echo(r, ssec_key)
    assert_s3_error(server.request("GET", bucket, "empty", headers=ssec_headers(secrets.token_bytes(32))),
                    403, "AccessDenied")
    assert_s3_error(server.request("HEAD", bucket, "empty", headers=ssec_headers(secrets.token_bytes(32))), 403)
    assert_s3_error(server.request("GET", bucket, "empty"), 400, "InvalidRequest")
    assert_s3_error(server.request("HEAD", bucket, "empty"), 400)


# ------------------------------------------------------------------------------------------------------------------
# header validation on PUT (nothing may be stored when refused)
# ------------------------------------------------------------------------------------------------------------------

def test_put_with_bad_key_md5_is_400_invalid_argument(server, bucket, ssec_key):
    r = server.request("PUT", bucket, "o", body=b"data", headers=ssec_headers(ssec_key, md5_of=b"not the key"))
    assert_s3_error(r, 400, "InvalidArgument")
    assert_absent(server, bucket, "o")


def test_put_with_missing_key_md5_is_400_invalid_argument(server, bucket, ssec_key):
    headers = ssec_headers(ssec_key)
    del headers[SSEC_MD5]
    r = server.request("PUT", bucket, "o", body=b"data", headers=headers)
    assert_s3_error(r, 400, "InvalidArgument")
    assert_absent(server, bucket, "o")


def test_put_with_algorithm_aes128_is_400_invalid_encryption_algorithm(server, bucket, ssec_key):
    r = server.request("PUT", bucket, "o", body=b"data", headers=ssec_headers(ssec_key, algorithm="AES128"))
    assert_s3_error(r, 400, "InvalidEncryptionAlgorithmError")
    assert_absent(server, bucket, "o")


def test_put_with_16_byte_key_and_matching_md5_is_400_invalid_argument(server, bucket):
    short = secrets.token_bytes(16)
    r = server.request("PUT", bucket, "o", body=b"data", headers=ssec_headers(short))
    assert_s3_error(r, 400, "InvalidArgument")
    assert_absent(server, bucket, "o")


def test_put_ssec_plus_sse_s3_header_is_400_invalid_argument(server, bucket, ssec_key):
    headers = {**ssec_headers(ssec_key), "x-amz-server-side-encryption": "AES256"}
    r = server.request("PUT", bucket, "o", body=b"data", headers=headers)
    assert_s3_error(r, 400, "InvalidArgument")
    assert_absent(server, bucket, "o")


def test_put_key_and_md5_without_algorithm_is_400_invalid_argument(server, bucket, ssec_key):
    headers = ssec_headers(ssec_key)
    del headers[SSEC_ALGO]
    r = server.request("PUT", bucket, "o", body=b"data", headers=headers)
    assert_s3_error(r, 400, "InvalidArgument")
    assert_absent(server, bucket, "o")


def test_put_algorithm_without_key_is_400_invalid_argument(server, bucket):
    r = server.request("PUT", bucket, "o", body=b"data", headers={SSEC_ALGO: "AES256"})
    assert_s3_error(r, 400, "InvalidArgument")
    assert_absent(server, bucket, "o")


def test_put_content_md5_is_verified_on_the_plaintext(server, bucket, ssec_key):
    data = secrets.token_bytes(5000)
    good = {**ssec_headers(ssec_key), "Content-MD5": md5_b64(data)}
    r = server.request("PUT", bucket, "good", body=data, headers=good)
    assert r.status_code == 200, describe(r)
    bad = {**ssec_headers(ssec_key), "Content-MD5": md5_b64(data + b"x")}
    r = server.request("PUT", bucket, "bad", body=data, headers=bad)
    assert_s3_error(r, 400, "BadDigest")
    assert_absent(server, bucket, "bad")
    r = server.request("GET", bucket, "good", headers=ssec_headers(ssec_key))
    assert r.status_code == 200 and r.content == data, describe(r)


# ------------------------------------------------------------------------------------------------------------------
# HTTPS only
# ------------------------------------------------------------------------------------------------------------------

def test_ssec_put_over_plain_http_is_400_invalid_request(server, bucket, ssec_key):
    r = server.request("PUT", bucket, "o", body=b"data over http", headers=ssec_headers(ssec_key), scheme="http")
    assert_s3_error(r, 400, "InvalidRequest")
    assert_absent(server, bucket, "o")


def test_ssec_get_and_head_over_plain_http_are_400_invalid_request(server, ssec_object):
    bucket, key, data, k = ssec_object
    r = server.request("GET", bucket, key, headers=ssec_headers(k), scheme="http")
    assert_s3_error(r, 400, "InvalidRequest")
    assert data not in r.content
    r = server.request("HEAD", bucket, key, headers=ssec_headers(k), scheme="http")
    assert_s3_error(r, 400)


def test_plain_requests_still_work_over_http(server, bucket):
    r = server.request("PUT", bucket, "p", body=b"hello http", scheme="http")
    assert r.status_code == 200, describe(r)
    r = server.request("GET", bucket, "p", scheme="http")
    assert r.status_code == 200 and r.content == b"hello http", describe(r)


def test_ssec_allow_plain_http_switch(start_server, ssec_key):
    srv = start_server(args=["--ssec-allow-plain-http"], name="plainhttp")
    bucket = unique_bucket("plainhttp")
    assert srv.request("PUT", bucket).status_code == 200
    data = secrets.token_bytes(70_000)
    put_ssec(srv, bucket, "o", data, ssec_key, scheme="http")
    r = srv.request("GET", bucket, "o", headers=ssec_headers(ssec_key), scheme="http")
    assert r.status_code == 200 and r.content == data, describe(r)
    assert_echo(r, ssec_key)
    r = srv.request("HEAD", bucket, "o", headers=ssec_headers(ssec_key), scheme="http")
    assert r.status_code == 200, describe(r)
    assert int(r.headers["Content-Length"]) == len(data)
    # still encrypted: the key is still required, and a wrong one is still refused
    assert_s3_error(srv.request("GET", bucket, "o", scheme="http"), 400, "InvalidRequest")
    assert_s3_error(srv.request("GET", bucket, "o", headers=ssec_headers(secrets.token_bytes(32)), scheme="http"),
                    403, "AccessDenied")


def test_wrong_key_status_400_switch(start_server, ssec_key):
    srv = start_server(args=["--ssec-wrong-key-status", "400"], name="wrong400")
    bucket = unique_bucket("wrong400")
    assert srv.request("PUT", bucket).status_code == 200
    data = secrets.token_bytes(1234)
    put_ssec(srv, bucket, "o", data, ssec_key)
    other = ssec_headers(secrets.token_bytes(32))
    r = srv.request("GET", bucket, "o", headers=other)
    err = assert_s3_error(r, 400)
    assert err.get("Code"), f"400 without an S3 error Code\n{describe(r)}"
    assert data not in r.content
    assert_s3_error(srv.request("HEAD", bucket, "o", headers=other), 400)
    # the other cases are unchanged
    assert_s3_error(srv.request("GET", bucket, "o"), 400, "InvalidRequest")
    r = srv.request("GET", bucket, "o", headers=ssec_headers(ssec_key))
    assert r.status_code == 200 and r.content == data, describe(r)


# ------------------------------------------------------------------------------------------------------------------
# positive properties
# ------------------------------------------------------------------------------------------------------------------

def test_put_response_echoes_and_etag_is_random(server, bucket, ssec_key):
    data = secrets.token_bytes(4096)
    r1 = put_ssec(server, bucket, "same", data, ssec_key)
    assert_echo(r1, ssec_key)
    r2 = put_ssec(server, bucket, "same", data, ssec_key)
    e1, e2 = r1.headers["ETag"].strip('"'), r2.headers["ETag"].strip('"')
    plain_md5 = hashlib.md5(data).hexdigest()
    assert e1 != plain_md5 and e2 != plain_md5, "the ETag of an SSE-C object must not be the MD5 of the data"
    assert e1 != e2, "two PUTs of the same data must get different ETags"
    r = server.request("HEAD", bucket, "same", headers=ssec_headers(ssec_key))
    assert r.headers["ETag"].strip('"') == e2, describe(r)
    r = server.request("GET", bucket, "same", headers=ssec_headers(ssec_key))
    assert r.headers["ETag"].strip('"') == e2, describe(r)


def test_sizes_are_plaintext_sizes(server, s3, bucket, ssec_key):
    data = secrets.token_bytes(100_000)
    put_ssec(server, bucket, "sized", data, ssec_key)
    r = server.request("HEAD", bucket, "sized", headers=ssec_headers(ssec_key))
    assert int(r.headers["Content-Length"]) == len(data), describe(r)
    r = server.request("GET", bucket, "sized", headers=ssec_headers(ssec_key))
    assert int(r.headers["Content-Length"]) == len(data) and r.content == data
    listed = s3.list_objects_v2(Bucket=bucket, Prefix="sized")["Contents"]
    assert [(o["Key"], o["Size"]) for o in listed] == [("sized", len(data))]
    listed = s3.list_objects(Bucket=bucket, Prefix="sized")["Contents"]
    assert [(o["Key"], o["Size"]) for o in listed] == [("sized", len(data))]


def test_boto3_default_upload_with_ssec_round_trips(s3, bucket, ssec_key):
    """boto3's default over HTTPS: aws-chunked body with a CRC32 trailer, plus SSE-C."""
    data = secrets.token_bytes(3 * CHUNK + 17)
    put = s3.put_object(Bucket=bucket, Key="boto", Body=data, **ssec_params(ssec_key))
    assert put["SSECustomerAlgorithm"] == "AES256"
    assert put["SSECustomerKeyMD5"] == md5_b64(ssec_key)
    assert "ServerSideEncryption" not in put
    got = s3.get_object(Bucket=bucket, Key="boto", **ssec_params(ssec_key))
    assert got["Body"].read() == data
    assert got["ContentLength"] == len(data)
    head = s3.head_object(Bucket=bucket, Key="boto", **ssec_params(ssec_key))
    assert head["ContentLength"] == len(data)
    assert head["SSECustomerKeyMD5"] == md5_b64(ssec_key)
    assert "ServerSideEncryption" not in head


SIZE = 300 * 1024  # 4 full chunks + 45056 bytes
C = CHUNK
RANGES = [
    # bytes=a-b
    "0-0", f"0-{C - 1}", f"0-{C}", f"{C - 1}-{C}", f"{C - 1}-{C + 1}", f"{C}-{C}", f"{C}-{2 * C - 1}",
    f"{C + 1}-{2 * C + 1}", f"{2 * C - 1}-{3 * C}", f"1-{SIZE - 2}", f"{4 * C - 1}-{4 * C + 1}",
    f"{SIZE - 1}-{SIZE - 1}", "100-250000", f"{3 * C}-{SIZE + 1000}",
    # bytes=a-
    f"{C - 1}-", f"{C}-", f"{C + 1}-", f"{4 * C}-", f"{SIZE - 1}-", "0-",
    # bytes=-n
    "-1", f"-{C - 1}", f"-{C}", f"-{C + 1}", f"-{SIZE - C}", f"-{SIZE}", f"-{SIZE + 5}",
]


def expected_slice(spec: str, size: int):
    first, last = spec.split("-")
    if first == "":
        n = int(last)
        start = max(0, size - n)
        end = size - 1
    else:
        start = int(first)
        end = size - 1 if last == "" else min(int(last), size - 1)
    return start, end


@pytest.fixture(scope="module")
def ranged_object(server, s3):
    bucket = unique_bucket("ranges")
    s3.create_bucket(Bucket=bucket)
    data = secrets.token_bytes(SIZE)
    k = secrets.token_bytes(32)
    put_ssec(server, bucket, "big", data, k)
    return bucket, data, k


@pytest.mark.parametrize("spec", RANGES)
def test_ranged_get_of_ssec_object_matches_plaintext(server, ranged_object, spec):
    bucket, data, k = ranged_object
    r = server.request("GET", bucket, "big", headers={"Range": f"bytes={spec}", **ssec_headers(k)})
    start, end = expected_slice(spec, len(data))
    assert r.status_code == 206, describe(r)
    assert r.headers.get("Content-Range") == f"bytes {start}-{end}/{len(data)}", describe(r)
    assert int(r.headers["Content-Length"]) == end - start + 1
    assert r.content == data[start:end + 1]
    assert_echo(r, k)


def test_range_beyond_end_of_ssec_object_is_416(server, ranged_object):
    bucket, data, k = ranged_object
    r = server.request("GET", bucket, "big", headers={"Range": f"bytes={len(data)}-", **ssec_headers(k)})
    assert_s3_error(r, 416, "InvalidRange")


def test_ssec_put_over_http_is_refused_before_the_body_is_read(server, bucket, ssec_key):
    """The request head announces 100 MiB and no body byte is sent: the 400 must come anyway, and fast."""
    import socket
    from urllib.parse import urlsplit
    url = server.url(bucket, "early", scheme="http")
    length = 100 * 1024 * 1024
    headers = server.sign("PUT", url, {**ssec_headers(ssec_key), "Content-Length": str(length)},
                          payload_hash="UNSIGNED-PAYLOAD")
    parts = urlsplit(url)
    head = f"PUT {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n" + "".join(
        f"{k}: {v}\r\n" for k, v in headers.items() if k.lower() != "host") + "\r\n"
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(head.encode())
        received = b""
        try:
            while b"\r\n\r\n" not in received:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                received += chunk
        except socket.timeout:
            pass
    status_line = received.split(b"\r\n", 1)[0]
    assert status_line.startswith(b"HTTP/1.1 400"), \
        f"no 400 within 10 s while the body was withheld; got {received[:300]!r}"
    assert_absent(server, bucket, "early")
