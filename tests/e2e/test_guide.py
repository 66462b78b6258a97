"""The SSE-C user guide (shared/seed/000_7e2ef3104b33a4f7.txt), verbatim.

Every command of Examples 1 to 4 and both download commands are run through `bash -c` exactly as the guide writes
them (same flags, `--endpoint` abbreviated where the guide abbreviates it, `--sse-c-key $secret`,
`fileb://sse-c.key`). Only three things change: the endpoint (Coffer's HTTPS URL), the bucket name, and an added
`--ca-bundle <Coffer's CA>`; the download commands' `<placeholders>` are filled in. Credentials are set the guide's
way, with `aws configure` (its non-interactive `set` form) into a temp config; the region is left unset, as the
guide's `<enter>` does. AWS_CA_BUNDLE stays the machine's system bundle, so `--ca-bundle` is what makes TLS work.

Set COFFER_GUIDE_TRANSCRIPT=<file> to append the transcript of every run to that file.
"""

import os
import re
import secrets
import subprocess
from pathlib import Path

import pytest

from conftest import REPO, aws_bin, unique_bucket

GUIDE_ENDPOINT = "https://s3.waw3-2.cloudferro.com"

EXAMPLE_1_SECRET = """\
secret="32bytesOfTotallyRandomCharacters"
key=$(echo -n $secret | base64)
keymd5=$(echo -n $secret | openssl dgst -md5 -binary | base64)"""

EXAMPLE_1_RANDOM = """\
openssl rand 32 > sse-c.key
key=$(cat sse-c.key | base64)
keymd5=$(cat sse-c.key | openssl dgst -md5 -binary | base64)"""

EXAMPLE_2 = """\
aws s3api put-object \\
  --bucket bucket-name --key object-name \\
  --body contents.txt \\
  --sse-customer-algorithm AES256 \\
  --sse-customer-key $key \\
  --sse-customer-key-md5 $keymd5 \\
  --endpoint-url https://s3.waw3-2.cloudferro.com"""

EXAMPLE_3 = """\
aws s3 cp file.txt s3://bucket-name/ \\
  --sse-c-key $secret \\
  --sse-c AES256 \\
  --endpoint https://s3.waw3-2.cloudferro.com"""

EXAMPLE_4 = """\
aws s3 cp file.txt s3://bucket/ \\
--sse-c-key fileb://sse-c.key \\
--sse-c AES256 \\
--endpoint https://s3.waw3-2.cloudferro.com"""

DOWNLOAD_1 = """\
aws s3api get-object <file_name> --bucket <bucket_name> \\
 --key <object_key> \\
 --sse-customer-key $secret \\
 --sse-customer-algorithm AES256 \\
 --endpoint https://s3.waw3-2.cloudferro.com"""

DOWNLOAD_2 = """\
aws s3api get-object <file_name> --bucket <bucket_name> \\
 --key <object_key> \\
 --sse-customer-key fileb://<key_name> \\
 --sse-customer-algorithm AES256 \\
 --endpoint https://s3.waw3-2.cloudferro.com"""

ALL_COMMANDS = [EXAMPLE_1_SECRET, EXAMPLE_1_RANDOM, EXAMPLE_2, EXAMPLE_3, EXAMPLE_4, DOWNLOAD_1, DOWNLOAD_2]


def guide_path() -> Path | None:
    for cand in (REPO.parent / "shared" / "seed" / "000_7e2ef3104b33a4f7.txt",
                 Path("/work/shared/seed/000_7e2ef3104b33a4f7.txt")):
        if cand.exists():
            return cand
    return None


def squash(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def test_commands_here_are_the_guides_own():
    """Guard against drift: each command above appears in the guide, word for word."""
    path = guide_path()
    if path is None:
        pytest.skip("the guide (shared/seed/000_7e2ef3104b33a4f7.txt) is not next to this clone")
    guide = squash(path.read_text())
    for cmd in ALL_COMMANDS:
        assert squash(cmd) in guide, f"not in the guide verbatim:\n{cmd}"


class Guide:
    """A temp working dir with the guide's `aws configure` done, and a way to run the guide's commands there."""

    def __init__(self, server, workdir: Path):
        self.server = server
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        self.env.update({
            "AWS_CONFIG_FILE": str(workdir / ".aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(workdir / ".aws-credentials"),
            # what this machine (like a user's) exports: not Coffer's CA, so only --ca-bundle makes TLS verify
            "AWS_CA_BUNDLE": os.environ.get("AWS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt"),
            "AWS_PAGER": "",
            "PATH": f"{Path(aws_bin()).parent}:{os.environ.get('PATH', '')}",
        })
        # The guide's `aws configure`: access key, secret key, <enter> for region and output format.
        self.run(f"aws configure set aws_access_key_id {server.access_key}\n"
                 f"aws configure set aws_secret_access_key {server.secret_key}")
        self.transcript = []

    def adapt(self, cmd: str, bucket: str, **placeholders) -> str:
        """Change only the endpoint, the bucket name and add --ca-bundle; fill in the download placeholders."""
        out = cmd.replace(GUIDE_ENDPOINT, f"{self.server.https} --ca-bundle {self.server.ca}")
        out = out.replace("--bucket bucket-name", f"--bucket {bucket}")
        out = out.replace("s3://bucket-name/", f"s3://{bucket}/").replace("s3://bucket/", f"s3://{bucket}/")
        out = out.replace("<bucket_name>", bucket)
        for name, value in placeholders.items():
            out = out.replace(f"<{name}>", value)
        assert "<" not in out and "bucket-name" not in out, out
        return out

    def run(self, script: str, check=True) -> subprocess.CompletedProcess:
        full = "set -e -o pipefail -x\n" + script
        res = subprocess.run(["bash", "-c", full], cwd=self.workdir, env=self.env, capture_output=True, text=True,
                             timeout=300, stdin=subprocess.DEVNULL)
        if hasattr(self, "transcript"):
            self.transcript.append(f"$ bash -c <<'EOF'\n{script}\nEOF\n[exit {res.returncode}]\n"
                                   f"{res.stdout}{res.stderr}")
        if check and res.returncode != 0:
            raise AssertionError(f"guide command failed ({res.returncode}):\n{script}\n--- stdout\n{res.stdout}\n"
                                 f"--- stderr\n{res.stderr}\n{self.server.log_tail(30)}")
        return res

    def save_transcript(self, title: str):
        dest = os.environ.get("COFFER_GUIDE_TRANSCRIPT")
        text = f"===== {title} =====\n" + "\n".join(self.transcript) + "\n"
        (self.workdir / "transcript.txt").write_text(text)
        if dest:
            with open(dest, "a") as f:
                f.write(text)

    def refused(self, bucket, key, key_args: str) -> str:
        """A download of an SSE-C object that must fail; returns what the CLI printed."""
        out = self.workdir / "refused.out"
        res = self.run(f"aws s3api get-object {out.name} --bucket {bucket} --key {key} {key_args} "
                       f"--endpoint {self.server.https} --ca-bundle {self.server.ca}", check=False)
        assert res.returncode != 0, f"download succeeded but should have been refused:\n{res.stdout}{res.stderr}"
        if out.exists():
            assert out.read_bytes() == b"", "a refused download wrote data"
        return res.stderr


def make_text(n=20_000) -> bytes:
    words = [secrets.token_hex(4) for _ in range(n // 9)]
    return (" ".join(words) + "\n").encode()


@pytest.fixture
def guide(server, tmp_path):
    return Guide(server, tmp_path / "guide")


def check_refusals(g: Guide, bucket: str, key: str):
    err = g.refused(bucket, key, "")
    assert "(InvalidRequest)" in err, err
    other = "OtherKeyOtherKeyOtherKeyOtherKey"  # 32 bytes, not the key
    assert len(other) == 32
    err = g.refused(bucket, key, f"--sse-customer-key {other} --sse-customer-algorithm AES256")
    assert "(AccessDenied)" in err, err


def test_example1_secret_example2_put_then_download1(server, s3, guide):
    bucket = unique_bucket("guide-ex2")
    s3.create_bucket(Bucket=bucket)
    body = make_text()
    (guide.workdir / "contents.txt").write_bytes(body)
    res = guide.run("\n".join([
        EXAMPLE_1_SECRET,
        guide.adapt(EXAMPLE_2, bucket),
        guide.adapt(DOWNLOAD_1, bucket, file_name="downloaded.txt", object_key="object-name"),
    ]))
    assert '"SSECustomerAlgorithm": "AES256"' in res.stdout, res.stdout
    assert (guide.workdir / "downloaded.txt").read_bytes() == body
    check_refusals(guide, bucket, "object-name")
    guide.save_transcript("Example 1 (secret) + Example 2 + download 1")


def test_example1_secret_example3_s3_cp_then_download1(server, s3, guide):
    bucket = unique_bucket("guide-ex3")
    s3.create_bucket(Bucket=bucket)
    body = make_text()
    (guide.workdir / "file.txt").write_bytes(body)
    guide.run("\n".join([
        EXAMPLE_1_SECRET,
        guide.adapt(EXAMPLE_3, bucket),
        guide.adapt(DOWNLOAD_1, bucket, file_name="downloaded.txt", object_key="file.txt"),
    ]))
    assert (guide.workdir / "downloaded.txt").read_bytes() == body
    check_refusals(guide, bucket, "file.txt")
    guide.save_transcript("Example 1 (secret) + Example 3 + download 1")


def test_example1_random_key_example4_s3_cp_blob_then_download2(server, s3, guide):
    bucket = unique_bucket("guide-ex4")
    s3.create_bucket(Bucket=bucket)
    body = make_text()
    (guide.workdir / "file.txt").write_bytes(body)
    guide.run("\n".join([
        EXAMPLE_1_RANDOM,
        guide.adapt(EXAMPLE_4, bucket),
        guide.adapt(DOWNLOAD_2, bucket, file_name="downloaded.txt", object_key="file.txt", key_name="sse-c.key"),
    ]))
    assert len((guide.workdir / "sse-c.key").read_bytes()) == 32
    assert (guide.workdir / "downloaded.txt").read_bytes() == body
    check_refusals(guide, bucket, "file.txt")
    # the guide's secret is not this object's key either
    err = guide.refused(bucket, "file.txt", "--sse-customer-key 32bytesOfTotallyRandomCharacters "
                                            "--sse-customer-algorithm AES256")
    assert "(AccessDenied)" in err, err
    guide.save_transcript("Example 1 (openssl rand) + Example 4 + download 2")


def test_example1_random_key_example2_then_download2(server, s3, guide):
    bucket = unique_bucket("guide-ex2r")
    s3.create_bucket(Bucket=bucket)
    body = make_text()
    (guide.workdir / "contents.txt").write_bytes(body)
    guide.run("\n".join([
        EXAMPLE_1_RANDOM,
        guide.adapt(EXAMPLE_2, bucket),
        guide.adapt(DOWNLOAD_2, bucket, file_name="downloaded.txt", object_key="object-name",
                    key_name="sse-c.key"),
    ]))
    assert (guide.workdir / "downloaded.txt").read_bytes() == body
    check_refusals(guide, bucket, "object-name")
    guide.save_transcript("Example 1 (openssl rand) + Example 2 + download 2")


def test_guide_secret_and_file_key_downloads_are_interchangeable(server, s3, guide):
    """Example 3 uploads with the raw secret; Download 2 with the same 32 bytes in a file must read it back."""
    bucket = unique_bucket("guide-mix")
    s3.create_bucket(Bucket=bucket)
    body = make_text(5000)
    (guide.workdir / "file.txt").write_bytes(body)
    (guide.workdir / "secret.key").write_bytes(b"32bytesOfTotallyRandomCharacters")
    guide.run("\n".join([
        EXAMPLE_1_SECRET,
        guide.adapt(EXAMPLE_3, bucket),
        guide.adapt(DOWNLOAD_2, bucket, file_name="downloaded.txt", object_key="file.txt", key_name="secret.key"),
    ]))
    assert (guide.workdir / "downloaded.txt").read_bytes() == body
    guide.save_transcript("Example 3 + download 2 with the same key in a file")
