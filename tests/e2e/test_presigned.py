"""Presigned URLs end to end, with the real clients: `aws s3 presign` and boto3's generate_presigned_url.

Each test answers as AWS does: a GET/PUT/HEAD/DELETE round trip through a presigned URL, an expired URL
(403 AccessDenied), an expiry beyond 7 days (400 AuthorizationQueryParametersError), a tampered URL
(403 SignatureDoesNotMatch), and SSE-C objects read through presigned URLs, where the three SSE-C headers
still travel as headers: with them 200 and the plaintext, without them 400 InvalidRequest, with another key
403 AccessDenied, and over plain HTTP 400 InvalidRequest.
"""
import base64
import hashlib
import os
import time
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest
import requests

from conftest import SSEC_ALGO, SSEC_KEY, SSEC_MD5, assert_s3_error, describe, ssec_headers, ssec_params


def get(url, ca, headers=None):
    return requests.get(url, headers=headers or {}, verify=ca if url.startswith("https") else True, timeout=60)


def with_query(url: str, **changes) -> str:
    """The URL with some query parameters replaced (the signature is left as it was)."""
    parts = urlsplit(url)
    query = [(k, changes.pop(k) if k in changes else v) for k, v in parse_qsl(parts.query, keep_blank_values=True)]
    assert not changes, f"not in the URL: {changes}"
    return urlunsplit(parts._replace(query=urlencode(query)))


@pytest.mark.parametrize("signature_version", ["s3v4", "default"])
def test_aws_cli_presign_get_round_trip(server, s3, bucket, tmp_path, signature_version):
    """`aws s3 presign` signs with SigV2 by default against a custom endpoint, SigV4 when configured."""
    data = os.urandom(300_000)
    s3.put_object(Bucket=bucket, Key="dir/cli presigned.bin", Body=data)
    if signature_version == "s3v4":
        (tmp_path / "aws-config").write_text("[default]\nregion = us-east-1\ns3 =\n    signature_version = s3v4\n")
    res = server.aws("s3", "presign", f"s3://{bucket}/dir/cli presigned.bin", "--expires-in", "300",
                     workdir=tmp_path)
    url = res.stdout.strip()
    if signature_version == "s3v4":
        assert "X-Amz-Signature=" in url and "X-Amz-Expires=300" in url, url
    else:
        assert "AWSAccessKeyId=" in url and "Signature=" in url and "Expires=" in url, url
    r = get(url, server.ca)
    assert r.status_code == 200, describe(r)
    assert r.content == data
    assert r.headers["Content-Length"] == str(len(data))


def test_boto3_presigned_put_then_get(server, s3, bucket):
    data = b"put through a presigned URL\n" * 1000
    put_url = s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "pp"}, ExpiresIn=300)
    r = requests.put(put_url, data=data, verify=server.ca, timeout=60)
    assert r.status_code == 200, describe(r)
    assert r.headers["ETag"] == '"' + hashlib.md5(data).hexdigest() + '"'
    get_url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "pp"}, ExpiresIn=300)
    r = get(get_url, server.ca)
    assert r.status_code == 200 and r.content == data, describe(r)


def test_expired_url_is_access_denied(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="short", Body=b"short-lived")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "short"}, ExpiresIn=1)
    time.sleep(2.5)
    r = get(url, server.ca)
    err = assert_s3_error(r, 403, "AccessDenied")
    assert err["Message"] == "Request has expired"
    assert b"short-lived" not in r.content


def test_expiry_beyond_seven_days_is_refused(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="week", Body=b"w")
    ok = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "week"}, ExpiresIn=604800)
    assert get(ok, server.ca).status_code == 200
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "week"}, ExpiresIn=604801)
    err = assert_s3_error(get(url, server.ca), 400, "AuthorizationQueryParametersError")
    assert "604800" in err["Message"]


def test_tampered_url_is_signature_mismatch(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="t", Body=b"tamper")
    s3.put_object(Bucket=bucket, Key="other", Body=b"other")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "t"}, ExpiresIn=300)
    assert get(url, server.ca).status_code == 200
    sig = dict(parse_qsl(urlsplit(url).query))["X-Amz-Signature"]
    flipped = sig[:-1] + ("0" if sig[-1] != "0" else "1")
    assert_s3_error(get(with_query(url, **{"X-Amz-Signature": flipped}), server.ca), 403, "SignatureDoesNotMatch")
    # A longer life, another object, another method: each is covered by the signature.
    assert_s3_error(get(with_query(url, **{"X-Amz-Expires": "600"}), server.ca), 403, "SignatureDoesNotMatch")
    assert_s3_error(get(url.replace(f"/{bucket}/t?", f"/{bucket}/other?"), server.ca), 403, "SignatureDoesNotMatch")
    r = requests.delete(url, verify=server.ca, timeout=60)
    assert_s3_error(r, 403, "SignatureDoesNotMatch")
    assert s3.get_object(Bucket=bucket, Key="t")["Body"].read() == b"tamper"


def test_presigned_head_and_delete(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="hd", Body=b"12345")
    head = s3.generate_presigned_url("head_object", Params={"Bucket": bucket, "Key": "hd"}, ExpiresIn=300)
    r = requests.head(head, verify=server.ca, timeout=60)
    assert r.status_code == 200, describe(r)
    assert r.headers["Content-Length"] == "5" and r.content == b""
    delete = s3.generate_presigned_url("delete_object", Params={"Bucket": bucket, "Key": "hd"}, ExpiresIn=300)
    # The HEAD URL does not delete, the DELETE URL does not read.
    assert_s3_error(requests.delete(head, verify=server.ca, timeout=60), 403, "SignatureDoesNotMatch")
    assert_s3_error(get(delete, server.ca), 403, "SignatureDoesNotMatch")
    r = requests.delete(delete, verify=server.ca, timeout=60)
    assert r.status_code == 204, describe(r)
    assert_s3_error(requests.head(head, verify=server.ca, timeout=60), 404)


def test_presigned_get_of_sse_c_object(server, s3, bucket, ssec_key):
    data = os.urandom(70_000)
    s3.put_object(Bucket=bucket, Key="enc", Body=data, **ssec_params(ssec_key))
    # Signed with the SSE-C parameters: they are signed headers the caller must send.
    signed = s3.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "enc", **ssec_params(ssec_key)}, ExpiresIn=300)
    assert ssec_key.hex() not in signed and base64.b64encode(ssec_key).decode() not in signed
    r = get(signed, server.ca, ssec_headers(ssec_key))
    assert r.status_code == 200, describe(r)
    assert r.content == data
    assert r.headers[SSEC_ALGO] == "AES256"
    assert r.headers[SSEC_MD5] == ssec_headers(ssec_key)[SSEC_MD5]
    assert SSEC_KEY not in r.headers
    # A URL signed without them: no key is 400 InvalidRequest, another key 403 AccessDenied.
    bare = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "enc"}, ExpiresIn=300)
    r = get(bare, server.ca)
    assert_s3_error(r, 400, "InvalidRequest")
    assert data not in r.content
    r = get(bare, server.ca, ssec_headers(os.urandom(32)))
    assert_s3_error(r, 403, "AccessDenied")
    assert data[:64] not in r.content
    # Signed with another key and sent with it: still the wrong key.
    other = os.urandom(32)
    wrong = s3.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "enc", **ssec_params(other)}, ExpiresIn=300)
    assert_s3_error(get(wrong, server.ca, ssec_headers(other)), 403, "AccessDenied")
    # The right key with a URL signed for another key: the signature covers the key headers.
    assert_s3_error(get(wrong, server.ca, ssec_headers(ssec_key)), 403, "SignatureDoesNotMatch")


def test_presigned_sse_c_over_plain_http_is_refused(server, s3, bucket, ssec_key):
    s3.put_object(Bucket=bucket, Key="enc", Body=b"secret", **ssec_params(ssec_key))
    plain = server.client(endpoint=server.http)
    url = plain.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "enc", **ssec_params(ssec_key)}, ExpiresIn=300)
    assert url.startswith("http://")
    r = get(url, server.ca, ssec_headers(ssec_key))
    err = assert_s3_error(r, 400, "InvalidRequest")
    assert "secure connection" in err["Message"]
    assert b"secret" not in r.content
    # A presigned SSE-C PUT over plain HTTP is refused too, and writes nothing.
    put = plain.generate_presigned_url(
        "put_object", Params={"Bucket": bucket, "Key": "enc-put", **ssec_params(ssec_key)}, ExpiresIn=300)
    r = requests.put(put, data=b"never stored", headers=ssec_headers(ssec_key), timeout=60)
    assert_s3_error(r, 400, "InvalidRequest")
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket, Prefix="enc-put")
