"""AWS Signature Version 2 (boto3 with signature_version='s3'): accepted by default, its signatures checked by
Coffer in constant time before s3s compares them; refused everywhere with --sigv2 off (flag, COFFER_SIGV2 or
the TOML key), with the answer AWS gives where only SigV4 is supported.
"""
import base64
import email.utils
import hashlib
import hmac
import os
import time
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest
import requests

from conftest import assert_client_error, assert_s3_error, describe, ssec_headers, ssec_params, unique_bucket

UNSUPPORTED = "The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256."


def v2_headers(server, method, path, date=None, secret=None, extra=None):
    """An `Authorization: AWS` header made by hand (the SigV2 string to sign of a request without a body)."""
    date = date or email.utils.formatdate(usegmt=True)
    headers = {"Date": date, **(extra or {})}
    amz = "".join(f"{k.lower()}:{v.strip()}\n" for k, v in sorted(headers.items(), key=lambda kv: kv[0].lower())
                  if k.lower().startswith("x-amz-"))
    date_line = "" if "x-amz-date" in headers else date  # x-amz-date replaces Date
    sts = f"{method}\n\n\n{date_line}\n{amz}{path}"
    sig = base64.b64encode(hmac.new((secret or server.secret_key).encode(), sts.encode(), hashlib.sha1).digest())
    return {**headers, "Authorization": f"AWS {server.access_key}:{sig.decode()}"}


def with_query(url: str, **changes) -> str:
    parts = urlsplit(url)
    query = [(k, changes.pop(k) if k in changes else v) for k, v in parse_qsl(parts.query, keep_blank_values=True)]
    return urlunsplit(parts._replace(query=urlencode(query)))


def flip(sig: str) -> str:
    return ("B" if sig[0] == "A" else "A") + sig[1:]


def form_post(server, post, data=b"form body", extra=None):
    fields = {**post["fields"], **(extra or {})}
    return requests.post(post["url"], data=fields, files={"file": ("f.txt", data)}, verify=server.ca, timeout=60)


@pytest.fixture(scope="module")
def v2(server):
    return server.client(signature_version="s3")


# -- on (the default) ---------------------------------------------------------------------------------------------

def test_header_signed_requests_work(server, s3, v2):
    bucket = unique_bucket("v2")
    v2.create_bucket(Bucket=bucket)
    v2.put_object(Bucket=bucket, Key="dir/a b+c.txt", Body=b"signed with SigV2", ContentType="text/plain",
                  Metadata={"who": "v2"})
    got = v2.get_object(Bucket=bucket, Key="dir/a b+c.txt")
    assert got["Body"].read() == b"signed with SigV2" and got["Metadata"] == {"who": "v2"}
    assert [o["Key"] for o in v2.list_objects(Bucket=bucket, Prefix="dir/")["Contents"]] == ["dir/a b+c.txt"]
    assert v2.get_bucket_acl(Bucket=bucket)["Grants"]  # ?acl is a signed sub-resource
    v2.delete_object(Bucket=bucket, Key="dir/a b+c.txt")
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)


def test_header_signed_sse_c(server, v2, ssec_key):
    """The SSE-C headers are x-amz-* headers: signed, canonicalized, and the key still never stored."""
    bucket = unique_bucket("v2-ssec")
    v2.create_bucket(Bucket=bucket)
    v2.put_object(Bucket=bucket, Key="enc", Body=b"v2 secret", **ssec_params(ssec_key))
    assert v2.get_object(Bucket=bucket, Key="enc", **ssec_params(ssec_key))["Body"].read() == b"v2 secret"
    assert_client_error(v2.get_object, 403, "AccessDenied", Bucket=bucket, Key="enc", **ssec_params(os.urandom(32)))


def test_wrong_secret_and_tampering(server, v2, bucket, s3):
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    bad = server.client(secret_key=server.secret_key + "x", signature_version="s3")
    assert_client_error(bad.get_object, 403, "SignatureDoesNotMatch", Bucket=bucket, Key="k")
    good = v2_headers(server, "GET", f"/{bucket}/k")
    r = requests.get(server.url(bucket, "k"), headers=good, verify=server.ca, timeout=30)
    assert r.status_code == 200 and r.content == b"x", describe(r)
    # The same signature on another key, another method, or with a bit flipped.
    assert_s3_error(requests.get(server.url(bucket, "other"), headers=good, verify=server.ca), 403,
                    "SignatureDoesNotMatch")
    assert_s3_error(requests.delete(server.url(bucket, "k"), headers=good, verify=server.ca), 403,
                    "SignatureDoesNotMatch")
    ak, sig = good["Authorization"][4:].split(":", 1)
    tampered = {**good, "Authorization": f"AWS {ak}:{flip(sig)}"}
    assert_s3_error(requests.get(server.url(bucket, "k"), headers=tampered, verify=server.ca), 403,
                    "SignatureDoesNotMatch")
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"x"


def test_stale_date_is_refused(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    old = email.utils.formatdate(time.time() - 3600, usegmt=True)
    r = requests.get(server.url(bucket, "k"), headers=v2_headers(server, "GET", f"/{bucket}/k", date=old),
                     verify=server.ca, timeout=30)
    assert_s3_error(r, 403, "RequestTimeTooSkewed")
    # x-amz-date wins over Date, as on AWS.
    now = email.utils.formatdate(usegmt=True)
    h = v2_headers(server, "GET", f"/{bucket}/k", date=old, extra={"x-amz-date": now})
    r = requests.get(server.url(bucket, "k"), headers=h, verify=server.ca, timeout=30)
    assert r.status_code == 200, describe(r)
    h = v2_headers(server, "GET", f"/{bucket}/k", date=now, extra={"x-amz-date": old})
    assert_s3_error(requests.get(server.url(bucket, "k"), headers=h, verify=server.ca, timeout=30), 403,
                    "RequestTimeTooSkewed")


def test_presigned_v2(server, s3, v2, bucket, tmp_path):
    s3.put_object(Bucket=bucket, Key="p", Body=b"presigned v2")
    url = v2.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "p"}, ExpiresIn=300)
    assert "AWSAccessKeyId=" in url and "Signature=" in url, url
    r = requests.get(url, verify=server.ca, timeout=30)
    assert r.status_code == 200 and r.content == b"presigned v2", describe(r)
    sig = dict(parse_qsl(urlsplit(url).query))["Signature"]
    assert_s3_error(requests.get(with_query(url, Signature=flip(sig)), verify=server.ca), 403,
                    "SignatureDoesNotMatch")
    expires = int(dict(parse_qsl(urlsplit(url).query))["Expires"])
    assert_s3_error(requests.get(with_query(url, Expires=str(expires + 60)), verify=server.ca), 403,
                    "SignatureDoesNotMatch")
    put = v2.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "pp"}, ExpiresIn=300)
    assert requests.put(put, data=b"up", verify=server.ca, timeout=30).status_code == 200
    assert s3.get_object(Bucket=bucket, Key="pp")["Body"].read() == b"up"
    short = v2.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "p"}, ExpiresIn=1)
    time.sleep(2.5)
    assert_s3_error(requests.get(short, verify=server.ca, timeout=30), 403, "AccessDenied")


def test_post_form_v2(server, s3, v2, bucket, ssec_key):
    fields = {"x-amz-server-side-encryption-customer-algorithm": "AES256",
              "x-amz-server-side-encryption-customer-key": base64.b64encode(ssec_key).decode(),
              "x-amz-server-side-encryption-customer-key-MD5": ssec_headers(ssec_key)[
                  "x-amz-server-side-encryption-customer-key-MD5"]}
    post = v2.generate_presigned_post(bucket, "form", Fields=fields, Conditions=[{k: v} for k, v in fields.items()],
                                      ExpiresIn=300)
    assert "signature" in post["fields"] and "AWSAccessKeyId" in post["fields"], post["fields"]
    r = form_post(server, post)
    assert r.status_code == 204, describe(r)
    assert s3.get_object(Bucket=bucket, Key="form", **ssec_params(ssec_key))["Body"].read() == b"form body"
    r = form_post(server, post, extra={"signature": flip(post["fields"]["signature"])})
    assert_s3_error(r, 403, "SignatureDoesNotMatch")
    r = form_post(server, post, extra={"AWSAccessKeyId": "AKNOSUCHKEY"})
    assert_s3_error(r, 403, "InvalidAccessKeyId")


def test_post_form_v2_with_filename(server, s3, v2, bucket):
    """The form's fields are read once: ${filename} is put in, and the SigV2 signature checked, on that one read."""
    post = v2.generate_presigned_post(bucket, "v2in/${filename}", Fields={"x-amz-meta-orig": "${filename}"},
                                      Conditions=[["starts-with", "$x-amz-meta-orig", ""]], ExpiresIn=300)
    send = lambda fields: requests.post(post["url"], data=fields, files={"file": ("C:\\pics\\cat 1.png", b"png")},
                                        verify=server.ca, timeout=60)
    r = send({**post["fields"], "signature": flip(post["fields"]["signature"])})
    assert_s3_error(r, 403, "SignatureDoesNotMatch")
    assert_client_error(s3.head_object, 404, "404", Bucket=bucket, Key="v2in/cat 1.png")
    r = send(post["fields"])
    assert r.status_code == 204, describe(r)
    got = s3.get_object(Bucket=bucket, Key="v2in/cat 1.png")
    assert got["Body"].read() == b"png" and got["Metadata"] == {"orig": "cat 1.png"}
    assert r.headers["ETag"] == got["ETag"]


def test_virtual_hosted_style(start_server):
    """A bucket named by the Host is part of the signed resource (/bucket/key)."""
    srv = start_server(args=["--domain", "coffer.test"], name="v2-vhost")
    bucket = unique_bucket("v2-vhost")
    srv.client().create_bucket(Bucket=bucket)
    srv.client().put_object(Bucket=bucket, Key="dir/k", Body=b"vhost v2")
    port = srv.https_port
    url = f"https://127.0.0.1:{port}/dir/k"
    host = {"Host": f"{bucket}.coffer.test:{port}"}
    good = {**host, **v2_headers(srv, "GET", f"/{bucket}/dir/k")}
    r = requests.get(url, headers=good, verify=srv.ca, timeout=30)
    assert r.status_code == 200 and r.content == b"vhost v2", describe(r)
    # Signed without the bucket (as if path-style): not this request's signature.
    r = requests.get(url, headers={**host, **v2_headers(srv, "GET", "/dir/k")}, verify=srv.ca, timeout=30)
    assert_s3_error(r, 403, "SignatureDoesNotMatch")
    # Listing the bucket: the resource is /bucket/.
    r = requests.get(f"https://127.0.0.1:{port}/", headers={**host, **v2_headers(srv, "GET", f"/{bucket}/")},
                     verify=srv.ca, timeout=30)
    assert r.status_code == 200 and b"dir/k" in r.content, describe(r)


# -- off ------------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module", params=["flag", "env", "toml"])
def off(request, module_servers):
    how = request.param
    if how == "flag":
        return module_servers(args=["--sigv2", "off"], name="sigv2-off-flag")
    if how == "env":
        return module_servers(env={"COFFER_SIGV2": "off"}, name="sigv2-off-env")
    return module_servers(config='sigv2 = "off"\n', name="sigv2-off-toml")


def test_off_refuses_every_sigv2_request(off):
    s3 = off.client()
    bucket = unique_bucket("off")
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="k", Body=b"sigv4 still works")
    v2 = off.client(signature_version="s3")
    e = assert_client_error(v2.get_object, 400, "InvalidRequest", Bucket=bucket, Key="k")
    assert e.response["Error"]["Message"] == UNSUPPORTED
    assert_client_error(v2.put_object, 400, "InvalidRequest", Bucket=bucket, Key="v2", Body=b"no")
    # Refused before the signature is even looked at.
    bad = off.client(secret_key="wrong", signature_version="s3")
    assert_client_error(bad.list_objects, 400, "InvalidRequest", Bucket=bucket)
    url = v2.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "k"}, ExpiresIn=300)
    err = assert_s3_error(requests.get(url, verify=off.ca, timeout=30), 400, "InvalidRequest")
    assert err["Message"] == UNSUPPORTED
    post = v2.generate_presigned_post(bucket, "form", ExpiresIn=300)
    r = requests.post(post["url"], data=post["fields"], files={"file": ("f", b"x")}, verify=off.ca, timeout=30)
    err = assert_s3_error(r, 400, "InvalidRequest")
    assert err["Message"] == UNSUPPORTED
    # SigV4 everything still works: header, presigned, POST form.
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"sigv4 still works"
    url4 = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "k"}, ExpiresIn=300)
    assert requests.get(url4, verify=off.ca, timeout=30).content == b"sigv4 still works"
    post4 = s3.generate_presigned_post(bucket, "form4", ExpiresIn=300)
    r = requests.post(post4["url"], data=post4["fields"], files={"file": ("f", b"x")}, verify=off.ca, timeout=30)
    assert r.status_code == 204, describe(r)
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["form4", "k"]


def test_bad_setting_is_refused(tmp_path):
    import subprocess
    from conftest import coffer_bin
    res = subprocess.run([str(coffer_bin()), "server", "--sigv2", "maybe"], capture_output=True, text=True,
                         timeout=30, cwd=tmp_path)
    assert res.returncode != 0 and "maybe" in res.stderr
