"""Browser POST uploads stream their file to disk (issue 5: "multipart/form-data streamed to disk (the file is never
buffered whole)"): a large form's upload leaves the server's peak RSS far below the file's size, plain and SSE-C,
and reads back whole; a file outside the policy's content-length-range, a body cut short and a form without its
closing boundary leave no object and no temp file.

On-disk contract used here: temp files under DATA/tmp/.
"""
import base64
import datetime as dt
import hashlib
import hmac
import json
import os
import socket
import ssl
import time
from urllib.parse import urlsplit

import pytest
import requests

from conftest import assert_s3_error, describe, tree_files, unique_bucket

MiB = 1024 * 1024
BIG = 80 * MiB
BOUNDARY = "----CofferStreamBoundary7MA4YWxkTrZu0gW"


@pytest.fixture(scope="module")
def srv(module_servers):
    # Its own server: peak RSS and the temp dir are read from it.
    return module_servers(name="post-stream")


@pytest.fixture(scope="module")
def owner(srv):
    return srv.client()


@pytest.fixture
def pbucket(owner):
    name = unique_bucket("stream")
    owner.create_bucket(Bucket=name)
    return name


def peak_rss(srv) -> int:
    """The server's peak resident set size so far (VmHWM), in bytes."""
    for line in open(f"/proc/{srv.proc.pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc/<pid>/status")


def temp_files(srv):
    return tree_files(srv.data_dir / "tmp")


def ssec_fields(key: bytes) -> dict:
    return {"x-amz-server-side-encryption-customer-algorithm": "AES256",
            "x-amz-server-side-encryption-customer-key": base64.b64encode(key).decode(),
            "x-amz-server-side-encryption-customer-key-MD5": base64.b64encode(hashlib.md5(key).digest()).decode()}


def presign(client, bucket, key, fields=None, conditions=()):
    fields = dict(fields or {})
    return client.generate_presigned_post(bucket, key, Fields=fields,
                                          Conditions=[{k: v} for k, v in fields.items()] + list(conditions),
                                          ExpiresIn=600)


def file_block(i: int, base: bytes) -> bytes:
    """1 MiB of file: a counter, random bytes, and look-alikes of the delimiter that must stay file content (the
    boundary without its CRLF, and a CRLF with the boundary cut short, straddling the block's end)."""
    tail = b"\r\n--" + BOUNDARY[:-1].encode()
    middle = b"x--" + BOUNDARY.encode() + b"--\r\n"
    block = i.to_bytes(8, "big") + base[8:MiB // 2] + middle + base[MiB // 2 + len(middle):]
    return block[:MiB - len(tail)] + tail


class FormBody:
    """A multipart/form-data body made as it is read: the fields, then `size` bytes of file, then the closing
    boundary. requests sends it with a Content-Length, block by block: neither side ever holds it whole. The
    SHA-256 of the file is known up front. `stop_after` ends the body early (no closing boundary)."""

    def __init__(self, fields: dict, size: int, stop_after: int | None = None, block=file_block):
        self.base = os.urandom(MiB)
        self.file_block = block
        self.size = size
        head = b"".join(f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n".encode()
                        for k, v in fields.items())
        head += (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.bin\"\r\n"
                 f"Content-Type: application/octet-stream\r\n\r\n").encode()
        self.head, self.close = head, f"\r\n--{BOUNDARY}--\r\n".encode()
        self.total = len(head) + size + len(self.close)
        self.end = self.total if stop_after is None else stop_after
        self.pos = 0
        self.block = (-1, b"")
        digest = hashlib.sha256()
        for i, off in enumerate(range(0, size, MiB)):
            digest.update(block(i, self.base)[:size - off])
        self.sha256 = digest.hexdigest()

    def __len__(self):
        return self.total

    def _at(self, pos: int, n: int) -> bytes:
        if pos < len(self.head):
            return self.head[pos:pos + n]
        pos -= len(self.head)
        if pos < self.size:
            i, off = divmod(pos, MiB)
            if self.block[0] != i:
                self.block = (i, self.file_block(i, self.base))
            return self.block[1][off:off + n][:self.size - pos]
        return self.close[pos - self.size:pos - self.size + n]

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            n = self.total
        n = min(n, self.end - self.pos)
        out = b""
        while len(out) < n:
            piece = self._at(self.pos, n - len(out))
            if not piece:
                break
            out += piece
            self.pos += len(piece)
        return out


def post_form(srv, url, fields: dict, size: int, block=file_block):
    body = FormBody(fields, size, block=block)
    r = requests.post(url, data=body, headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
                      verify=srv.ca, timeout=600)
    return r, body


def sha256_of_object(owner, bucket, key, **kwargs) -> str:
    digest = hashlib.sha256()
    for chunk in owner.get_object(Bucket=bucket, Key=key, **kwargs)["Body"].iter_chunks(MiB):
        digest.update(chunk)
    return digest.hexdigest()


@pytest.mark.parametrize("encrypted", [False, True], ids=["plain", "sse-c"])
def test_a_large_form_upload_is_streamed(srv, owner, pbucket, encrypted):
    key = os.urandom(32)
    extra = ssec_fields(key) if encrypted else {}
    ssec = {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": key} if encrypted else {}
    # Warm up (TLS, the write path's threads) so the baseline is a server that has taken forms before.
    post = presign(owner, pbucket, "warm", extra)
    r, _ = post_form(srv, post["url"], post["fields"], MiB)
    assert r.status_code == 204, describe(r)
    baseline = peak_rss(srv)
    post = presign(owner, pbucket, "big", extra)
    r, body = post_form(srv, post["url"], post["fields"], BIG)
    assert r.status_code == 204, describe(r)
    grown = peak_rss(srv) - baseline
    print(f"\n[{'sse-c' if encrypted else 'plain'}] {BIG // MiB} MiB form: peak RSS {baseline / MiB:.1f} MiB before, "
          f"+{grown / MiB:.1f} MiB during")
    assert grown < 64 * MiB, f"peak RSS grew by {grown / MiB:.1f} MiB for a {BIG // MiB} MiB file"
    head = owner.head_object(Bucket=pbucket, Key="big", **ssec)
    assert head["ContentLength"] == BIG
    assert sha256_of_object(owner, pbucket, "big", **ssec) == body.sha256
    assert temp_files(srv) == []


@pytest.mark.parametrize("line_end", [b"\r", b"\r\n"], ids=["cr", "crlf"])
def test_a_file_of_line_ends(srv, owner, pbucket, line_end):
    """Nearly every chunk of such a file ends like the delimiter begins. s3s (which read forms before) held such an
    end with the next chunk and refused the form once that passed 64 KiB: "InvalidRequest: failed to read file
    stream", every time for 20 MiB of CRs, and for about 1 upload in 5 of 20 MiB of random bytes."""
    post = presign(owner, pbucket, "line-ends")
    r, body = post_form(srv, post["url"], post["fields"], 20 * MiB, block=lambda i, base: line_end * (MiB // len(line_end)))
    assert r.status_code == 204, describe(r)
    assert sha256_of_object(owner, pbucket, "line-ends") == body.sha256


def assert_nothing_written(srv, owner, bucket, key):
    assert srv.request("HEAD", bucket, key).status_code == 404
    assert "Contents" not in owner.list_objects_v2(Bucket=bucket)
    deadline = time.monotonic() + 10
    while temp_files(srv) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert temp_files(srv) == []


def test_a_file_above_the_range_is_refused_and_not_written(srv, owner, pbucket):
    post = presign(owner, pbucket, "too-big", conditions=[["content-length-range", 0, MiB]])
    r, _ = post_form(srv, post["url"], post["fields"], MiB)
    assert r.status_code == 204, describe(r)
    owner.delete_object(Bucket=pbucket, Key="too-big")
    r, _ = post_form(srv, post["url"], post["fields"], MiB + 1)
    err = assert_s3_error(r, 400, "EntityTooLarge")
    assert err["Message"] == "Your proposed upload exceeds the maximum allowed object size."
    assert_nothing_written(srv, owner, pbucket, "too-big")
    # Refused as soon as the file passes the maximum, whatever follows: the client may still be sending.
    r, _ = post_form(srv, post["url"], post["fields"], 8 * MiB)
    assert_s3_error(r, 400, "EntityTooLarge")
    assert_nothing_written(srv, owner, pbucket, "too-big")


def test_a_file_below_the_range_is_refused_and_not_written(srv, owner, pbucket):
    post = presign(owner, pbucket, "too-small", conditions=[["content-length-range", 4096, 10 * MiB]])
    r, _ = post_form(srv, post["url"], post["fields"], 4095)
    err = assert_s3_error(r, 400, "EntityTooSmall")
    assert err["Message"] == "Your proposed upload is smaller than the minimum allowed object size."
    assert_nothing_written(srv, owner, pbucket, "too-small")
    r, _ = post_form(srv, post["url"], post["fields"], 4096)
    assert r.status_code == 204, describe(r)


def test_an_empty_file(srv, owner, pbucket):
    """A form may upload an empty file (it answered 411 MissingContentLength when s3s read forms)."""
    post = presign(owner, pbucket, "empty")
    r, _ = post_form(srv, post["url"], post["fields"], 0)
    assert r.status_code == 204, describe(r)
    assert owner.get_object(Bucket=pbucket, Key="empty")["Body"].read() == b""


def raw_post(srv, url: str, body: bytes, content_length: int) -> bytes:
    """Sends a POST over TLS with the given Content-Length and body, then half-closes; returns what came back."""
    u = urlsplit(url)
    ctx = ssl.create_default_context(cafile=srv.ca)
    with socket.create_connection((u.hostname, u.port), timeout=30) as raw:
        with ctx.wrap_socket(raw, server_hostname=u.hostname) as s:
            s.sendall((f"POST {u.path or '/'} HTTP/1.1\r\nHost: {u.netloc}\r\n"
                       f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
                       f"Content-Length: {content_length}\r\n\r\n").encode() + body)
            if content_length > len(body):
                return b""  # the client goes away mid-upload
            out = b""
            while b"\r\n\r\n" not in out:
                out += s.recv(65536) or b"\r\n\r\n"
            head, _, rest = out.partition(b"\r\n\r\n")
            length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length:")), 0)
            while len(rest) < length:
                piece = s.recv(65536)
                if not piece:
                    break
                rest += piece
            return head + b"\r\n\r\n" + rest


def test_an_upload_cut_short_leaves_nothing(srv, owner, pbucket):
    post = presign(owner, pbucket, "cut")
    body = FormBody(post["fields"], 4 * MiB, stop_after=2 * MiB)
    raw_post(srv, post["url"], body.read(), body.total)
    time.sleep(0.5)
    assert_nothing_written(srv, owner, pbucket, "cut")
    # A body that ends, as its Content-Length says, before the file's closing boundary: not a whole form.
    body = FormBody(post["fields"], MiB, stop_after=len(FormBody(post["fields"], 0).head) + MiB)
    data = body.read()
    answer = raw_post(srv, post["url"], data, len(data))
    assert answer.startswith(b"HTTP/1.1 400"), answer[:300]
    assert b"<Code>MalformedPOSTRequest</Code>" in answer, answer[:600]
    assert_nothing_written(srv, owner, pbucket, "cut")


def sigv4_form(srv, bucket: str, key: str, signed_at: dt.datetime) -> dict:
    """A SigV4 POST form signed by hand, with the x-amz-date it was signed at."""
    date = signed_at.strftime("%Y%m%d")
    amz_date = signed_at.strftime("%Y%m%dT%H%M%SZ")
    credential = f"{srv.access_key}/{date}/us-east-1/s3/aws4_request"
    expiration = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    policy = base64.b64encode(json.dumps({"expiration": expiration, "conditions": [
        {"bucket": bucket}, {"key": key}, {"x-amz-algorithm": "AWS4-HMAC-SHA256"},
        {"x-amz-credential": credential}, {"x-amz-date": amz_date}]}).encode()).decode()
    k = ("AWS4" + srv.secret_key).encode()
    for part in (date, "us-east-1", "s3", "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    return {"key": key, "x-amz-algorithm": "AWS4-HMAC-SHA256", "x-amz-credential": credential,
            "x-amz-date": amz_date, "policy": policy,
            "x-amz-signature": hmac.new(k, policy.encode(), hashlib.sha256).hexdigest()}


def test_a_form_signed_a_while_ago_is_good_until_its_policy_expires(srv, owner, pbucket):
    """The policy's expiration says how long a form may be used (a page's form is posted when its user is done);
    x-amz-date is not held to the 15-minute skew of signed requests (s3s refused it with RequestTimeTooSkewed)."""
    signed_at = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=40)
    r = requests.post(srv.url(pbucket), data=sigv4_form(srv, pbucket, "later", signed_at),
                      files={"file": ("f.txt", b"signed earlier")}, verify=srv.ca, timeout=60)
    assert r.status_code == 204, describe(r)
    assert owner.get_object(Bucket=pbucket, Key="later")["Body"].read() == b"signed earlier"
    fields = sigv4_form(srv, pbucket, "later", signed_at)
    fields["x-amz-signature"] = fields["x-amz-signature"][::-1]
    r = requests.post(srv.url(pbucket), data=fields, files={"file": ("f.txt", b"x")}, verify=srv.ca, timeout=60)
    assert_s3_error(r, 403, "SignatureDoesNotMatch")
