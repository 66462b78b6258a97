"""GetObjectAttributes: ETag (unquoted, as AWS gives it here), size, storage class, checksum and the
parts of a multipart object, page by page; SSE-C objects answer only with their key; versions."""
import base64
import hashlib
import json
import secrets

import pytest

from conftest import assert_client_error, md5_b64, ssec_params, unique_bucket

READER = ("AKATTRREADER" + secrets.token_hex(4).upper(), secrets.token_urlsafe(30)[:40])
ALL = ["ETag", "Checksum", "ObjectParts", "StorageClass", "ObjectSize"]
MiB = 1024 * 1024


def sse(key: bytes) -> dict:
    """SSE-C parameters for get_object_attributes, which botocore does not encode by itself."""
    return {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": base64.b64encode(key).decode(),
            "SSECustomerKeyMD5": md5_b64(key)}


def test_plain_object(s3, bucket):
    put = s3.put_object(Bucket=bucket, Key="obj", Body=b"foo", ChecksumAlgorithm="SHA256")
    r = s3.get_object_attributes(Bucket=bucket, Key="obj", ObjectAttributes=ALL)
    assert r["ETag"] == put["ETag"].strip('"') == hashlib.md5(b"foo").hexdigest()
    assert r["ObjectSize"] == 3
    assert r["StorageClass"] == "STANDARD"
    assert r["Checksum"]["ChecksumSHA256"] == put["ChecksumSHA256"]
    assert "ObjectParts" not in r and "VersionId" not in r and "DeleteMarker" not in r
    assert r["LastModified"]
    # only what was asked for; an unknown name is refused
    assert_client_error(s3.get_object_attributes, 400, "InvalidArgument", Bucket=bucket, Key="obj",
                        ObjectAttributes=["Colour"])
    r = s3.get_object_attributes(Bucket=bucket, Key="obj", ObjectAttributes=["ObjectSize"])
    assert r["ObjectSize"] == 3 and "ETag" not in r and "StorageClass" not in r


def test_missing_object_and_bucket(s3, bucket):
    assert_client_error(s3.get_object_attributes, 404, "NoSuchKey", Bucket=bucket, Key="nope",
                        ObjectAttributes=ALL)
    assert_client_error(s3.get_object_attributes, 404, "NoSuchBucket", Bucket=unique_bucket("none"),
                        Key="nope", ObjectAttributes=ALL)


def test_sse_c_object_needs_its_key(s3, bucket, ssec_key):
    put = s3.put_object(Bucket=bucket, Key="enc", Body=b"A" * 1000, **ssec_params(ssec_key))
    assert_client_error(s3.get_object_attributes, 400, "InvalidRequest", Bucket=bucket, Key="enc",
                        ObjectAttributes=ALL)
    assert_client_error(s3.get_object_attributes, 403, "AccessDenied", Bucket=bucket, Key="enc",
                        ObjectAttributes=ALL, **sse(secrets.token_bytes(32)))
    r = s3.get_object_attributes(Bucket=bucket, Key="enc", ObjectAttributes=ALL, **sse(ssec_key))
    assert r["ETag"] == put["ETag"].strip('"')
    assert r["ObjectSize"] == 1000 and r["StorageClass"] == "STANDARD"
    assert "ObjectParts" not in r


def test_multipart_parts_paged(s3, bucket):
    up = s3.create_multipart_upload(Bucket=bucket, Key="mp", ChecksumAlgorithm="SHA256")["UploadId"]
    sizes = [5 * MiB, 5 * MiB, 5 * MiB, 1234]
    parts = []
    for n, size in enumerate(sizes, 1):
        body = bytes([n]) * size
        r = s3.upload_part(Bucket=bucket, Key="mp", UploadId=up, PartNumber=n, Body=body,
                           ChecksumAlgorithm="SHA256")
        assert r["ChecksumSHA256"] == base64.b64encode(hashlib.sha256(body).digest()).decode()
        parts.append({"PartNumber": n, "ETag": r["ETag"], "ChecksumSHA256": r["ChecksumSHA256"]})
    done = s3.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=up,
                                        MultipartUpload={"Parts": parts})
    r = s3.get_object_attributes(Bucket=bucket, Key="mp", ObjectAttributes=ALL, MaxParts=3)
    assert r["ETag"] == done["ETag"].strip('"') and r["ETag"].endswith("-4")
    assert r["ObjectSize"] == sum(sizes)
    assert r["Checksum"]["ChecksumSHA256"] == done["ChecksumSHA256"]
    p = r["ObjectParts"]
    assert p["TotalPartsCount"] == 4 and p["IsTruncated"] is True and p["MaxParts"] == 3
    assert [(x["PartNumber"], x["Size"]) for x in p["Parts"]] == [(1, 5 * MiB), (2, 5 * MiB), (3, 5 * MiB)]
    assert [x["ChecksumSHA256"] for x in p["Parts"]] == [q["ChecksumSHA256"] for q in parts[:3]]
    assert p["NextPartNumberMarker"] == 3
    r = s3.get_object_attributes(Bucket=bucket, Key="mp", ObjectAttributes=["ObjectParts"], MaxParts=3,
                                 PartNumberMarker=3)
    p = r["ObjectParts"]
    assert p["IsTruncated"] is False and p["PartNumberMarker"] == 3
    assert [(x["PartNumber"], x["Size"]) for x in p["Parts"]] == [(4, 1234)]


def test_versions_each_with_its_key(s3, bucket):
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    k1, k2 = secrets.token_bytes(32), secrets.token_bytes(32)
    v1 = s3.put_object(Bucket=bucket, Key="v", Body=b"one", **ssec_params(k1))["VersionId"]
    v2 = s3.put_object(Bucket=bucket, Key="v", Body=b"second", **ssec_params(k2))["VersionId"]
    r = s3.get_object_attributes(Bucket=bucket, Key="v", ObjectAttributes=["ObjectSize"], **sse(k2))
    assert (r["VersionId"], r["ObjectSize"]) == (v2, 6)
    r = s3.get_object_attributes(Bucket=bucket, Key="v", VersionId=v1, ObjectAttributes=["ObjectSize"],
                                 **sse(k1))
    assert (r["VersionId"], r["ObjectSize"]) == (v1, 3)
    assert_client_error(s3.get_object_attributes, 403, "AccessDenied", Bucket=bucket, Key="v", VersionId=v1,
                        ObjectAttributes=["ObjectSize"], **sse(k2))


@pytest.fixture(scope="module")
def server(module_servers):
    a, s = READER
    return module_servers(config=f'[[users]]\nname = "reader"\naccess_key = "{a}"\nsecret_key = "{s}"\n',
                          name="attributes")


def test_policy_governs_attributes(server, s3, bucket):
    """A second user reads attributes only when a bucket policy grants s3:GetObjectAttributes."""
    s3.put_object(Bucket=bucket, Key="o", Body=b"data")
    other = server.client(*READER)
    assert_client_error(other.get_object_attributes, 403, "AccessDenied", Bucket=bucket, Key="o",
                        ObjectAttributes=["ObjectSize"])
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": ["*"]}, "Action": "s3:GetObjectAttributes",
                       "Resource": f"arn:aws:s3:::{bucket}/*"}],
    }))
    assert other.get_object_attributes(Bucket=bucket, Key="o", ObjectAttributes=["ObjectSize"])["ObjectSize"] == 4
