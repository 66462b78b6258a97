"""Bucket policies that require SSE-C, canned ACLs, and browser POST uploads with SSE-C fields.

Parts of issue 5 that already work: a policy denying PutObject unless
s3:x-amz-server-side-encryption-customer-algorithm is present refuses plain PUT and POST and
accepts SSE-C ones; POST form SSE-C fields obey the HTTPS-only rule like the headers; a second
user gets only what a policy or a canned ACL grants; policies are validated (MalformedPolicy).
"""
import base64
import hashlib
import json
import os
import secrets

import pytest
import requests

from conftest import assert_client_error, unique_bucket

USERS = {
    "owner": ("AKOWNER" + secrets.token_hex(6).upper(), secrets.token_urlsafe(30)[:40]),
    "reader": ("AKREADER" + secrets.token_hex(6).upper(), secrets.token_urlsafe(30)[:40]),
}


@pytest.fixture(scope="module")
def srv(module_servers):
    config = "".join(f'[[users]]\nname = "{n}"\naccess_key = "{a}"\nsecret_key = "{s}"\n\n'
                     for n, (a, s) in USERS.items())
    return module_servers(config=config, name="policy")


def ssec_fields(key: bytes) -> dict:
    return {
        "x-amz-server-side-encryption-customer-algorithm": "AES256",
        "x-amz-server-side-encryption-customer-key": base64.b64encode(key).decode(),
        "x-amz-server-side-encryption-customer-key-MD5": base64.b64encode(hashlib.md5(key).digest()).decode(),
    }


def post(client, srv, bucket, key, fields=None):
    fields = fields or {}
    p = client.generate_presigned_post(bucket, key, Fields=dict(fields),
                                       Conditions=[{k: v} for k, v in fields.items()], ExpiresIn=300)
    return requests.post(p["url"], data=p["fields"], files={"file": ("f.txt", b"posted body")},
                         verify=srv.ca)


def test_policy_requiring_sse_c_for_put_post_copy_and_multipart(srv):
    owner = srv.client(*USERS["owner"])
    bucket = unique_bucket("ssec-only")
    owner.create_bucket(Bucket=bucket)
    owner.put_object(Bucket=bucket, Key="src", Body=b"source")
    policy = {"Version": "2012-10-17", "Statement": [{
        "Sid": "RequireSSEC", "Effect": "Deny", "Principal": "*", "Action": "s3:PutObject",
        "Resource": f"arn:aws:s3:::{bucket}/*",
        "Condition": {"Null": {"s3:x-amz-server-side-encryption-customer-algorithm": "true"}}}]}
    owner.put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))
    assert json.loads(owner.get_bucket_policy(Bucket=bucket)["Policy"]) == policy
    key = os.urandom(32)
    ssec = {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": key}
    # PUT
    assert_client_error(owner.put_object, 403, "AccessDenied", Bucket=bucket, Key="plain", Body=b"x")
    owner.put_object(Bucket=bucket, Key="enc", Body=b"x", **ssec)
    # POST (form fields)
    assert post(owner, srv, bucket, "p-plain").status_code == 403
    r = post(owner, srv, bucket, "p-enc", ssec_fields(key))
    assert r.status_code == 204, r.text
    assert owner.get_object(Bucket=bucket, Key="p-enc", **ssec)["Body"].read() == b"posted body"
    # copy
    assert_client_error(owner.copy_object, 403, "AccessDenied", Bucket=bucket, Key="c-plain",
                        CopySource={"Bucket": bucket, "Key": "src"})
    owner.copy_object(Bucket=bucket, Key="c-enc", CopySource={"Bucket": bucket, "Key": "src"}, **ssec)
    # multipart
    assert_client_error(owner.create_multipart_upload, 403, "AccessDenied", Bucket=bucket, Key="m-plain")
    up = owner.create_multipart_upload(Bucket=bucket, Key="m-enc", **ssec)["UploadId"]
    etag = owner.upload_part(Bucket=bucket, Key="m-enc", UploadId=up, PartNumber=1, Body=b"part", **ssec)["ETag"]
    owner.complete_multipart_upload(Bucket=bucket, Key="m-enc", UploadId=up,
                                    MultipartUpload={"Parts": [{"ETag": etag, "PartNumber": 1}]}, **ssec)
    assert owner.get_object(Bucket=bucket, Key="m-enc", **ssec)["Body"].read() == b"part"
    # the owner can always remove a policy
    owner.delete_bucket_policy(Bucket=bucket)
    assert_client_error(owner.get_bucket_policy, 404, "NoSuchBucketPolicy", Bucket=bucket)
    owner.put_object(Bucket=bucket, Key="plain", Body=b"x")


def test_post_sse_c_fields_refused_over_plain_http(srv):
    owner = srv.client(*USERS["owner"])
    bucket = unique_bucket("post-http")
    owner.create_bucket(Bucket=bucket)
    plain = srv.client(*USERS["owner"], endpoint=srv.http)
    r = post(plain, srv, bucket, "k", ssec_fields(os.urandom(32)))
    assert r.status_code == 400 and "<Code>InvalidRequest</Code>" in r.text, r.text
    # SSE-C fields the policy does not name: still the transport error first, not the policy's verdict
    p = plain.generate_presigned_post(bucket, "k", ExpiresIn=300)
    r = requests.post(p["url"], data={**p["fields"], **ssec_fields(os.urandom(32))},
                      files={"file": ("f.txt", b"posted body")})
    assert r.status_code == 400 and "<Code>InvalidRequest</Code>" in r.text, r.text
    assert post(plain, srv, bucket, "k").status_code == 204


def test_second_user_read_only_by_policy_and_by_acl(srv):
    owner = srv.client(*USERS["owner"])
    reader = srv.client(*USERS["reader"])
    bucket = unique_bucket("ro")
    owner.create_bucket(Bucket=bucket)
    owner.put_object(Bucket=bucket, Key="doc", Body=b"shared")
    assert_client_error(reader.get_object, 403, "AccessDenied", Bucket=bucket, Key="doc")
    policy = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"AWS": ["reader"]}, "Action": ["s3:GetObject", "s3:ListBucket"],
        "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"]}]}
    owner.put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))
    assert reader.get_object(Bucket=bucket, Key="doc")["Body"].read() == b"shared"
    assert [o["Key"] for o in reader.list_objects_v2(Bucket=bucket)["Contents"]] == ["doc"]
    assert_client_error(reader.put_object, 403, "AccessDenied", Bucket=bucket, Key="x", Body=b"no")
    assert_client_error(reader.delete_object, 403, "AccessDenied", Bucket=bucket, Key="doc")
    # Deny on aws:SecureTransport=false: HTTPS still reads, plain HTTP is refused.
    policy["Statement"].append({"Effect": "Deny", "Principal": "*", "Action": "s3:*",
                                "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
                                "Condition": {"Bool": {"aws:SecureTransport": "false"}}})
    owner.put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))
    assert reader.get_object(Bucket=bucket, Key="doc")["Body"].read() == b"shared"
    plain_reader = srv.client(*USERS["reader"], endpoint=srv.http)
    assert_client_error(plain_reader.get_object, 403, "AccessDenied", Bucket=bucket, Key="doc")
    # Canned ACLs: public-read on an object lets another user read it, private does not.
    owner.delete_bucket_policy(Bucket=bucket)
    owner.put_object(Bucket=bucket, Key="pub", Body=b"public", ACL="public-read")
    assert reader.get_object(Bucket=bucket, Key="pub")["Body"].read() == b"public"
    assert_client_error(reader.get_object, 403, "AccessDenied", Bucket=bucket, Key="doc")
    grants = owner.get_object_acl(Bucket=bucket, Key="pub")["Grants"]
    assert {g["Permission"] for g in grants} == {"FULL_CONTROL", "READ"}
    assert_client_error(owner.put_object_acl, 501, "NotImplemented", Bucket=bucket, Key="doc",
                        GrantRead='id="reader"')


@pytest.mark.parametrize("doc, fragment", [
    ("not json", "valid JSON"),
    ('{"Statement": [{"Effect": "Maybe", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::B/*"}]}',
     "Invalid effect"),
    ('{"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::other/*"}]}',
     "invalid resource"),
    ('{"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::B/*",'
     ' "Condition": {"StringFrob": {"s3:prefix": "x"}}}]}', "Condition type"),
])
def test_malformed_policies_say_what_is_wrong(srv, doc, fragment):
    owner = srv.client(*USERS["owner"])
    bucket = unique_bucket("bad-pol")
    owner.create_bucket(Bucket=bucket)
    e = assert_client_error(owner.put_bucket_policy, 400, "MalformedPolicy", Bucket=bucket,
                            Policy=doc.replace("arn:aws:s3:::B", f"arn:aws:s3:::{bucket}"))
    assert fragment.lower() in e.response["Error"]["Message"].lower()


def test_anonymous_writes_to_a_public_read_write_bucket(srv):
    from botocore import UNSIGNED
    owner = srv.client(*USERS["owner"])
    bucket = unique_bucket("pub-rw")
    owner.create_bucket(Bucket=bucket, ACL="public-read-write")
    # a plain anonymous PUT is stored as sent
    r = srv.request("PUT", bucket, "plain", body=b"anon data", sign=False)
    assert r.status_code == 200, r.text
    assert owner.get_object(Bucket=bucket, Key="plain")["Body"].read() == b"anon data"
    # current SDKs frame anonymous bodies as aws-chunked with a checksum trailer, which s3s decodes only for
    # signed requests: refused cleanly, never stored with its frames
    anon = srv.client(signature_version=UNSIGNED)
    assert_client_error(anon.put_object, 501, "NotImplemented", Bucket=bucket, Key="framed", Body=b"foo")
    assert_client_error(owner.head_object, 404, "404", Bucket=bucket, Key="framed")


def test_an_explicit_deny_binds_root_too_but_root_keeps_the_policy(srv):
    """As an AWS account's root: root may do anything a policy does not explicitly deny, and can always read,
    replace or delete the policy itself (so a bad Deny can be undone)."""
    owner = srv.client(*USERS["owner"])
    root = srv.client()
    plain_root = srv.client(endpoint=srv.http)
    bucket = unique_bucket("rootdeny")
    owner.create_bucket(Bucket=bucket)
    owner.put_object(Bucket=bucket, Key="doc", Body=b"tls only")
    assert root.get_object(Bucket=bucket, Key="doc")["Body"].read() == b"tls only"  # root reads others' buckets
    deny_plain = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Deny", "Principal": "*", "Action": "s3:*",
         "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
         "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]}
    root.put_bucket_policy(Bucket=bucket, Policy=json.dumps(deny_plain))
    assert_client_error(plain_root.get_object, 403, "AccessDenied", Bucket=bucket, Key="doc")
    assert_client_error(plain_root.list_objects_v2, 403, "AccessDenied", Bucket=bucket)
    assert_client_error(plain_root.put_object, 403, "AccessDenied", Bucket=bucket, Key="x", Body=b"x")
    assert root.get_object(Bucket=bucket, Key="doc")["Body"].read() == b"tls only"
    # a Deny of everything, policy management included, still leaves root (and the owner) the policy
    deny_all = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Deny", "Principal": "*", "Action": "s3:*",
         "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"]}]}
    root.put_bucket_policy(Bucket=bucket, Policy=json.dumps(deny_all))
    assert_client_error(root.get_object, 403, "AccessDenied", Bucket=bucket, Key="doc")
    assert json.loads(root.get_bucket_policy(Bucket=bucket)["Policy"]) == deny_all
    root.delete_bucket_policy(Bucket=bucket)
    assert root.get_object(Bucket=bucket, Key="doc")["Body"].read() == b"tls only"
