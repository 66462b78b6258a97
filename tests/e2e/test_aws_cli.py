"""The stock `aws` CLI (from the venv) against Coffer over HTTPS with `--ca-bundle`: `aws s3 cp` up and down (plain
and SSE-C with `fileb://`), `aws s3 ls`, `aws s3 rm`, `aws s3 sync`, `aws s3 mb`/`rb`.

The temp AWS config sets `s3.multipart_threshold = 64MB` so 20 MiB files go up as one PutObject (multipart is
issue 3); the one multipart round trip skips when Coffer answers NotImplemented to CreateMultipartUpload.
"""

import filecmp
import os
import secrets
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from conftest import md5_b64, unique_bucket

MiB = 1024 * 1024


def write_random(path: Path, size: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        left = size
        block = secrets.token_bytes(min(size, MiB)) if size else b""
        n = 0
        while left > 0:
            # vary each MiB so that a misplaced block would be caught
            piece = (n.to_bytes(8, "big") + block[8:])[:min(left, MiB)]
            f.write(piece)
            left -= len(piece)
            n += 1
    return path


@pytest.fixture
def work(tmp_path):
    return tmp_path


@pytest.fixture
def cli_bucket(server, work):
    name = unique_bucket("cli")
    res = server.aws("s3", "mb", f"s3://{name}", workdir=work)
    assert f"make_bucket: {name}" in res.stdout
    return name


@pytest.mark.parametrize("size", [0, 1, 1000, 64 * 1024 + 1, 20 * MiB], ids=["0B", "1B", "1000B", "64KiB+1", "20MiB"])
def test_cp_plain_round_trip(server, s3, work, cli_bucket, size):
    src = write_random(work / "up" / "file.bin", size)
    server.aws("s3", "cp", src, f"s3://{cli_bucket}/file.bin", workdir=work)
    assert s3.head_object(Bucket=cli_bucket, Key="file.bin")["ContentLength"] == size
    dst = work / "down.bin"
    server.aws("s3", "cp", f"s3://{cli_bucket}/file.bin", dst, workdir=work)
    assert filecmp.cmp(src, dst, shallow=False)


@pytest.mark.parametrize("size", [0, 1000, 20 * MiB], ids=["0B", "1000B", "20MiB"])
def test_cp_ssec_round_trip_with_fileb_key(server, s3, work, cli_bucket, size):
    key = secrets.token_bytes(32)
    (work / "sse-c.key").write_bytes(key)
    src = write_random(work / "up" / "file.bin", size)
    server.aws("s3", "cp", src, f"s3://{cli_bucket}/", "--sse-c", "AES256", "--sse-c-key", "fileb://sse-c.key",
               workdir=work)
    head = s3.head_object(Bucket=cli_bucket, Key="file.bin", SSECustomerAlgorithm="AES256", SSECustomerKey=key)
    assert head["ContentLength"] == size
    assert head["SSECustomerKeyMD5"] == md5_b64(key)
    dst = work / "down.bin"
    server.aws("s3", "cp", f"s3://{cli_bucket}/file.bin", dst, "--sse-c", "AES256", "--sse-c-key",
               "fileb://sse-c.key", workdir=work)
    assert filecmp.cmp(src, dst, shallow=False)
    # without the key, or with another one, the CLI cannot download it
    res = server.aws("s3", "cp", f"s3://{cli_bucket}/file.bin", work / "nokey.bin", workdir=work, check=False)
    assert res.returncode != 0 and "400" in res.stderr, res.stderr
    (work / "other.key").write_bytes(secrets.token_bytes(32))
    res = server.aws("s3", "cp", f"s3://{cli_bucket}/file.bin", work / "wrong.bin", "--sse-c", "AES256",
                     "--sse-c-key", "fileb://other.key", workdir=work, check=False)
    assert res.returncode != 0 and "403" in res.stderr, res.stderr
    for p in (work / "nokey.bin", work / "wrong.bin"):
        assert not p.exists() or p.stat().st_size == 0


def test_s3api_ssec_round_trip(server, work, cli_bucket):
    key = secrets.token_bytes(32)
    (work / "k").write_bytes(key)
    src = write_random(work / "body.bin", 150_000)
    server.aws("s3api", "put-object", "--bucket", cli_bucket, "--key", "api.bin", "--body", src,
               "--sse-customer-algorithm", "AES256", "--sse-customer-key", "fileb://k", workdir=work)
    server.aws("s3api", "get-object", "--bucket", cli_bucket, "--key", "api.bin", "--sse-customer-algorithm",
               "AES256", "--sse-customer-key", "fileb://k", "--range", "bytes=65535-65537", work / "range.bin",
               workdir=work)
    assert (work / "range.bin").read_bytes() == src.read_bytes()[65535:65538]
    res = server.aws("s3api", "head-object", "--bucket", cli_bucket, "--key", "api.bin", workdir=work,
                     check=False)
    assert res.returncode != 0 and "400" in res.stderr, res.stderr


def test_ls_and_rm(server, work, cli_bucket):
    write_random(work / "t" / "a.txt", 10)
    write_random(work / "t" / "sub" / "b.txt", 2000)
    server.aws("s3", "cp", work / "t" / "a.txt", f"s3://{cli_bucket}/a.txt", workdir=work)
    server.aws("s3", "cp", work / "t" / "sub" / "b.txt", f"s3://{cli_bucket}/sub/b.txt", workdir=work)
    top = server.aws("s3", "ls", workdir=work).stdout
    assert cli_bucket in top
    listing = server.aws("s3", "ls", f"s3://{cli_bucket}/", workdir=work).stdout
    lines = [line.split() for line in listing.splitlines()]
    assert ["PRE", "sub/"] in lines, listing
    assert any(parts[-2:] == ["10", "a.txt"] for parts in lines), listing
    rec = server.aws("s3", "ls", f"s3://{cli_bucket}/", "--recursive", workdir=work).stdout
    assert any(parts[-2:] == ["2000", "sub/b.txt"] for parts in (l.split() for l in rec.splitlines())), rec
    res = server.aws("s3", "rm", f"s3://{cli_bucket}/a.txt", workdir=work)
    assert f"delete: s3://{cli_bucket}/a.txt" in res.stdout
    res = server.aws("s3", "rm", f"s3://{cli_bucket}/", "--recursive", workdir=work)
    assert f"delete: s3://{cli_bucket}/sub/b.txt" in res.stdout
    assert server.aws("s3", "ls", f"s3://{cli_bucket}/", "--recursive", workdir=work, check=False).stdout == ""
    res = server.aws("s3", "rb", f"s3://{cli_bucket}", workdir=work)
    assert f"remove_bucket: {cli_bucket}" in res.stdout


def test_sync_small_tree(server, work, cli_bucket):
    tree = work / "tree"
    files = {"a.txt": 1, "b/c.bin": 70_000, "b/d/e.txt": 0, "f g/h i.txt": 333, "z.bin": 5000}
    for rel, size in files.items():
        write_random(tree / rel, size)
    up = server.aws("s3", "sync", tree, f"s3://{cli_bucket}/t", workdir=work)
    assert up.stdout.count("upload:") == len(files), up.stdout
    # nothing changed: a second sync transfers nothing
    again = server.aws("s3", "sync", tree, f"s3://{cli_bucket}/t", workdir=work)
    assert "upload:" not in again.stdout, again.stdout
    down = work / "down"
    server.aws("s3", "sync", f"s3://{cli_bucket}/t", down, workdir=work)
    for rel in files:
        assert filecmp.cmp(tree / rel, down / rel, shallow=False), rel
    # a changed and a deleted file propagate with --delete
    write_random(tree / "a.txt", 12)
    os.remove(tree / "z.bin")
    res = server.aws("s3", "sync", tree, f"s3://{cli_bucket}/t", "--delete", workdir=work)
    assert f"upload: tree/a.txt to s3://{cli_bucket}/t/a.txt" in res.stdout.replace(str(work) + "/", ""), res.stdout
    assert f"delete: s3://{cli_bucket}/t/z.bin" in res.stdout, res.stdout
    rec = server.aws("s3", "ls", f"s3://{cli_bucket}/t/", "--recursive", workdir=work).stdout
    assert "z.bin" not in rec and "a.txt" in rec


def test_sync_with_ssec(server, work, cli_bucket):
    key = secrets.token_bytes(32)
    (work / "sse-c.key").write_bytes(key)
    tree = work / "tree"
    for rel, size in {"one.bin": 100, "two/three.bin": 66_000}.items():
        write_random(tree / rel, size)
    server.aws("s3", "sync", tree, f"s3://{cli_bucket}/enc", "--sse-c", "AES256", "--sse-c-key",
               "fileb://sse-c.key", workdir=work)
    down = work / "down"
    server.aws("s3", "sync", f"s3://{cli_bucket}/enc", down, "--sse-c", "AES256", "--sse-c-key",
               "fileb://sse-c.key", workdir=work)
    for rel in ("one.bin", "two/three.bin"):
        assert filecmp.cmp(tree / rel, down / rel, shallow=False)


def test_cp_multipart_default_threshold(server, s3, work, cli_bucket):
    """20 MiB with the CLI's default 8 MiB threshold goes multipart (issue 3)."""
    try:
        up = s3.create_multipart_upload(Bucket=cli_bucket, Key="probe")
    except ClientError as e:
        if e.response.get("Error", {}).get("Code") == "NotImplemented":
            pytest.skip("multipart: issue 3 (Coffer answers NotImplemented to CreateMultipartUpload)")
        raise
    s3.abort_multipart_upload(Bucket=cli_bucket, Key="probe", UploadId=up["UploadId"])
    config = work / "aws-config-default"
    config.write_text("[default]\nregion = us-east-1\n")
    src = write_random(work / "big.bin", 20 * MiB)
    env = {"AWS_CONFIG_FILE": str(config)}
    server.aws("s3", "cp", src, f"s3://{cli_bucket}/big.bin", workdir=work, env_extra=env)
    head = s3.head_object(Bucket=cli_bucket, Key="big.bin")
    assert head["ContentLength"] == 20 * MiB and head["ETag"].endswith('-3"'), head["ETag"]
    server.aws("s3", "cp", f"s3://{cli_bucket}/big.bin", work / "big.down", workdir=work, env_extra=env)
    assert filecmp.cmp(src, work / "big.down", shallow=False)
