"""First start and restart: generated root credentials (0600, printed once with ready-to-paste `aws configure set`
lines), a generated local CA that verifies the server (no --no-verify-ssl anywhere), private keys 0600, reuse of
both on the next start, `coffer --help`, `--tls-cert/--tls-key`, and either listener turned off.
"""

import os
import re
import socket
import ssl
import subprocess
from pathlib import Path

import pytest
import requests

from conftest import coffer_bin, describe, ssec_headers, unique_bucket


def mode_of(path: Path) -> int:
    return path.stat().st_mode & 0o777


def tls_handshake(port: int, cafile: str, server_hostname: str):
    ctx = ssl.create_default_context(cafile=cafile)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        with ctx.wrap_socket(sock, server_hostname=server_hostname) as tls:
            return tls.version(), tls.getpeercert()


def test_first_start_generates_credentials_and_restart_reuses_them(start_server):
    srv = start_server(root_creds=None, name="fresh")
    creds_file = srv.data_dir / "credentials.toml"
    assert creds_file.exists(), "no credentials.toml after the first start"
    assert mode_of(creds_file) == 0o600, oct(mode_of(creds_file))
    creds = srv.read_credentials_file()
    ak, sk = srv.access_key, srv.secret_key
    assert creds["access_key"] == ak and "secret_key" not in creds, "the secret key is kept in clear"
    assert sk not in creds_file.read_text() and creds["secret_key_sealed"], "the secret key is not sealed"
    assert len(ak) >= 16 and len(sk) >= 30, "generated credentials look too short"

    out = srv.stdout_text(1)
    assert ak in out, f"the access key is not printed on first start:\n{out}"
    assert re.search(rf"aws configure set aws_access_key_id\s+{re.escape(ak)}", out), out
    assert re.search(rf"aws configure set aws_secret_access_key\s+{re.escape(sk)}", out), out
    assert "--ca-bundle" in out and srv.ca in out, f"no ready-to-paste --ca-bundle line:\n{out}"
    assert "--endpoint-url" in out, f"no ready-to-paste --endpoint-url line:\n{out}"

    # the generated credentials work, through the generated CA
    s3 = srv.client(ak, sk)
    bucket = unique_bucket("fresh")
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="persist", Body=b"still here")

    ca_path, ca_bytes, creds_text = srv.ca, Path(srv.ca).read_bytes(), creds_file.read_text()
    srv.restart()
    assert creds_file.read_text() == creds_text, "credentials were regenerated on restart"
    assert mode_of(creds_file) == 0o600
    assert srv.ca == ca_path and Path(srv.ca).read_bytes() == ca_bytes, "the CA was regenerated on restart"
    s3 = srv.client(ak, sk)
    assert s3.get_object(Bucket=bucket, Key="persist")["Body"].read() == b"still here"
    # "printed once": the secret is not printed again on later starts
    assert sk not in srv.stdout_text(2) + srv.stderr_text(2), "the secret key is printed again on restart"


def test_generated_ca_verifies_server_and_keys_are_private(server):
    tls_dir = server.data_dir / "tls"
    assert Path(server.ca) == (tls_dir / "ca.pem").resolve() or Path(server.ca) == tls_dir / "ca.pem"
    assert Path(server.ca).is_absolute()
    keys = sorted(tls_dir.glob("*key*.pem"))
    assert keys, f"no private key files in {tls_dir}: {os.listdir(tls_dir)}"
    for k in keys:
        assert mode_of(k) == 0o600, f"{k.name} has mode {oct(mode_of(k))}"
    port = server.https_port
    for name in ("localhost", "127.0.0.1"):
        version, cert = tls_handshake(port, server.ca, name)
        assert version in ("TLSv1.2", "TLSv1.3"), version
        sans = {v for _, v in cert.get("subjectAltName", ())}
        assert {"localhost", "127.0.0.1"} <= sans, sans
        assert any(v in ("::1", "0:0:0:0:0:0:0:1") for v in sans), sans
    # it is our CA that makes this work: the system bundle does not trust it
    with pytest.raises(ssl.SSLCertVerificationError):
        tls_handshake(port, ssl.get_default_verify_paths().cafile or "/etc/ssl/certs/ca-certificates.crt",
                      "localhost")
    r = requests.get(server.https + "/", verify=server.ca, timeout=10)
    assert r.status_code == 403, describe(r)  # anonymous, but TLS verified


def test_tls_12_or_newer_only(server):
    """A client that offers only TLS 1.0/1.1 (really offers: SECLEVEL=0) must not get a session."""
    import warnings
    ctx = ssl.create_default_context(cafile=server.ca)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx.minimum_version = ssl.TLSVersion.TLSv1
            ctx.maximum_version = ssl.TLSVersion.TLSv1_1
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    except (ValueError, AttributeError, ssl.SSLError):
        pytest.skip("this Python/OpenSSL cannot offer TLS 1.1")
    with socket.create_connection(("127.0.0.1", server.https_port), timeout=10) as sock:
        try:
            with ctx.wrap_socket(sock, server_hostname="localhost") as tls:
                pytest.fail(f"the server accepted {tls.version()}")
        except (ssl.SSLError, ConnectionResetError) as e:
            if "NO_CIPHERS_AVAILABLE" in str(e) or "NO_PROTOCOLS_AVAILABLE" in str(e):
                pytest.skip(f"the client could not offer TLS 1.1 here: {e}")


def test_help_documents_the_flags():
    res = subprocess.run([str(coffer_bin()), "--help"], capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stderr
    text = res.stdout + res.stderr
    for flag in ("--data-dir", "--https-listen", "--http-listen", "--tls-cert", "--tls-key", "--region",
                 "--domain"):
        assert flag in text, f"`coffer --help` does not mention {flag}:\n{text}"


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def test_own_tls_certificate(start_server, tmp_path):
    d = tmp_path / "pki"
    d.mkdir()
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
            "myca.key", "-out", "myca.pem", "-days", "2", "-subj", "/CN=Coffer test CA", cwd=d)
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "server.key",
            "-out", "server.csr", "-subj", "/CN=localhost", cwd=d)
    (d / "ext.cnf").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
                               "keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "myca.pem", "-CAkey", "myca.key", "-CAcreateserial",
            "-out", "server.pem", "-days", "2", "-extfile", "ext.cnf", cwd=d)
    srv = start_server(args=["--tls-cert", str(d / "server.pem"), "--tls-key", str(d / "server.key")],
                       ca_override=str(d / "myca.pem"), name="owncert")
    version, cert = tls_handshake(srv.https_port, str(d / "myca.pem"), "localhost")
    assert dict(x[0] for x in cert["subject"])["commonName"] == "localhost"
    s3 = srv.client()
    bucket = unique_bucket("owncert")
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="k", Body=b"own cert")
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"own cert"


def test_https_listener_off(start_server, ssec_key):
    srv = start_server(https=False, name="nohttps")
    assert not srv.ready.get("https")
    bucket = unique_bucket("nohttps")
    r = srv.request("PUT", bucket, scheme="http")
    assert r.status_code == 200, describe(r)
    r = srv.request("PUT", bucket, "o", body=b"plain over http", scheme="http")
    assert r.status_code == 200, describe(r)
    r = srv.request("PUT", bucket, "e", body=b"x", headers=ssec_headers(ssec_key), scheme="http")
    assert r.status_code == 400, describe(r)


def test_http_listener_off(start_server):
    srv = start_server(http=False, name="nohttp")
    assert not srv.ready.get("http")
    s3 = srv.client()
    bucket = unique_bucket("nohttp")
    s3.create_bucket(Bucket=bucket)
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


def test_a_start_that_cannot_listen_generates_nothing(tmp_path):
    """A first start that fails (its port taken) must not keep credentials it never showed."""
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    port = taken.getsockname()[1]
    data = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("COFFER_")}
    try:
        res = subprocess.run([str(coffer_bin()), "server", "--data-dir", str(data), "--https-listen",
                              f"127.0.0.1:{port}", "--http-listen", "off"],
                             env=env, capture_output=True, text=True, timeout=60)
    finally:
        taken.close()
    assert res.returncode != 0
    assert f"cannot listen on 127.0.0.1:{port}" in res.stderr and "--https-listen" in res.stderr, res.stderr
    assert not (data / "credentials.toml").exists(), "credentials were generated by a start that failed"
    # the data dir it made is its owner's alone
    assert mode_of(data) == 0o700, f"a new data dir is open to other users: {oct(mode_of(data))}"
