"""Shared fixtures for Coffer's end-to-end suite.

Every test talks to a real `coffer` process started on ephemeral loopback ports in its own temp data dir, through real
clients: the `aws` CLI (a subprocess from the venv) and boto3, plus raw SigV4-signed requests (botocore's signer +
requests) where a test must send what the SDKs refuse to send. Servers are module-scoped where a module can share one
(`server`) and function-scoped where a test needs special flags (`start_server(...)`).

This machine exports AWS_CA_BUNDLE (the system bundle), so every client here is given Coffer's own CA explicitly:
boto3 and requests get `verify=<ca.pem>`, the CLI gets AWS_CA_BUNDLE=<ca.pem> in its env (and `--ca-bundle`).
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import hashlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import quote

import boto3
import botocore.auth
import botocore.config
import pytest
import requests
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

REPO = Path(__file__).resolve().parents[2]
READY_TIMEOUT = float(os.environ.get("COFFER_READY_TIMEOUT", "30"))
SSEC_ALGO = "x-amz-server-side-encryption-customer-algorithm"
SSEC_KEY = "x-amz-server-side-encryption-customer-key"
SSEC_MD5 = "x-amz-server-side-encryption-customer-key-MD5"

# Keep the test process away from any user-level AWS configuration: the SDK must see only what each test passes.
_EMPTY_AWS_CONFIG = Path(os.environ.get("TMPDIR", "/tmp")) / f"coffer-e2e-empty-aws-config-{os.getpid()}"
_EMPTY_AWS_CONFIG.write_text("")
os.environ["AWS_CONFIG_FILE"] = str(_EMPTY_AWS_CONFIG)
os.environ["AWS_SHARED_CREDENTIALS_FILE"] = str(_EMPTY_AWS_CONFIG)
for _var in list(os.environ):
    if _var in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                "AWS_SESSION_TOKEN", "AWS_REQUEST_CHECKSUM_CALCULATION", "AWS_RESPONSE_CHECKSUM_VALIDATION") \
            or _var.startswith("AWS_ENDPOINT_URL"):
        del os.environ[_var]


# ----------------------------------------------------------------------------------------------------------------
# small helpers
# ----------------------------------------------------------------------------------------------------------------

def coffer_bin() -> Path:
    return Path(os.environ.get("COFFER_BIN") or REPO / "target" / "debug" / "coffer")


def aws_bin() -> str:
    """The venv's `aws` (next to the running python) first, then PATH."""
    cand = Path(sys.executable).parent / "aws"
    if cand.exists():
        return str(cand)
    found = shutil.which("aws")
    if not found:
        pytest.fail("the aws CLI is not installed (scripts/test.sh installs it into .venv/)")
    return found


def unique_bucket(prefix: str = "b") -> str:
    """A valid, unique bucket name (lowercase, 3-63 chars)."""
    prefix = "".join(c for c in prefix.lower() if c.isalnum() or c == "-").strip("-")[:30] or "b"
    return f"{prefix}-{uuid.uuid4().hex[:16]}"


def md5_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()


def ssec_headers(key: bytes, md5_of: bytes | None = None, algorithm: str = "AES256") -> dict:
    """The three SSE-C headers for raw requests (md5_of lets a test send the MD5 of some other bytes)."""
    return {
        SSEC_ALGO: algorithm,
        SSEC_KEY: base64.b64encode(key).decode(),
        SSEC_MD5: md5_b64(key if md5_of is None else md5_of),
    }


def ssec_params(key: bytes) -> dict:
    """boto3 parameters for SSE-C (botocore base64-encodes the key and adds the MD5)."""
    return {"SSECustomerAlgorithm": "AES256", "SSECustomerKey": key}


def strip_ns(tag: str) -> str:
    return tag.split("}", 1)[1] if tag.startswith("{") else tag


def xml_root(content: bytes) -> ET.Element:
    root = ET.fromstring(content)
    for el in root.iter():
        el.tag = strip_ns(el.tag)
    return root


def s3_error(resp: requests.Response) -> dict:
    """Fields of an S3 error body (<Error><Code>..</Code>...</Error>) as a dict; {} if the body is not XML."""
    try:
        root = xml_root(resp.content)
    except ET.ParseError:
        return {}
    if root.tag != "Error":
        return {}
    return {child.tag: (child.text or "") for child in root}


def describe(resp: requests.Response) -> str:
    body = resp.content[:600]
    return (f"{resp.request.method} {resp.url} -> {resp.status_code}\n"
            f"headers: {dict(resp.headers)}\nbody: {body!r}")


def assert_s3_error(resp: requests.Response, status: int, code: str | None = None) -> dict:
    """Exact status and, for non-HEAD requests, the exact S3 error Code; HEAD errors must have no body."""
    assert resp.status_code == status, f"expected {status} {code or ''}\n{describe(resp)}"
    if resp.request.method == "HEAD":
        assert resp.content == b"", f"HEAD error carried a body\n{describe(resp)}"
        return {}
    err = s3_error(resp)
    if code is not None:
        assert err.get("Code") == code, f"expected Code {code}\n{describe(resp)}"
    return err


def client_error(fn, *args, **kwargs) -> ClientError:
    try:
        fn(*args, **kwargs)
    except ClientError as e:
        return e
    raise AssertionError(f"{getattr(fn, '__name__', fn)} succeeded, an error was expected")


def assert_client_error(fn, status: int, code: str | None, *args, **kwargs) -> ClientError:
    e = client_error(fn, *args, **kwargs)
    got_status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    got_code = e.response.get("Error", {}).get("Code")
    assert got_status == status, f"expected {status} {code}, got {got_status} {got_code}: {e}"
    if code is not None:
        assert got_code == code, f"expected {status} {code}, got {got_status} {got_code}: {e}"
    return e


def tree_files(path: Path) -> list[Path]:
    """Regular files under path, at any depth ([] when path does not exist)."""
    if not path.exists():
        return []
    return sorted(p for p in path.rglob("*") if p.is_file())


class _RawS3Auth(botocore.auth.S3SigV4Auth):
    """botocore's S3 SigV4 signer with an explicit payload hash and an optional fake clock."""

    def __init__(self, credentials, region, payload_hash, now=None):
        super().__init__(credentials, "s3", region)
        self._payload_hash = payload_hash
        self._now = now

    def payload(self, request):
        return self._payload_hash

    def add_auth(self, request):
        if self._now is None:
            return super().add_auth(request)
        real = botocore.auth.get_current_datetime
        botocore.auth.get_current_datetime = lambda *a, **k: self._now
        try:
            return super().add_auth(request)
        finally:
            botocore.auth.get_current_datetime = real


def s3_path(bucket: str | None = None, key: str | None = None) -> str:
    path = "/"
    if bucket:
        path += quote(bucket, safe="")
        if key is not None:
            path += "/" + quote(key, safe="/~")
    return path


def s3_query(query) -> str:
    if not query:
        return ""
    items = query.items() if isinstance(query, dict) else query
    parts = []
    for k, v in items:
        if v is None:
            parts.append(quote(k, safe="-_.~"))
        else:
            parts.append(f"{quote(k, safe='-_.~')}={quote(str(v), safe='-_.~')}")
    return "?" + "&".join(parts)


# ----------------------------------------------------------------------------------------------------------------
# the server
# ----------------------------------------------------------------------------------------------------------------

class CofferServer:
    """One `coffer server` process on ephemeral loopback ports with its own data dir."""

    def __init__(self, base: Path, args=(), env=None, root_creds=True, config: str | None = None,
                 https=True, http=True, ca_override: str | None = None):
        self.base = Path(base)
        self.data_dir = self.base / "data"
        self.log_dir = self.base / "logs"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.ready_file = self.data_dir / "ready.json"
        self.extra_args = list(args)
        self.extra_env = dict(env or {})
        self.https_on, self.http_on = https, http
        self.ca_override = ca_override
        self.config_path = None
        if config is not None:
            self.config_path = self.base / "coffer.toml"
            self.config_path.write_text(config)
        if root_creds is True:
            self.access_key = "AK" + secrets.token_hex(9).upper()
            self.secret_key = secrets.token_urlsafe(30)[:40]
        elif root_creds:
            self.access_key, self.secret_key = root_creds
        else:
            self.access_key = self.secret_key = None  # the server generates them
        self.generate_creds = not root_creds
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        self.ready: dict = {}

    # -- process control ------------------------------------------------------------------------------------------

    def command(self) -> list[str]:
        binary = coffer_bin()
        cmd = [str(binary), "server", "--data-dir", str(self.data_dir),
               "--https-listen", "127.0.0.1:0" if self.https_on else "off",
               "--http-listen", "127.0.0.1:0" if self.http_on else "off",
               "--ready-file", str(self.ready_file)]
        if self.config_path is not None:
            cmd += ["--config", str(self.config_path)]
        return cmd + self.extra_args

    def env(self) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith("COFFER_")}
        env.setdefault("COFFER_LOG", "info")
        if not self.generate_creds:
            env["COFFER_ROOT_ACCESS_KEY"] = self.access_key
            env["COFFER_ROOT_SECRET_KEY"] = self.secret_key
        env.update(self.extra_env)
        return env

    def start(self) -> "CofferServer":
        binary = coffer_bin()
        if not binary.exists():
            pytest.fail(f"coffer binary not found at {binary} (build it with `cargo build` or set COFFER_BIN)")
        with contextlib.suppress(FileNotFoundError):
            self.ready_file.unlink()
        self.starts += 1
        self.stdout_path = self.log_dir / f"stdout.{self.starts}.log"
        self.stderr_path = self.log_dir / f"stderr.{self.starts}.log"
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                         env=self.env(), cwd=self.base, start_new_session=True)
        self._wait_ready()
        if self.generate_creds and self.secret_key is None:
            # Generated credentials are printed once (the data dir keeps the secret sealed).
            self.access_key, self.secret_key = self.printed_credentials()
        return self

    def printed_credentials(self) -> tuple[str, str]:
        """The access key and secret key the first start printed."""
        fields = {}
        for line in self.stdout_text(1).splitlines():
            name, _, rest = line.strip().partition(" : ")
            if name.strip() in ("Access key", "Secret key") and rest:
                fields[name.strip()] = rest.split()[0]
        return fields["Access key"], fields["Secret key"]

    def _wait_ready(self):
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"coffer exited with status {self.proc.returncode} before it was ready\n"
                                   f"command: {' '.join(self.command())}\n{self.log_tail()}")
            if self.ready_file.exists():
                try:
                    self.ready = json.loads(self.ready_file.read_text())
                except (json.JSONDecodeError, OSError):
                    pass  # written atomically, but be tolerant of a reader racing a non-atomic writer
                else:
                    wanted = (["https"] if self.https_on else []) + (["http"] if self.http_on else [])
                    if all(self.ready.get(k) for k in wanted):
                        return
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"coffer did not write {self.ready_file} within {READY_TIMEOUT}s\n{self.log_tail()}")

    def stop(self, timeout: float = 10.0):
        """SIGTERM, then SIGKILL if it does not exit in time."""
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self):
        """kill -9 (the crash test uses this)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def restart(self) -> "CofferServer":
        self.stop()
        return self.start()

    # -- what it wrote ---------------------------------------------------------------------------------------------

    @property
    def https(self) -> str:
        return self.ready["https"]

    @property
    def http(self) -> str:
        return self.ready["http"]

    @property
    def ca(self) -> str:
        """Coffer's CA bundle, as the ready file names it (or the bundle a test gave with --tls-cert)."""
        return self.ca_override or self.ready["ca_bundle"]

    @property
    def https_port(self) -> int:
        return int(self.https.rsplit(":", 1)[1])

    def read_credentials_file(self) -> dict:
        import tomllib
        return tomllib.loads((self.data_dir / "credentials.toml").read_text())

    def stdout_text(self, start: int | None = None) -> str:
        paths = [self.log_dir / f"stdout.{start}.log"] if start else sorted(self.log_dir.glob("stdout.*.log"))
        return "".join(p.read_text(errors="replace") for p in paths if p.exists())

    def stderr_text(self, start: int | None = None) -> str:
        paths = [self.log_dir / f"stderr.{start}.log"] if start else sorted(self.log_dir.glob("stderr.*.log"))
        return "".join(p.read_text(errors="replace") for p in paths if p.exists())

    def log_tail(self, n: int = 60) -> str:
        out = "\n".join(self.stdout_text().splitlines()[-n:])
        err = "\n".join(self.stderr_text().splitlines()[-n:])
        return f"--- coffer stdout (tail) ---\n{out}\n--- coffer stderr (tail) ---\n{err}"

    # -- clients ---------------------------------------------------------------------------------------------------

    def client(self, access_key=None, secret_key=None, endpoint=None, region="us-east-1", addressing_style="path",
               **config_kwargs):
        cfg = dict(signature_version="s3v4", s3={"addressing_style": addressing_style},
                   retries={"max_attempts": 1, "mode": "standard"}, connect_timeout=10, read_timeout=300)
        cfg.update(config_kwargs)
        return boto3.session.Session().client(
            "s3", endpoint_url=endpoint or self.https, region_name=region,
            aws_access_key_id=access_key or self.access_key, aws_secret_access_key=secret_key or self.secret_key,
            verify=self.ca, config=botocore.config.Config(**cfg))

    def url(self, bucket=None, key=None, query=None, scheme="https") -> str:
        base = self.https if scheme == "https" else self.http
        return base + s3_path(bucket, key) + s3_query(query)

    def request(self, method, bucket=None, key=None, query=None, headers=None, body=b"", scheme="https",
                sign=True, creds=None, region="us-east-1", payload_hash=None, now=None, url=None,
                timeout=120, stream=False) -> requests.Response:
        """A raw request, SigV4-signed by botocore (unless sign=False); nothing is validated client-side.

        payload_hash: None -> hex SHA-256 of body (a signed single-chunk payload); or any literal such as
        'UNSIGNED-PAYLOAD' / 'STREAMING-UNSIGNED-PAYLOAD-TRAILER'. now: a naive UTC datetime to sign with.
        """
        url = url or self.url(bucket, key, query, scheme)
        headers = dict(headers or {})
        if sign:
            headers = self.sign(method, url, headers, body, creds, region, payload_hash, now)
        verify = self.ca if url.startswith("https") else True
        return requests.request(method, url, headers=headers, data=body, verify=verify, timeout=timeout,
                                allow_redirects=False, stream=stream)

    def sign(self, method, url, headers=None, body=b"", creds=None, region="us-east-1", payload_hash=None,
             now=None) -> dict:
        """SigV4 headers (botocore's signer) for a request; returns the full header dict to send."""
        ak, sk = creds or (self.access_key, self.secret_key)
        if payload_hash is None:
            payload_hash = hashlib.sha256(body if isinstance(body, bytes) else b"").hexdigest()
        req = AWSRequest(method=method, url=url, headers=dict(headers or {}), data=body)
        _RawS3Auth(Credentials(ak, sk), region, payload_hash, now).add_auth(req)
        return dict(req.headers.items())

    def aws_env(self, workdir: Path, access_key=None, secret_key=None, extra=None) -> dict:
        """Environment for the aws CLI: credentials, our CA, and a temp config that keeps 20 MiB files single-PUT."""
        workdir = Path(workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        config = workdir / "aws-config"
        if not config.exists():
            config.write_text("[default]\nregion = us-east-1\ns3 =\n    multipart_threshold = 64MB\n")
        credentials = workdir / "aws-credentials"
        if not credentials.exists():
            credentials.write_text("")
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update({
            "AWS_ACCESS_KEY_ID": access_key or self.access_key,
            "AWS_SECRET_ACCESS_KEY": secret_key or self.secret_key,
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_CONFIG_FILE": str(config),
            "AWS_SHARED_CREDENTIALS_FILE": str(credentials),
            "AWS_CA_BUNDLE": self.ca,
            "AWS_PAGER": "",
            "PATH": f"{Path(aws_bin()).parent}:{os.environ.get('PATH', '')}",
        })
        env.update(extra or {})
        return env

    def aws(self, *args, workdir: Path, check=True, endpoint=None, env_extra=None, access_key=None,
            secret_key=None, timeout=600) -> subprocess.CompletedProcess:
        """Run `aws ARGS --endpoint-url <https> --ca-bundle <ca>`; check=True fails the test on a non-zero exit."""
        cmd = [aws_bin(), *map(str, args), "--endpoint-url", endpoint or self.https, "--ca-bundle", self.ca]
        env = self.aws_env(workdir, access_key, secret_key, env_extra)
        res = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True, timeout=timeout,
                             stdin=subprocess.DEVNULL)
        if check and res.returncode != 0:
            raise AssertionError(f"aws failed ({res.returncode}): {' '.join(cmd)}\nstdout: {res.stdout}\n"
                                 f"stderr: {res.stderr}\n{self.log_tail(30)}")
        return res


class ServerPool:
    def __init__(self, tmp_factory):
        self.tmp_factory = tmp_factory
        self.servers: list[CofferServer] = []

    def __call__(self, *args, name="coffer", **kwargs) -> CofferServer:
        srv = CofferServer(self.tmp_factory.mktemp(name), *args, **kwargs)
        self.servers.append(srv)
        return srv.start()

    def close(self):
        for srv in self.servers:
            with contextlib.suppress(Exception):
                srv.stop(timeout=5)


# ----------------------------------------------------------------------------------------------------------------
# fixtures
# ----------------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def module_servers(tmp_path_factory):
    pool = ServerPool(tmp_path_factory)
    yield pool
    pool.close()


@pytest.fixture
def start_server(tmp_path_factory):
    """Factory: start_server(args=[...], env={...}, config='toml', root_creds=...) -> a started CofferServer."""
    pool = ServerPool(tmp_path_factory)
    yield pool
    pool.close()


@pytest.fixture(scope="module")
def server(module_servers) -> CofferServer:
    """One default server per test module."""
    return module_servers(name="default")


@pytest.fixture(scope="module")
def s3(server):
    """boto3 S3 client (root credentials, HTTPS, path-style) for the module's server."""
    return server.client()


@pytest.fixture
def bucket(server, s3, request):
    name = unique_bucket(request.node.name.replace("_", "-")[:20])
    s3.create_bucket(Bucket=name)
    return name


@pytest.fixture
def ssec_key() -> bytes:
    return secrets.token_bytes(32)


def utcnow_naive() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
