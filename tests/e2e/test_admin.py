"""Users and access keys with `coffer admin` against a running server: the secret is shown once, works with the
aws CLI at once, survives a restart without ever being on disk in clear, and stops working when revoked. The admin
API answers only root, only over HTTPS, only with a signed payload hash; every refusal has its IAM code.
"""

import json
import os
import subprocess
from pathlib import Path

import pytest

from conftest import (assert_client_error, assert_s3_error, coffer_bin, ssec_params, tree_files, unique_bucket)


def admin(srv, *args, creds=None, json_out=True, check=True, endpoint=None, env_extra=None):
    """Run `coffer admin ARGS` as root (or `creds`); returns (exit code, parsed JSON or text, stderr)."""
    ak, sk = creds or (srv.access_key, srv.secret_key)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COFFER_", "AWS_"))}
    env.update({"COFFER_ROOT_ACCESS_KEY": ak, "COFFER_ROOT_SECRET_KEY": sk, "HOME": str(srv.base)})
    env.update(env_extra or {})
    cmd = [str(coffer_bin()), "admin", "--endpoint-url", endpoint or srv.https, "--data-dir", str(srv.data_dir)]
    cmd += (["--json"] if json_out else []) + list(args)
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    if check and res.returncode != 0:
        raise AssertionError(f"coffer admin {' '.join(args)} failed ({res.returncode}):\n{res.stderr}")
    out = json.loads(res.stdout) if (json_out and res.returncode == 0) else res.stdout
    return res.returncode, out, res.stderr


def new_user_with_key(srv, name):
    admin(srv, "user", "create", name)
    _, key, _ = admin(srv, "key", "create", name)
    assert key["user"] == name and key["access_key"].startswith("CFR") and len(key["secret_key"]) == 40, key
    return key["access_key"], key["secret_key"]


def test_user_lifecycle_with_the_aws_cli(start_server, tmp_path):
    srv = start_server(name="admin-life")
    ak, sk = new_user_with_key(srv, "alice")

    # The new key works at once, with the stock aws CLI, SSE-C included.
    bucket = unique_bucket("alice")
    srv.aws("s3api", "create-bucket", "--bucket", bucket, workdir=tmp_path, access_key=ak, secret_key=sk)
    keyfile = tmp_path / "sse-c.key"
    keyfile.write_bytes(os.urandom(32))
    (tmp_path / "file.txt").write_bytes(b"alice's data" * 1000)
    srv.aws("s3", "cp", "file.txt", f"s3://{bucket}/file.txt", "--sse-c", "AES256", "--sse-c-key",
            f"fileb://{keyfile}", workdir=tmp_path, access_key=ak, secret_key=sk)
    listing = srv.aws("s3api", "list-buckets", workdir=tmp_path, access_key=ak, secret_key=sk).stdout
    assert bucket in listing

    # Alice owns her bucket; another user gets AccessDenied there, root may do anything.
    bk, bs = new_user_with_key(srv, "bob")
    bob = srv.client(bk, bs)
    assert_client_error(bob.list_objects_v2, 403, "AccessDenied", Bucket=bucket)
    root = srv.client()
    assert root.get_object(Bucket=bucket, Key="file.txt", **ssec_params(keyfile.read_bytes()))["Body"].read() \
        == b"alice's data" * 1000

    # Listings show ids, never secrets.
    _, users, _ = admin(srv, "user", "list")
    by_name = {u["user"]: u for u in users["users"]}
    assert by_name["root"]["source"] == "root" and by_name["alice"]["access_keys"] == [ak], users
    _, keys, _ = admin(srv, "key", "list", "--user", "alice")
    assert [k["access_key"] for k in keys["access_keys"]] == [ak]
    assert sk not in json.dumps(users) + json.dumps(keys)
    code, text, _ = admin(srv, "key", "list", json_out=False)
    assert code == 0 and ak in text and bk in text and sk not in text

    # A user that owns a bucket cannot be deleted.
    code, _, err = admin(srv, "user", "delete", "alice", check=False)
    assert code != 0 and "DeleteConflict" in err and bucket in err, err

    # Restart: the key still works (it was stored, sealed).
    srv.restart()
    alice = srv.client(ak, sk)
    assert alice.head_bucket(Bucket=bucket)["ResponseMetadata"]["HTTPStatusCode"] == 200

    # Revoked: requests signed with it fail at once, and after a restart.
    admin(srv, "key", "revoke", ak)
    assert_client_error(alice.list_objects_v2, 403, "InvalidAccessKeyId", Bucket=bucket)
    srv.restart()
    assert_client_error(srv.client(ak, sk).list_objects_v2, 403, "InvalidAccessKeyId", Bucket=bucket)

    # With the bucket gone the user can be deleted, and its remaining keys go with it.
    root = srv.client()
    root.delete_object(Bucket=bucket, Key="file.txt")
    root.delete_bucket(Bucket=bucket)
    _, key2, _ = admin(srv, "key", "create", "alice")
    _, deleted, _ = admin(srv, "user", "delete", "alice")
    assert deleted["revoked_access_keys"] == [key2["access_key"]]
    assert_client_error(srv.client(key2["access_key"], key2["secret_key"]).list_buckets, 403, "InvalidAccessKeyId")


def test_secrets_are_never_on_disk_in_clear(start_server):
    srv = start_server(root_creds=None, name="admin-sealed")
    root_sk = srv.secret_key
    ak, sk = new_user_with_key(srv, "carol")
    srv.client(ak, sk).create_bucket(Bucket=unique_bucket("carol"))
    srv.stop()
    creds = (srv.data_dir / "credentials.toml").read_text()
    assert "secret_key_sealed" in creds and root_sk not in creds, creds
    for f in tree_files(srv.data_dir):
        data = f.read_bytes()
        for secret in (root_sk, sk):
            assert secret.encode() not in data, f"a secret key is in clear in {f}"
    logs = srv.stdout_text() + srv.stderr_text()
    assert sk not in logs, "a user's secret key is in the server log"
    srv.start()
    assert srv.client(ak, sk).list_buckets()["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert srv.client().list_buckets()["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert root_sk not in srv.stdout_text(2), "the root secret is printed again"

    # Another master key cannot open the sealed secrets: the server refuses to start rather than run without them.
    srv.stop()
    other = srv.base / "other-master.key"
    other.write_bytes(os.urandom(32))
    other.chmod(0o600)
    res = subprocess.run(srv.command() + ["--master-key-file", str(other)], env=srv.env(), capture_output=True,
                         text=True, timeout=30)
    assert res.returncode != 0 and "does not open" in res.stderr, res.stderr


def test_a_clear_secret_of_an_older_data_dir_is_sealed_on_start(start_server):
    srv = start_server(root_creds=None, name="admin-migrate")
    srv.stop()
    (srv.data_dir / "credentials.toml").write_text('access_key = "CFROLDSTYLEKEY000001"\n'
                                                    'secret_key = "old-style-secret-in-clear-0123456789abcd"\n')
    srv.start()
    creds = (srv.data_dir / "credentials.toml").read_text()
    assert "old-style-secret-in-clear" not in creds and "secret_key_sealed" in creds, creds
    s3 = srv.client("CFROLDSTYLEKEY000001", "old-style-secret-in-clear-0123456789abcd")
    assert s3.list_buckets()["ResponseMetadata"]["HTTPStatusCode"] == 200


CONFIG_USER = """
[[users]]
name = "dave"
access_key = "DAVEACCESSKEY0000001"
secret_key = "davesecretkey00000000000000000000000001"
"""


@pytest.fixture(scope="module")
def admin_server(module_servers):
    return module_servers(config=CONFIG_USER, name="admin-errors")


@pytest.mark.parametrize("args, code, status", [
    (("user", "create", "bad name"), "ValidationError", 400),
    (("user", "create", "x" * 65), "ValidationError", 400),
    (("user", "create", "root"), "EntityAlreadyExists", 409),
    (("user", "create", "dave"), "EntityAlreadyExists", 409),
    (("user", "delete", "nobody"), "NoSuchEntity", 404),
    (("user", "delete", "root"), "InvalidArgument", 400),
    (("user", "delete", "dave"), "InvalidArgument", 400),
    (("key", "create", "nobody"), "NoSuchEntity", 404),
    (("key", "create", "dave"), "InvalidArgument", 400),
    (("key", "revoke", "CFRNOSUCHKEY00000000"), "NoSuchEntity", 404),
    (("key", "revoke", "DAVEACCESSKEY0000001"), "InvalidArgument", 400),
])
def test_refusals_have_iam_codes(admin_server, args, code, status):
    rc, _, err = admin(admin_server, *args, check=False)
    assert rc != 0 and f"{code}:" in err and f"HTTP {status}" in err, err


def test_duplicate_user_and_key_quota(admin_server):
    admin(admin_server, "user", "create", "erin")
    rc, _, err = admin(admin_server, "user", "create", "erin", check=False)
    assert rc != 0 and "EntityAlreadyExists" in err
    admin(admin_server, "key", "create", "erin")
    admin(admin_server, "key", "create", "erin")
    rc, _, err = admin(admin_server, "key", "create", "erin", check=False)
    assert rc != 0 and "LimitExceeded" in err and "HTTP 409" in err, err


def test_only_root_over_https_with_a_signed_body(admin_server):
    srv = admin_server
    # A config user and a managed user are refused.
    rc, _, err = admin(srv, "user", "list", creds=("DAVEACCESSKEY0000001", "davesecretkey00000000000000000000000001"),
                       check=False)
    assert rc != 0 and "AccessDenied" in err, err
    admin(srv, "user", "create", "frank")
    _, key, _ = admin(srv, "key", "create", "frank")
    rc, _, err = admin(srv, "user", "list", creds=(key["access_key"], key["secret_key"]), check=False)
    assert rc != 0 and "AccessDenied" in err, err
    # Wrong secret for root's key id.
    rc, _, err = admin(srv, "user", "list", creds=(srv.access_key, "wrong" * 8), check=False)
    assert rc != 0 and "SignatureDoesNotMatch" in err, err

    body = b"{}"
    hdrs = {"x-coffer-admin-action": "ListUsers", "content-type": "application/json"}
    # Anonymous.
    assert_s3_error(srv.request("POST", headers=hdrs, body=body, sign=False), 403, "AccessDenied")
    # Plain HTTP, even signed by root: the answers carry secrets.
    assert_s3_error(srv.request("POST", headers=hdrs, body=body, scheme="http"), 400, "InvalidRequest")
    # UNSIGNED-PAYLOAD: refused, so a captured request's body cannot be swapped.
    assert_s3_error(srv.request("POST", headers=hdrs, body=body, payload_hash="UNSIGNED-PAYLOAD"), 400,
                    "InvalidRequest")
    # A body that is not the one signed.
    signed = srv.sign("POST", srv.url(), hdrs, b'{"user": "x"}')
    import requests
    resp = requests.post(srv.url(), headers=signed, data=b'{"user": "y"}', verify=srv.ca, timeout=30)
    assert resp.status_code in (400, 403), resp.text
    # Unknown action, bad JSON, unknown field.
    assert_s3_error(srv.request("POST", headers={**hdrs, "x-coffer-admin-action": "Nope"}, body=body), 400,
                    "InvalidArgument")
    assert_s3_error(srv.request("POST", headers=hdrs, body=b"{not json"), 400, "InvalidArgument")
    assert_s3_error(srv.request("POST", headers={**hdrs, "x-coffer-admin-action": "CreateUser"},
                                body=b'{"user": "g", "extra": 1}'), 400, "InvalidArgument")
    # A signed JSON request from Python works too: the API is plain HTTP + SigV4.
    resp = srv.request("POST", headers=hdrs, body=body)
    assert resp.status_code == 200 and resp.headers["content-type"] == "application/json"
    assert any(u["user"] == "dave" and u["source"] == "config" for u in resp.json()["users"])


def test_credentials_from_the_aws_cli_profile(admin_server, tmp_path):
    """After pasting the `aws configure set` lines the server prints, `coffer admin` needs no flags for them."""
    srv = admin_server
    creds = tmp_path / "credentials"
    creds.write_text(f"[default]\naws_access_key_id = {srv.access_key}\naws_secret_access_key = {srv.secret_key}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COFFER_", "AWS_"))}
    env["AWS_SHARED_CREDENTIALS_FILE"] = str(creds)
    res = subprocess.run([str(coffer_bin()), "admin", "--endpoint-url", srv.https, "--ca-bundle", srv.ca,
                          "user", "list"], env=env, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and "root" in res.stdout and "USER" in res.stdout, res.stderr
    # No credentials anywhere: a clear message, not a crash.
    env["AWS_SHARED_CREDENTIALS_FILE"] = str(tmp_path / "missing")
    env["HOME"] = str(tmp_path)
    res = subprocess.run([str(coffer_bin()), "admin", "--endpoint-url", srv.https, "--ca-bundle", srv.ca,
                          "user", "list"], env=env, capture_output=True, text=True, timeout=60)
    assert res.returncode != 0 and "no root credentials" in res.stderr, res.stderr


def test_global_options_after_the_subcommand(admin_server):
    """`--json`, `--endpoint-url` and `--data-dir` work after the subcommand too (as the README shows)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COFFER_", "AWS_"))}
    env.update({"COFFER_ROOT_ACCESS_KEY": admin_server.access_key,
                "COFFER_ROOT_SECRET_KEY": admin_server.secret_key, "HOME": str(admin_server.base)})
    res = subprocess.run([str(coffer_bin()), "admin", "user", "list", "--json", "--endpoint-url", admin_server.https,
                          "--data-dir", str(admin_server.data_dir)],
                         env=env, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert res.returncode == 0, res.stderr
    assert any(u["user"] == "root" for u in json.loads(res.stdout)["users"]), res.stdout


def test_key_create_hint_carries_the_ca_bundle(admin_server):
    admin(admin_server, "user", "create", "hinted")
    _, text, _ = admin(admin_server, "key", "create", "hinted", json_out=False)
    assert f"--ca-bundle {admin_server.data_dir / 'tls' / 'ca.pem'}" in text, text


def test_unknown_ca_says_how_to_fix_it(admin_server, tmp_path):
    other_ca = tmp_path / "other.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", str(tmp_path / "k.pem"), "-out", str(other_ca), "-subj", "/CN=other", "-days", "1"],
                   check=True, capture_output=True, timeout=60)
    rc, _, err = admin(admin_server, "--ca-bundle", str(other_ca), "user", "list", check=False)
    assert rc != 0 and "--ca-bundle" in err and "--data-dir" in err, err
