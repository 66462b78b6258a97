"""A real browser (Debian's headless Chromium, driven by selenium) uploads through examples/browser-upload.

The page is served from a loopback port of its own, so every request it makes to Coffer is cross-origin and needs the
bucket's CORS rules: the upload is a SigV4-signed POST form signed in the page with WebCrypto, carrying the SSE-C
fields (the key's MD5 comes from the page's own MD5). The object is then read back with the key by the aws CLI and
compared byte for byte. Chromium trusts Coffer's certificate through its SPKI hash, for this browser only.

Chromium and chromedriver are required: a missing browser fails the test (scripts/test.sh installs them as root).
"""
import base64
import functools
import hashlib
import http.server
import json
import os
import secrets
import shutil
import ssl
import subprocess
import threading
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from conftest import REPO, unique_bucket

CHROMIUM = os.environ.get("COFFER_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("COFFER_CHROMEDRIVER", "/usr/bin/chromedriver")
PAGE_DIR = REPO / "examples" / "browser-upload"


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def page_origin():
    """examples/browser-upload served as `python3 -m http.server` would, on a loopback port."""
    handler = functools.partial(_QuietHandler, directory=str(PAGE_DIR))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def spki_sha256_b64(host: str, port: int) -> str:
    """base64(SHA-256(SubjectPublicKeyInfo)) of the certificate the server presents (what Chromium pins)."""
    pem = ssl.get_server_certificate((host, port))
    pub = subprocess.run(["openssl", "x509", "-pubkey", "-noout"], input=pem.encode(), capture_output=True,
                         check=True).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "der"], input=pub, capture_output=True,
                         check=True).stdout
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


@pytest.fixture(scope="module")
def browser(server, tmp_path_factory):
    for path in (CHROMIUM, CHROMEDRIVER):
        if not (Path(path).exists() or shutil.which(path)):
            pytest.fail(f"{path} is missing: install Chromium with `apt-get install chromium chromium-driver` "
                        "(scripts/test.sh does when run as root)")
    profile = tmp_path_factory.mktemp("chromium-profile")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", f"--user-data-dir={profile}",
                f"--ignore-certificate-errors-spki-list={spki_sha256_b64('127.0.0.1', server.https_port)}"):
        options.add_argument(arg)
    service = Service(executable_path=CHROMEDRIVER, log_output=str(profile / "chromedriver.log"))
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(30)
    driver.set_script_timeout(30)
    yield driver
    driver.quit()


@pytest.fixture
def page(browser, page_origin):
    browser.get(page_origin + "/index.html")
    WebDriverWait(browser, 10).until(lambda d: d.find_element(By.ID, "selftest").text)
    return browser


def cors_bucket(s3, origin: str) -> str:
    name = unique_bucket("browser")
    s3.create_bucket(Bucket=name)
    s3.put_bucket_cors(Bucket=name, CORSConfiguration={"CORSRules": [{
        "AllowedOrigins": [origin], "AllowedMethods": ["POST"], "AllowedHeaders": ["*"],
        "ExposeHeaders": ["ETag"], "MaxAgeSeconds": 60}]})
    return name


def fill(driver, element_id: str, value: str):
    el = driver.find_element(By.ID, element_id)
    el.clear()
    el.send_keys(value)


def upload_and_wait(driver) -> dict:
    driver.find_element(By.ID, "upload").click()
    WebDriverWait(driver, 60).until(
        lambda d: d.find_element(By.ID, "status").text not in ("", "uploading..."))
    return {f: driver.find_element(By.ID, f).text
            for f in ("status", "result-key", "result-etag", "error-code", "error-message")}


def read_back(server, tmp_path: Path, bucket: str, key: str, sse_key: bytes) -> bytes:
    key_file = tmp_path / "sse-c.key"
    key_file.write_bytes(sse_key)
    out = tmp_path / "downloaded.bin"
    server.aws("s3api", "get-object", "--bucket", bucket, "--key", key, "--sse-customer-algorithm", "AES256",
               "--sse-customer-key", f"fileb://{key_file}", str(out), workdir=tmp_path)
    return out.read_bytes()


def test_page_md5_matches_known_vectors_and_hashlib(page):
    assert page.find_element(By.ID, "selftest").text == "MD5 self-test passed"
    cases = [b"", b"a", b"abc", b"message digest"] + [secrets.token_bytes(n) for n in
                                                       (1, 31, 32, 55, 56, 57, 63, 64, 65, 119, 120, 128, 1000)]
    got = page.execute_script(
        "return arguments[0].map(b => CofferUpload.toHex(CofferUpload.md5(CofferUpload.fromBase64(b))));",
        [base64.b64encode(c).decode() for c in cases])
    assert got == [hashlib.md5(c).hexdigest() for c in cases]


def test_signed_sse_c_upload_from_the_browser(server, s3, page, page_origin, tmp_path):
    bucket = cors_bucket(s3, page_origin)
    data = secrets.token_bytes(300_000) + b"end of the picked file"
    picked = tmp_path / "holiday photo.bin"
    picked.write_bytes(data)

    fill(page, "endpoint", server.https)
    fill(page, "bucket", bucket)
    fill(page, "access-key-id", server.access_key)
    fill(page, "secret-access-key", server.secret_key)
    page.find_element(By.ID, "generate-key").click()
    key_b64 = page.find_element(By.ID, "sse-key").get_attribute("value")
    sse_key = base64.b64decode(key_b64, validate=True)
    assert len(sse_key) == 32
    # The download link offers exactly that key, as base64 text.
    link = page.find_element(By.ID, "download-key")
    assert link.is_displayed() and link.get_attribute("download") == "sse-c-key.b64"
    offered = page.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch(document.getElementById('download-key').href).then(r => r.text()).then(done, e => done(String(e)));")
    assert offered == key_b64 + "\n"
    page.find_element(By.ID, "file").send_keys(str(picked))

    result = upload_and_wait(page)
    assert result["status"].startswith("201"), result
    assert result["result-key"] == "uploads/holiday photo.bin", result  # ${filename} replaced by Coffer
    assert result["error-code"] == "" and result["result-etag"], result

    assert read_back(server, tmp_path, bucket, "uploads/holiday photo.bin", sse_key) == data
    head = s3.head_object(Bucket=bucket, Key="uploads/holiday photo.bin", SSECustomerAlgorithm="AES256",
                          SSECustomerKey=sse_key)
    assert head["SSECustomerKeyMD5"] == base64.b64encode(hashlib.md5(sse_key).digest()).decode()
    assert head["ContentLength"] == len(data)
    # Without the key the object cannot be read.
    res = server.aws("s3api", "get-object", "--bucket", bucket, "--key", "uploads/holiday photo.bin",
                     str(tmp_path / "nokey.bin"), workdir=tmp_path, check=False)
    assert res.returncode != 0 and "InvalidRequest" in res.stderr, res.stderr


def test_the_page_shows_s3_errors_and_needs_cors(server, s3, page, page_origin, tmp_path):
    bucket = cors_bucket(s3, page_origin)
    picked = tmp_path / "a.txt"
    picked.write_bytes(b"some text")
    fill(page, "endpoint", server.https)
    fill(page, "bucket", bucket)
    fill(page, "access-key-id", server.access_key)
    fill(page, "secret-access-key", "not-the-secret")
    page.find_element(By.ID, "generate-key").click()
    page.find_element(By.ID, "file").send_keys(str(picked))
    # A wrong secret: Coffer's 403 reaches the page, because error answers carry the CORS headers too.
    result = upload_and_wait(page)
    assert result["status"].startswith("403"), result
    assert result["error-code"] == "SignatureDoesNotMatch", result
    # A key that is not 32 bytes is caught before anything is sent.
    fill(page, "secret-access-key", server.secret_key)
    fill(page, "sse-key", base64.b64encode(b"short").decode())
    result = upload_and_wait(page)
    assert result["status"] == "not sent" and "32 bytes" in result["error-message"], result
    # A bucket without CORS rules: the browser does not let the page read the answer.
    plain = unique_bucket("browser-nocors")
    s3.create_bucket(Bucket=plain)
    fill(page, "bucket", plain)
    page.find_element(By.ID, "generate-key").click()
    result = upload_and_wait(page)
    assert result["status"] == "network error" and result["error-code"] == "NetworkError", result


def test_upload_with_pasted_fields_and_a_pasted_key(server, s3, page, page_origin, tmp_path):
    bucket = cors_bucket(s3, page_origin)
    sse_key = secrets.token_bytes(32)
    key_md5 = base64.b64encode(hashlib.md5(sse_key).digest()).decode()
    post = s3.generate_presigned_post(
        bucket, "pasted/report.txt", ExpiresIn=600,
        Fields={"x-amz-server-side-encryption-customer-algorithm": "AES256",
                "x-amz-server-side-encryption-customer-key-MD5": key_md5},
        Conditions=[{"x-amz-server-side-encryption-customer-algorithm": "AES256"},
                    {"x-amz-server-side-encryption-customer-key-MD5": key_md5},
                    ["starts-with", "$x-amz-server-side-encryption-customer-key", ""]])
    # The page adds the SSE-C fields itself.
    for f in ("x-amz-server-side-encryption-customer-algorithm", "x-amz-server-side-encryption-customer-key-MD5"):
        post["fields"].pop(f)
    picked = tmp_path / "report.txt"
    picked.write_bytes(b"pasted policy, pasted key\n" * 1000)

    page.find_element(By.ID, "mode-paste").click()
    assert not page.find_element(By.ID, "secret-access-key").is_displayed()
    page.execute_script("document.getElementById('premade-fields').value = arguments[0];", json.dumps(post))
    fill(page, "sse-key", base64.b64encode(sse_key).decode())
    page.find_element(By.ID, "file").send_keys(str(picked))
    result = upload_and_wait(page)
    assert result["status"].startswith("204"), result
    assert result["result-key"] == "pasted/report.txt" and result["result-etag"], result
    assert read_back(server, tmp_path, bucket, "pasted/report.txt", sse_key) == picked.read_bytes()
