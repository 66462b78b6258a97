"""Browser POST uploads (boto3 generate_presigned_post, posted with requests): SSE-C form fields, the
success_action_* answers, and one test per failure case with the status and S3 error Code AWS answers.
"""
import base64
import hashlib
import os
import time
import xml.etree.ElementTree as ET
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from conftest import assert_s3_error, describe, unique_bucket

SSEC_FIELDS = ("x-amz-server-side-encryption-customer-algorithm", "x-amz-server-side-encryption-customer-key",
               "x-amz-server-side-encryption-customer-key-MD5")


@pytest.fixture(scope="module")
def owner(server):
    return server.client()


@pytest.fixture
def pbucket(owner):
    name = unique_bucket("post")
    owner.create_bucket(Bucket=name)
    return name


def ssec_fields(key: bytes, md5_of: bytes | None = None) -> dict:
    return dict(zip(SSEC_FIELDS, ("AES256", base64.b64encode(key).decode(),
                                  base64.b64encode(hashlib.md5(key if md5_of is None else md5_of).digest()).decode())))


def presign(client, bucket, key, fields=None, conditions=None, expires=300):
    """A presigned POST whose policy covers every field given (plus any extra conditions)."""
    fields = dict(fields or {})
    conds = [{k: v} for k, v in fields.items()] + list(conditions or [])
    return client.generate_presigned_post(bucket, key, Fields=fields, Conditions=conds, ExpiresIn=expires)


def submit(server, post, data=b"posted body", extra=None, drop=(), url=None, filename="f.txt"):
    """POSTs the form (fields first, the file last), with fields added or dropped after signing."""
    fields = {k: v for k, v in post["fields"].items() if k not in drop}
    fields.update(extra or {})
    target = url or post["url"]
    return requests.post(target, data=fields, files={"file": (filename, data)},
                         verify=server.ca if target.startswith("https") else True, timeout=60, allow_redirects=False)


def xml(resp) -> dict:
    root = ET.fromstring(resp.content)
    return {child.tag.split("}")[-1]: child.text for child in root}


# -- success ------------------------------------------------------------------------------------------------------

def test_sse_c_post_then_read_back(server, owner, pbucket):
    key = os.urandom(32)
    r = submit(server, presign(owner, pbucket, "enc", ssec_fields(key)), data=b"secret form data")
    assert r.status_code == 204, describe(r)
    assert r.content == b""
    got = owner.get_object(Bucket=pbucket, Key="enc", SSECustomerAlgorithm="AES256", SSECustomerKey=key)
    assert got["Body"].read() == b"secret form data"
    assert got["SSECustomerKeyMD5"] == ssec_fields(key)[SSEC_FIELDS[2]]
    r = server.request("GET", pbucket, "enc")
    assert_s3_error(r, 400, "InvalidRequest")


@pytest.mark.parametrize("status", ["200", "201", "204", "404"])
def test_success_action_status(server, owner, pbucket, status):
    key = os.urandom(32)
    fields = {**ssec_fields(key), "success_action_status": status}
    r = submit(server, presign(owner, pbucket, f"s{status}", fields), data=b"status body")
    expected = 204 if status == "404" else int(status)  # AWS answers 204 for any other value
    assert r.status_code == expected, describe(r)
    if expected == 201:
        body = xml(r)
        assert set(body) == {"Location", "Bucket", "Key", "ETag"}, body
        assert body["Bucket"] == pbucket and body["Key"] == "s201"
        assert body["Location"].endswith(f"/{pbucket}/s201")
        head = owner.head_object(Bucket=pbucket, Key="s201", SSECustomerAlgorithm="AES256", SSECustomerKey=key)
        assert body["ETag"] == head["ETag"]
        assert r.headers["ETag"] == head["ETag"]
    else:
        assert r.content == b""
    got = owner.get_object(Bucket=pbucket, Key=f"s{status}", SSECustomerAlgorithm="AES256", SSECustomerKey=key)
    assert got["Body"].read() == b"status body"


def test_success_action_redirect(server, owner, pbucket):
    key = os.urandom(32)
    target = "https://app.example.com/done?from=form"
    r = submit(server, presign(owner, pbucket, "dir/redirected", {**ssec_fields(key), "success_action_redirect": target}))
    assert r.status_code == 303, describe(r)
    loc = urlsplit(r.headers["Location"])
    assert (loc.scheme, loc.netloc, loc.path) == ("https", "app.example.com", "/done")
    q = parse_qs(loc.query)
    head = owner.head_object(Bucket=pbucket, Key="dir/redirected", SSECustomerAlgorithm="AES256", SSECustomerKey=key)
    assert q["from"] == ["form"] and q["bucket"] == [pbucket] and q["key"] == ["dir/redirected"]
    assert q["etag"] == [head["ETag"]]


# -- failures -----------------------------------------------------------------------------------------------------

def test_expired_policy(server, owner, pbucket):
    post = presign(owner, pbucket, "late", ssec_fields(os.urandom(32)), expires=1)
    time.sleep(2.5)
    err = assert_s3_error(submit(server, post), 403, "AccessDenied")
    assert err["Message"] == "Invalid according to Policy: Policy expired."
    assert "Contents" not in owner.list_objects_v2(Bucket=pbucket)


def test_bad_signature(server, owner, pbucket):
    post = presign(owner, pbucket, "sig", ssec_fields(os.urandom(32)))
    sig = post["fields"]["x-amz-signature"]
    flipped = sig[:-1] + ("0" if sig[-1] != "0" else "1")
    assert_s3_error(submit(server, post, extra={"x-amz-signature": flipped}), 403, "SignatureDoesNotMatch")
    # The policy is what is signed: changing it breaks the signature too.
    policy = base64.b64decode(post["fields"]["policy"]).replace(b'"sig"', b'"gis"')
    r = submit(server, post, extra={"policy": base64.b64encode(policy).decode(), "key": "gis"})
    assert_s3_error(r, 403, "SignatureDoesNotMatch")
    assert "Contents" not in owner.list_objects_v2(Bucket=pbucket)


def test_eq_condition_violated(server, owner, pbucket):
    post = presign(owner, pbucket, "eq", {**ssec_fields(os.urandom(32)), "x-amz-meta-color": "red"})
    err = assert_s3_error(submit(server, post, extra={"x-amz-meta-color": "blue"}), 403, "AccessDenied")
    assert err["Message"].startswith("Invalid according to Policy: Policy Condition failed:"), err
    assert '"$x-amz-meta-color"' in err["Message"] and "blue" not in err["Message"]


def test_starts_with_condition_violated(server, owner, pbucket):
    post = presign(owner, pbucket, "uploads/ok", ssec_fields(os.urandom(32)),
                   conditions=[["starts-with", "$key", "uploads/"]])
    assert submit(server, post).status_code == 204
    err = assert_s3_error(submit(server, post, extra={"key": "elsewhere/x"}), 403, "AccessDenied")
    assert err["Message"].startswith("Invalid according to Policy: Policy Condition failed:"), err
    assert '["starts-with", "$key", "uploads/"]' in err["Message"]
    assert [o["Key"] for o in owner.list_objects_v2(Bucket=pbucket)["Contents"]] == ["uploads/ok"]


def test_file_larger_than_content_length_range(server, owner, pbucket):
    post = presign(owner, pbucket, "big", ssec_fields(os.urandom(32)), conditions=[["content-length-range", 1, 10]])
    assert submit(server, post, data=b"0123456789").status_code == 204
    assert_s3_error(submit(server, post, data=b"0123456789A"), 400, "EntityTooLarge")


def test_file_smaller_than_content_length_range(server, owner, pbucket):
    post = presign(owner, pbucket, "small", ssec_fields(os.urandom(32)),
                   conditions=[["content-length-range", 5, 100]])
    assert_s3_error(submit(server, post, data=b"abc"), 400, "EntityTooSmall")
    assert "Contents" not in owner.list_objects_v2(Bucket=pbucket)


def test_field_not_covered_by_the_policy(server, owner, pbucket):
    post = presign(owner, pbucket, "extra", ssec_fields(os.urandom(32)))
    err = assert_s3_error(submit(server, post, extra={"x-amz-meta-extra": "1"}), 403, "AccessDenied")
    assert err["Message"] == "Invalid according to Policy: Extra input fields: x-amz-meta-extra"
    # x-ignore- fields need no condition.
    assert submit(server, post, extra={"x-ignore-note": "1"}).status_code == 204


def test_sse_c_fields_not_covered_by_the_policy(server, owner, pbucket):
    """SSE-C fields are form fields like any other: AWS wants a condition for each."""
    key = os.urandom(32)
    post = presign(owner, pbucket, "uncovered")
    err = assert_s3_error(submit(server, post, extra=ssec_fields(key)), 403, "AccessDenied")
    assert err["Message"].startswith("Invalid according to Policy: Extra input fields: "), err
    assert "x-amz-server-side-encryption-customer-algorithm" in err["Message"]
    assert base64.b64encode(key).decode() not in err["Message"]
    assert "Contents" not in owner.list_objects_v2(Bucket=pbucket)


@pytest.mark.parametrize("missing, name", [
    ("key", "key"),
    ("policy", "policy"),
    ("x-amz-signature", "X-Amz-Signature"),
    ("x-amz-credential", "X-Amz-Credential"),
    ("x-amz-algorithm", "X-Amz-Algorithm"),
    ("x-amz-date", "X-Amz-Date"),
])
def test_missing_form_fields(server, owner, pbucket, missing, name):
    post = presign(owner, pbucket, "missing", ssec_fields(os.urandom(32)))
    err = assert_s3_error(submit(server, post, drop=(missing,)), 400, "InvalidArgument")
    assert err["Message"].startswith(f"Bucket POST must contain a field named '{name}'."), err
    assert err["ArgumentName"] == name
    assert "Contents" not in owner.list_objects_v2(Bucket=pbucket)


def test_form_without_any_signature_field(server, owner, pbucket):
    post = presign(owner, pbucket, "unsigned", ssec_fields(os.urandom(32)))
    signing = ("x-amz-signature", "x-amz-credential", "x-amz-algorithm", "x-amz-date")
    err = assert_s3_error(submit(server, post, drop=signing), 400, "InvalidArgument")
    assert err["ArgumentName"] == "Signature"
    # Without a policy either it is an anonymous upload: refused on a private bucket.
    assert_s3_error(submit(server, post, drop=signing + ("policy",)), 403, "AccessDenied")
    assert "Contents" not in owner.list_objects_v2(Bucket=pbucket)


def test_fields_before_the_file_limited_to_20_kib(server, owner, pbucket):
    post = presign(owner, pbucket, "big-form")
    assert submit(server, post, extra={"x-ignore-pad": "p" * 17_000}).status_code == 204
    r = submit(server, post, extra={"x-ignore-pad": "p" * 21_000}, data=os.urandom(1 << 20))
    assert_s3_error(r, 400, "MaxPostPreDataLengthExceededError")


def test_field_named_by_the_policy_is_missing(server, owner, pbucket):
    post = presign(owner, pbucket, "need-meta", {**ssec_fields(os.urandom(32)), "x-amz-meta-tag": "t"})
    err = assert_s3_error(submit(server, post, drop=("x-amz-meta-tag",)), 403, "AccessDenied")
    assert err["Message"].startswith("Invalid according to Policy: Policy Condition failed:"), err


def test_wrong_sse_c_key_md5(server, owner, pbucket):
    key = os.urandom(32)
    post = presign(owner, pbucket, "md5", ssec_fields(key, md5_of=b"something else"))
    assert_s3_error(submit(server, post), 400, "InvalidArgument")
    assert "Contents" not in owner.list_objects_v2(Bucket=pbucket)


def test_sse_c_fields_over_plain_http(server, owner, pbucket):
    plain = server.client(endpoint=server.http)
    post = presign(plain, pbucket, "http", ssec_fields(os.urandom(32)))
    assert post["url"].startswith("http://")
    err = assert_s3_error(submit(server, post), 400, "InvalidRequest")
    assert "secure connection" in err["Message"]
    assert "Contents" not in owner.list_objects_v2(Bucket=pbucket)


# -- acl and tagging form fields ------------------------------------------------------------------------------------

TAGGING_XML = ("<Tagging><TagSet><Tag><Key>team</Key><Value>storage</Value></Tag>"
               "<Tag><Key>tier</Key><Value>gold</Value></Tag></TagSet></Tagging>")


def test_acl_and_tagging_fields_are_applied(server, owner, pbucket):
    r = submit(server, presign(owner, pbucket, "tagged", {"acl": "public-read", "tagging": TAGGING_XML}))
    assert r.status_code == 204, describe(r)
    tags = owner.get_object_tagging(Bucket=pbucket, Key="tagged")["TagSet"]
    assert tags == [{"Key": "team", "Value": "storage"}, {"Key": "tier", "Value": "gold"}]
    grants = owner.get_object_acl(Bucket=pbucket, Key="tagged")["Grants"]
    assert {g["Permission"] for g in grants} == {"READ", "FULL_CONTROL"}, grants
    # public-read means an anonymous GET works
    assert requests.get(server.url(pbucket, "tagged"), verify=server.ca).content == b"posted body"


@pytest.mark.parametrize("fields, status, code", [
    ({"acl": "everyone-please"}, 400, "InvalidArgument"),
    ({"tagging": "<Tagging><TagSet><Tag>"}, 400, "MalformedXML"),
    ({"tagging": "<Tagging><TagSet><Tag><Key>aws:x</Key><Value>v</Value></Tag></TagSet></Tagging>"}, 400,
     "InvalidTag"),
])
def test_bad_acl_or_tagging_fields(server, owner, pbucket, fields, status, code):
    r = submit(server, presign(owner, pbucket, "bad", fields))
    assert_s3_error(r, status, code)
    assert server.request("HEAD", pbucket, "bad").status_code == 404


def test_anonymous_post_with_tags_to_a_public_write_bucket(server, owner):
    bucket = unique_bucket("post-pub")
    owner.create_bucket(Bucket=bucket, ACL="public-read-write")
    r = requests.post(server.url(bucket), data={"key": "anon.txt", "acl": "public-read", "tagging": TAGGING_XML,
                                                "Content-Type": "text/plain"},
                      files={"file": ("a.txt", b"bar")}, verify=server.ca, timeout=60)
    assert r.status_code == 204, describe(r)
    assert owner.get_object(Bucket=bucket, Key="anon.txt")["Body"].read() == b"bar"
    assert len(owner.get_object_tagging(Bucket=bucket, Key="anon.txt")["TagSet"]) == 2


def test_policy_expiration_must_be_iso8601(server, owner, pbucket):
    import datetime as dt
    import hmac
    import json

    def post_with(expiration: str):
        policy = base64.b64encode(json.dumps({"expiration": expiration, "conditions": [
            {"bucket": pbucket}, ["starts-with", "$key", ""]]}).encode())
        signature = base64.b64encode(hmac.new(server.secret_key.encode(), policy, hashlib.sha1).digest())
        return requests.post(server.url(pbucket), data={"key": "dated", "AWSAccessKeyId": server.access_key,
                                                        "policy": policy, "signature": signature},
                             files={"file": ("f", b"x")}, verify=server.ca, timeout=60)

    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)
    assert_s3_error(post_with(str(later)), 400, "InvalidPolicyDocument")
    assert server.request("HEAD", pbucket, "dated").status_code == 404
    r = post_with(later.strftime("%Y-%m-%dT%H:%M:%S.000Z"))
    assert r.status_code == 204, describe(r)
