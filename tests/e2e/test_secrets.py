"""The customer key never leaves the request: with COFFER_LOG=trace, after SSE-C PUT/GET/HEAD (succeeding and failing,
over HTTPS and refused over HTTP, through raw requests, boto3 and the aws CLI), no file under the data dir and no line
the server printed contains the raw key, its base64 (standard or URL-safe), its hex, its MD5 (base64 or hex) or its unsalted SHA-256.
"""

import base64
import hashlib
import secrets

import pytest
import requests

from conftest import describe, ssec_headers, ssec_params, tree_files, unique_bucket


def needles(key: bytes) -> dict:
    md5 = hashlib.md5(key).digest()
    return {
        "raw key": key,
        "key base64": base64.b64encode(key),
        "key base64 (no padding)": base64.b64encode(key).rstrip(b"="),
        "key base64url": base64.urlsafe_b64encode(key).rstrip(b"="),
        "key hex": key.hex().encode(),
        "key HEX": key.hex().upper().encode(),
        "key-MD5 base64": base64.b64encode(md5),
        "key-MD5 hex": md5.hex().encode(),
        "key SHA-256 hex": hashlib.sha256(key).hexdigest().encode(),
        "key SHA-256 base64": base64.b64encode(hashlib.sha256(key).digest()),
        "key SHA-256 raw": hashlib.sha256(key).digest(),
        # how Rust's Debug prints a byte array / a `bytes::Bytes`
        "key as Debug [u8]": ", ".join(str(b) for b in key).encode(),
        "key as Debug Bytes": "".join(_bytes_debug(b) for b in key).encode(),
    }


def _bytes_debug(b: int) -> str:
    special = {0x0A: "\\n", 0x0D: "\\r", 0x09: "\\t", 0x5C: "\\\\", 0x22: '\\"'}
    if b in special:
        return special[b]
    return chr(b) if 0x20 <= b < 0x7F else f"\\x{b:02x}"


def random_key() -> bytes:
    # 32 random bytes: a chance match anywhere is impossible
    while True:
        k = secrets.token_bytes(32)
        if b"\n" not in k:
            return k


@pytest.fixture(scope="module")
def traced(module_servers, tmp_path_factory):
    srv = module_servers(env={"COFFER_LOG": "trace"}, name="trace")
    key, other, short = random_key(), random_key(), secrets.token_bytes(16)
    work = tmp_path_factory.mktemp("secrets-cli")
    bucket = unique_bucket("secrets")
    s3 = srv.client()
    s3.create_bucket(Bucket=bucket)
    data = secrets.token_bytes(100_000)

    # raw signed requests
    assert srv.request("PUT", bucket, "raw", body=data, headers=ssec_headers(key)).status_code == 200
    assert srv.request("GET", bucket, "raw", headers=ssec_headers(key)).content == data
    assert srv.request("HEAD", bucket, "raw", headers=ssec_headers(key)).status_code == 200
    r = srv.request("GET", bucket, "raw", headers={"Range": "bytes=70000-70010", **ssec_headers(key)})
    assert r.status_code == 206, describe(r)
    # failing ones: wrong key, no key, bad MD5, short key, over plain HTTP, plain object with a key
    assert srv.request("GET", bucket, "raw", headers=ssec_headers(other)).status_code == 403
    assert srv.request("HEAD", bucket, "raw", headers=ssec_headers(other)).status_code == 403
    assert srv.request("GET", bucket, "raw").status_code == 400
    assert srv.request("PUT", bucket, "badmd5", body=b"x",
                       headers=ssec_headers(key, md5_of=other)).status_code == 400
    assert srv.request("GET", bucket, "raw", headers=ssec_headers(key, md5_of=other)).status_code == 400
    assert srv.request("PUT", bucket, "short", body=b"x", headers=ssec_headers(short)).status_code == 400
    assert srv.request("PUT", bucket, "http", body=b"x", headers=ssec_headers(key), scheme="http").status_code == 400
    assert srv.request("GET", bucket, "raw", headers=ssec_headers(key), scheme="http").status_code == 400
    assert srv.request("HEAD", bucket, "raw", headers=ssec_headers(key), scheme="http").status_code == 400
    assert srv.request("PUT", bucket, "plain", body=b"plain").status_code == 200
    assert srv.request("GET", bucket, "plain", headers=ssec_headers(key)).status_code == 400
    assert srv.request("PUT", bucket, "aes128", body=b"x",
                       headers=ssec_headers(key, algorithm="AES128")).status_code == 400
    assert srv.request("PUT", bucket, "both", body=b"x",
                       headers={**ssec_headers(key), "x-amz-server-side-encryption": "AES256"}).status_code == 400
    # boto3 (aws-chunked with a CRC32 trailer) and a zero-byte object
    s3.put_object(Bucket=bucket, Key="boto", Body=data, **ssec_params(key))
    assert s3.get_object(Bucket=bucket, Key="boto", **ssec_params(key))["Body"].read() == data
    s3.put_object(Bucket=bucket, Key="empty", Body=b"", **ssec_params(key))
    assert srv.request("GET", bucket, "empty", headers=ssec_headers(other)).status_code == 403
    # a presigned GET still carries the key in headers
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "boto", **ssec_params(key)})
    r = requests.get(url, headers=ssec_headers(key), verify=srv.ca, timeout=60)
    assert r.status_code == 200 and r.content == data, describe(r)
    # the aws CLI
    (work / "k").write_bytes(key)
    (work / "f").write_bytes(data)
    srv.aws("s3", "cp", work / "f", f"s3://{bucket}/cli", "--sse-c", "AES256", "--sse-c-key", "fileb://k",
            workdir=work)
    srv.aws("s3", "cp", f"s3://{bucket}/cli", work / "g", "--sse-c", "AES256", "--sse-c-key", "fileb://k",
            workdir=work)
    assert (work / "g").read_bytes() == data
    srv.stop()  # flush everything it would write
    return srv, [key, other, short]


def test_no_key_material_in_data_dir(traced):
    srv, keys = traced
    files = tree_files(srv.data_dir)
    assert files, "the data dir is empty?"
    for path in files:
        content = path.read_bytes()
        for key in keys:
            for what, needle in needles(key).items():
                assert needle not in content, f"{what} found in {path.relative_to(srv.data_dir)}"


def test_no_key_material_in_server_output(traced):
    srv, keys = traced
    out = b"".join(p.read_bytes() for p in sorted(srv.log_dir.glob("*.log")))
    assert len(out) > 1000, "COFFER_LOG=trace produced almost no output; is logging wired up?"
    for key in keys:
        for what, needle in needles(key).items():
            if needle in out:
                at = out.index(needle)
                line = out[out.rfind(b"\n", 0, at) + 1: out.find(b"\n", at)]
                raise AssertionError(f"{what} found in the server's output: {line[:300]!r}")
