"""Object tagging: Get/Put/DeleteObjectTagging, x-amz-tagging on writes, tags through copy and
multipart, per-version tags, S3's limits, and the tag condition keys of bucket policies."""
import json
import os
import secrets

import pytest

from conftest import assert_client_error, ssec_params, unique_bucket

USERS = {
    "owner": ("AKTAGOWNER" + secrets.token_hex(5).upper(), secrets.token_urlsafe(30)[:40]),
    "other": ("AKTAGOTHER" + secrets.token_hex(5).upper(), secrets.token_urlsafe(30)[:40]),
}


@pytest.fixture(scope="module")
def srv(module_servers):
    config = "".join(f'[[users]]\nname = "{n}"\naccess_key = "{a}"\nsecret_key = "{s}"\n\n'
                     for n, (a, s) in USERS.items())
    return module_servers(config=config, name="tagging")


def tagset(pairs):
    return {"TagSet": [{"Key": k, "Value": v} for k, v in pairs]}


def tags_of(client, bucket, key, **kw):
    return [(t["Key"], t["Value"]) for t in client.get_object_tagging(Bucket=bucket, Key=key, **kw)["TagSet"]]


def test_put_get_delete_tagging_and_tag_count(srv):
    s3 = srv.client(*USERS["owner"])
    bucket = unique_bucket("tags")
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="k", Body=b"data")
    assert tags_of(s3, bucket, "k") == []
    assert "TagCount" not in s3.get_object(Bucket=bucket, Key="k")
    s3.put_object_tagging(Bucket=bucket, Key="k", Tagging=tagset([("security", "public"), ("a b", "c+d/é")]))
    assert tags_of(s3, bucket, "k") == [("security", "public"), ("a b", "c+d/é")]
    assert s3.get_object(Bucket=bucket, Key="k")["TagCount"] == 2
    # replacing is whole: the old set is gone
    s3.put_object_tagging(Bucket=bucket, Key="k", Tagging=tagset([("only", "one")]))
    assert tags_of(s3, bucket, "k") == [("only", "one")]
    r = s3.delete_object_tagging(Bucket=bucket, Key="k")
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert tags_of(s3, bucket, "k") == []
    # the data is untouched by all this
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"data"
    assert_client_error(s3.get_object_tagging, 404, "NoSuchKey", Bucket=bucket, Key="missing")
    assert_client_error(s3.put_object_tagging, 404, "NoSuchKey", Bucket=bucket, Key="missing",
                        Tagging=tagset([("a", "b")]))


def test_tagging_header_on_put_multipart_and_copy_with_ssec(srv):
    s3 = srv.client(*USERS["owner"])
    bucket = unique_bucket("tags-w")
    s3.create_bucket(Bucket=bucket)
    key = os.urandom(32)
    s3.put_object(Bucket=bucket, Key="p", Body=b"x", Tagging="k1=v1&k%202=v%2F2", **ssec_params(key))
    # tags are metadata: reading them needs no SSE-C key
    assert tags_of(s3, bucket, "p") == [("k1", "v1"), ("k 2", "v/2")]
    up = s3.create_multipart_upload(Bucket=bucket, Key="m", Tagging="mp=yes", **ssec_params(key))["UploadId"]
    etag = s3.upload_part(Bucket=bucket, Key="m", UploadId=up, PartNumber=1, Body=b"part",
                          **ssec_params(key))["ETag"]
    s3.complete_multipart_upload(Bucket=bucket, Key="m", UploadId=up,
                                 MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]}, **ssec_params(key))
    assert tags_of(s3, bucket, "m") == [("mp", "yes")]
    src = {"Bucket": bucket, "Key": "p"}
    copy_keys = {"CopySourceSSECustomerAlgorithm": "AES256", "CopySourceSSECustomerKey": key}
    s3.copy_object(Bucket=bucket, Key="c-copy", CopySource=src, **copy_keys, **ssec_params(key))
    assert tags_of(s3, bucket, "c-copy") == [("k1", "v1"), ("k 2", "v/2")]
    s3.copy_object(Bucket=bucket, Key="c-replace", CopySource=src, TaggingDirective="REPLACE",
                   Tagging="new=1", **copy_keys, **ssec_params(key))
    assert tags_of(s3, bucket, "c-replace") == [("new", "1")]
    s3.copy_object(Bucket=bucket, Key="c-none", CopySource=src, TaggingDirective="REPLACE",
                   **copy_keys, **ssec_params(key))
    assert tags_of(s3, bucket, "c-none") == []


def test_tags_belong_to_a_version(srv):
    s3 = srv.client(*USERS["owner"])
    bucket = unique_bucket("tags-v")
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    v1 = s3.put_object(Bucket=bucket, Key="k", Body=b"1", Tagging="gen=1")["VersionId"]
    v2 = s3.put_object(Bucket=bucket, Key="k", Body=b"2")["VersionId"]
    assert tags_of(s3, bucket, "k") == []
    assert tags_of(s3, bucket, "k", VersionId=v1) == [("gen", "1")]
    r = s3.put_object_tagging(Bucket=bucket, Key="k", VersionId=v1, Tagging=tagset([("gen", "old")]))
    assert r["VersionId"] == v1
    assert tags_of(s3, bucket, "k", VersionId=v1) == [("gen", "old")]
    assert tags_of(s3, bucket, "k", VersionId=v2) == []
    r = s3.get_object_tagging(Bucket=bucket, Key="k")
    assert r["VersionId"] == v2


@pytest.mark.parametrize("pairs, status, code", [
    ([(f"k{i}", "v") for i in range(11)], 400, "BadRequest"),
    ([("k" * 129, "v")], 400, "InvalidTag"),
    ([("k", "v" * 257)], 400, "InvalidTag"),
    ([("aws:reserved", "v")], 400, "InvalidTag"),
    ([("dup", "1"), ("dup", "2")], 400, "InvalidTag"),
])
def test_tag_limits_as_s3(srv, pairs, status, code):
    s3 = srv.client(*USERS["owner"])
    bucket = unique_bucket("tags-l")
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    assert_client_error(s3.put_object_tagging, status, code, Bucket=bucket, Key="k", Tagging=tagset(pairs))
    header = "&".join(f"{k}={v}" for k, v in pairs)
    assert_client_error(s3.put_object, status, code, Bucket=bucket, Key="h", Body=b"x", Tagging=header)
    assert tags_of(s3, bucket, "k") == []
    assert_client_error(s3.head_object, 404, "404", Bucket=bucket, Key="h")
    # the limits themselves are fine
    s3.put_object_tagging(Bucket=bucket, Key="k", Tagging=tagset([("k" * 128, "v" * 256)]
                                                                  + [(f"k{i}", "") for i in range(9)]))
    assert len(tags_of(s3, bucket, "k")) == 10


def test_policy_on_existing_and_request_tags(srv):
    owner = srv.client(*USERS["owner"])
    other = srv.client(*USERS["other"])
    bucket = unique_bucket("tags-p")
    owner.create_bucket(Bucket=bucket)
    for key, tags in (("pub", "security=public"), ("priv", "security=private"), ("none", "")):
        owner.put_object(Bucket=bucket, Key=key, Body=key.encode(), Tagging=tags)
    arn = f"arn:aws:s3:::{bucket}/*"
    owner.put_bucket_policy(Bucket=bucket, Policy=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": "*", "Action": ["s3:GetObject", "s3:GetObjectTagging", "s3:PutObjectTagging"],
         "Resource": arn, "Condition": {"StringEquals": {"s3:ExistingObjectTag/security": "public"}}},
        {"Effect": "Allow", "Principal": "*", "Action": "s3:PutObject", "Resource": arn,
         "Condition": {"StringEquals": {"s3:RequestObjectTag/security": "public"}}},
    ]}))
    assert other.get_object(Bucket=bucket, Key="pub")["Body"].read() == b"pub"
    assert tags_of(other, bucket, "pub") == [("security", "public")]
    for key in ("priv", "none"):
        assert_client_error(other.get_object, 403, "AccessDenied", Bucket=bucket, Key=key)
        assert_client_error(other.put_object_tagging, 403, "AccessDenied", Bucket=bucket, Key=key,
                            Tagging=tagset([("security", "public")]))
    # writes: only with the required tag
    assert_client_error(other.put_object, 403, "AccessDenied", Bucket=bucket, Key="new", Body=b"n")
    assert_client_error(other.put_object, 403, "AccessDenied", Bucket=bucket, Key="new", Body=b"n",
                        Tagging="security=private")
    other.put_object(Bucket=bucket, Key="new", Body=b"n", Tagging="security=public")
    # retagging "pub" as private is allowed (the existing tag is public), then it locks itself out
    other.put_object_tagging(Bucket=bucket, Key="pub", Tagging=tagset([("security", "private")]))
    assert_client_error(other.get_object, 403, "AccessDenied", Bucket=bucket, Key="pub")


def test_aws_cli_tagging(srv, tmp_path):
    s3 = srv.client(*USERS["owner"])
    bucket = unique_bucket("tags-cli")
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    ak, sk = USERS["owner"]
    srv.aws("s3api", "put-object-tagging", "--bucket", bucket, "--key", "k",
            "--tagging", json.dumps(tagset([("team", "storage")])), workdir=tmp_path, access_key=ak, secret_key=sk)
    out = json.loads(srv.aws("s3api", "get-object-tagging", "--bucket", bucket, "--key", "k",
                             workdir=tmp_path, access_key=ak, secret_key=sk).stdout)
    assert out["TagSet"] == [{"Key": "team", "Value": "storage"}]


def test_no_version_id_in_a_bucket_without_versioning(srv):
    """Records of a never-versioned bucket carry internal ids; tagging answers must not show them."""
    s3 = srv.client(*USERS["owner"])
    bucket = unique_bucket("tagsnv")
    s3.create_bucket(Bucket=bucket)
    assert "VersionId" not in s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    assert "VersionId" not in s3.put_object_tagging(Bucket=bucket, Key="k", Tagging=tagset([("a", "b")]))
    assert "VersionId" not in s3.get_object_tagging(Bucket=bucket, Key="k")
    assert "VersionId" not in s3.delete_object_tagging(Bucket=bucket, Key="k")


def test_connection_reused_after_an_answer_without_the_body(srv):
    """A PUT refused before its body is read (Expect: 100-continue answered with 403) and then an allowed
    PUT from the same client: the server closes that connection (Connection: close), so botocore, which
    misreads the next answer on a connection reused after such an exchange, never sees a phantom 403."""
    owner = srv.client(*USERS["owner"])
    other = srv.client(*USERS["other"])
    bucket = unique_bucket("tags-conn")
    owner.create_bucket(Bucket=bucket)
    owner.put_bucket_policy(Bucket=bucket, Policy=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": "*", "Action": "s3:PutObject", "Resource": f"arn:aws:s3:::{bucket}/*",
         "Condition": {"StringEquals": {"s3:RequestObjectTag/security": "public"}}}]}))
    for i in range(15):
        assert_client_error(other.put_object, 403, "AccessDenied", Bucket=bucket, Key=f"k{i}", Body=b"n")
        other.put_object(Bucket=bucket, Key=f"k{i}", Body=b"y", Tagging="security=public")
