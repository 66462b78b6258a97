"""CORS: PutBucketCors/GetBucketCors/DeleteBucketCors through boto3 and the aws CLI, the unsigned OPTIONS preflight,
CORS headers on actual requests (errors included), and `${filename}` in browser POST forms.

What S3 answers is taken from its recorded behaviour: a preflight without Origin is 400 BadRequest; to a bucket that
does not exist, 403 AccessForbidden "CORSResponse: Bucket not found"; to one without rules, 403 "CORS is not enabled
for this bucket."; when no rule matches, 403 "This CORS request is not allowed..."; a matching rule answers 200 with
the rule's methods, the requested headers (lower case), and the origin echoed (or `*` for a `*` rule).
"""
import json
import secrets

import pytest
import requests

from conftest import assert_client_error, assert_s3_error, s3_error, unique_bucket

USERS = {
    "owner": ("AKCORSOWNER" + secrets.token_hex(5).upper(), secrets.token_urlsafe(30)[:40]),
    "other": ("AKCORSOTHER" + secrets.token_hex(5).upper(), secrets.token_urlsafe(30)[:40]),
}
APP = "https://app.example.com"
VARY = "Origin, Access-Control-Request-Headers, Access-Control-Request-Method"
RULES = [
    {"ID": "uploads", "AllowedOrigins": [APP, "https://*.example.org"], "AllowedMethods": ["PUT", "POST"],
     "AllowedHeaders": ["x-amz-*", "Content-Type"], "ExposeHeaders": ["ETag", "x-amz-request-id"],
     "MaxAgeSeconds": 600},
    {"AllowedOrigins": ["*"], "AllowedMethods": ["GET", "HEAD"]},
]


@pytest.fixture(scope="module")
def srv(module_servers):
    config = "".join(f'[[users]]\nname = "{n}"\naccess_key = "{a}"\nsecret_key = "{s}"\n\n'
                     for n, (a, s) in USERS.items())
    return module_servers(config=config, name="cors")


@pytest.fixture
def owner(srv):
    return srv.client(*USERS["owner"])


@pytest.fixture
def cors_bucket(owner):
    name = unique_bucket("cors")
    owner.create_bucket(Bucket=name)
    owner.put_bucket_cors(Bucket=name, CORSConfiguration={"CORSRules": RULES})
    return name


def preflight(srv, bucket, key=None, origin=APP, method="PUT", headers=None) -> requests.Response:
    h = {}
    if origin is not None:
        h["Origin"] = origin
    if method is not None:
        h["Access-Control-Request-Method"] = method
    if headers is not None:
        h["Access-Control-Request-Headers"] = headers
    return srv.request("OPTIONS", bucket, key, headers=h, sign=False)


def cors_headers(resp: requests.Response) -> dict:
    return {k.lower(): v for k, v in resp.headers.items() if k.lower().startswith("access-control-")
            or k.lower() == "vary"}


def test_put_get_delete_with_boto3(srv, owner):
    bucket = unique_bucket("cors-boto")
    owner.create_bucket(Bucket=bucket)
    e = assert_client_error(owner.get_bucket_cors, 404, "NoSuchCORSConfiguration", Bucket=bucket)
    assert e.response["Error"]["Message"] == "The CORS configuration does not exist"
    owner.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": RULES})
    assert owner.get_bucket_cors(Bucket=bucket)["CORSRules"] == RULES
    # A second put replaces the whole configuration.
    owner.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": RULES[1:]})
    assert owner.get_bucket_cors(Bucket=bucket)["CORSRules"] == RULES[1:]
    # The rules outlive a restart (they are part of the bucket's stored record).
    srv.restart()
    owner = srv.client(*USERS["owner"])
    assert owner.get_bucket_cors(Bucket=bucket)["CORSRules"] == RULES[1:]
    assert owner.delete_bucket_cors(Bucket=bucket)["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert_client_error(owner.get_bucket_cors, 404, "NoSuchCORSConfiguration", Bucket=bucket)
    assert owner.delete_bucket_cors(Bucket=bucket)["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert_client_error(owner.get_bucket_cors, 404, "NoSuchBucket", Bucket=unique_bucket("nope"))
    assert_client_error(owner.put_bucket_cors, 404, "NoSuchBucket", Bucket=unique_bucket("nope"),
                        CORSConfiguration={"CORSRules": RULES})


def test_put_and_get_with_the_aws_cli(srv, owner, tmp_path):
    bucket = unique_bucket("cors-cli")
    owner.create_bucket(Bucket=bucket)
    doc = tmp_path / "cors.json"
    doc.write_text(json.dumps({"CORSRules": RULES}))
    creds = dict(access_key=USERS["owner"][0], secret_key=USERS["owner"][1])
    srv.aws("s3api", "put-bucket-cors", "--bucket", bucket, "--cors-configuration", f"file://{doc}",
            workdir=tmp_path, **creds)
    out = srv.aws("s3api", "get-bucket-cors", "--bucket", bucket, workdir=tmp_path, **creds)
    assert json.loads(out.stdout)["CORSRules"] == RULES
    srv.aws("s3api", "delete-bucket-cors", "--bucket", bucket, workdir=tmp_path, **creds)
    res = srv.aws("s3api", "get-bucket-cors", "--bucket", bucket, workdir=tmp_path, check=False, **creds)
    assert res.returncode != 0 and "NoSuchCORSConfiguration" in res.stderr, res.stderr


def rule_xml(origins=("*",), methods=("GET",), headers=(), expose=(), extra="") -> str:
    parts = [f"<AllowedOrigin>{o}</AllowedOrigin>" for o in origins]
    parts += [f"<AllowedMethod>{m}</AllowedMethod>" for m in methods]
    parts += [f"<AllowedHeader>{h}</AllowedHeader>" for h in headers]
    parts += [f"<ExposeHeader>{h}</ExposeHeader>" for h in expose]
    return "<CORSRule>" + "".join(parts) + extra + "</CORSRule>"


def config_xml(*rules) -> bytes:
    return ('<CORSConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">' + "".join(rules)
            + "</CORSConfiguration>").encode()


@pytest.mark.parametrize("body, code, message", [
    (config_xml(rule_xml(methods=("GET", "MYMETHOD"))), "InvalidRequest",
     "Found unsupported HTTP method in CORS config. Unsupported method is MYMETHOD"),
    (config_xml(rule_xml(methods=("OPTIONS",))), "InvalidRequest",
     "Found unsupported HTTP method in CORS config. Unsupported method is OPTIONS"),
    (config_xml(rule_xml(origins=("*example*.com",))), "InvalidRequest",
     'AllowedOrigin "*example*.com" can not have more than one wildcard.'),
    (config_xml(rule_xml(headers=("x-*-*",))), "InvalidRequest",
     'AllowedHeader "x-*-*" can not have more than one wildcard.'),
    (config_xml(rule_xml(expose=("*",))), "InvalidRequest", None),
    (config_xml(rule_xml(extra="<ID>" + "i" * 256 + "</ID>")), "InvalidArgument", None),
    (config_xml(), "MalformedXML", None),
    (config_xml(*[rule_xml()] * 101), "MalformedXML", None),
    (config_xml("<CORSRule><AllowedMethod>GET</AllowedMethod></CORSRule>"), "MalformedXML", None),
    (config_xml("<CORSRule><AllowedOrigin>*</AllowedOrigin></CORSRule>"), "MalformedXML", None),
    (b"<CORSConfiguration><CORSRule>", "MalformedXML", None),
])
def test_invalid_configurations_are_refused_as_s3_does(srv, owner, body, code, message):
    bucket = unique_bucket("cors-bad")
    owner.create_bucket(Bucket=bucket)
    r = srv.request("PUT", bucket, query={"cors": None}, body=body, creds=USERS["owner"])
    err = assert_s3_error(r, 400, code)
    if message is not None:
        assert err["Message"] == message
    assert_client_error(owner.get_bucket_cors, 404, "NoSuchCORSConfiguration", Bucket=bucket)
    # 100 rules is the limit, not beyond it.
    ok = srv.request("PUT", bucket, query={"cors": None}, body=config_xml(*[rule_xml()] * 100),
                     creds=USERS["owner"])
    assert ok.status_code == 200, ok.text
    assert len(owner.get_bucket_cors(Bucket=bucket)["CORSRules"]) == 100


def test_only_the_owner_or_a_policy_may_read_or_change_the_rules(srv, owner, cors_bucket):
    other = srv.client(*USERS["other"])
    assert_client_error(other.get_bucket_cors, 403, "AccessDenied", Bucket=cors_bucket)
    assert_client_error(other.put_bucket_cors, 403, "AccessDenied", Bucket=cors_bucket,
                        CORSConfiguration={"CORSRules": RULES[1:]})
    assert_client_error(other.delete_bucket_cors, 403, "AccessDenied", Bucket=cors_bucket)
    unsigned = srv.request("GET", cors_bucket, query={"cors": None}, sign=False)
    assert_s3_error(unsigned, 403, "AccessDenied")
    policy = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"AWS": ["other"]}, "Action": "s3:GetBucketCORS",
        "Resource": f"arn:aws:s3:::{cors_bucket}"}]}
    owner.put_bucket_policy(Bucket=cors_bucket, Policy=json.dumps(policy))
    assert other.get_bucket_cors(Bucket=cors_bucket)["CORSRules"] == RULES
    assert_client_error(other.put_bucket_cors, 403, "AccessDenied", Bucket=cors_bucket,
                        CORSConfiguration={"CORSRules": RULES[1:]})
    policy["Statement"][0]["Action"] = ["s3:GetBucketCORS", "s3:PutBucketCORS"]
    owner.put_bucket_policy(Bucket=cors_bucket, Policy=json.dumps(policy))
    other.put_bucket_cors(Bucket=cors_bucket, CORSConfiguration={"CORSRules": RULES[1:]})
    assert owner.get_bucket_cors(Bucket=cors_bucket)["CORSRules"] == RULES[1:]
    # DeleteBucketCors needs s3:PutBucketCORS too (there is no delete action).
    assert other.delete_bucket_cors(Bucket=cors_bucket)["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert_client_error(owner.get_bucket_cors, 404, "NoSuchCORSConfiguration", Bucket=cors_bucket)


def test_preflight_that_matches(srv, cors_bucket):
    r = preflight(srv, cors_bucket, "dir/photo.jpg", method="PUT",
                  headers="content-type,X-Amz-Server-Side-Encryption-Customer-Key")
    assert r.status_code == 200, r.text
    assert r.content == b""
    assert cors_headers(r) == {
        "access-control-allow-origin": APP,
        "access-control-allow-credentials": "true",
        "access-control-allow-methods": "PUT, POST",
        "access-control-allow-headers": "content-type, x-amz-server-side-encryption-customer-key",
        "access-control-expose-headers": "ETag, x-amz-request-id",
        "access-control-max-age": "600",
        "vary": VARY,
    }
    # The wildcard origin of the first rule; on the bucket URL; no headers asked for.
    r = preflight(srv, cors_bucket, origin="https://sub.example.org", method="POST")
    assert r.status_code == 200, r.text
    assert r.headers["Access-Control-Allow-Origin"] == "https://sub.example.org"
    assert "Access-Control-Allow-Headers" not in r.headers
    # A `*` rule answers `*`, without credentials.
    r = preflight(srv, cors_bucket, "k", origin="http://anywhere.test:8080", method="GET")
    assert r.status_code == 200, r.text
    assert cors_headers(r) == {"access-control-allow-origin": "*", "access-control-allow-methods": "GET, HEAD",
                               "vary": VARY}


@pytest.mark.parametrize("case", ["origin", "method", "header", "scheme", "trailing-slash"])
def test_preflight_that_matches_no_rule(srv, cors_bucket, case):
    kwargs = {
        "origin": dict(origin="https://app.example.net", method="PUT"),
        "method": dict(method="DELETE"),
        "header": dict(method="PUT", headers="content-type,x-custom"),
        "scheme": dict(origin="http://app.example.com", method="PUT"),
        "trailing-slash": dict(origin=APP + "/", method="PUT"),
    }[case]
    r = preflight(srv, cors_bucket, "obj", **kwargs)
    err = assert_s3_error(r, 403, "AccessForbidden")
    assert err["Message"].startswith("CORSResponse: This CORS request is not allowed.")
    assert err["Method"] == kwargs["method"]
    assert err["ResourceType"] == "OBJECT"
    assert "Access-Control-Allow-Origin" not in r.headers


def test_preflight_refusals(srv, owner, cors_bucket):
    for kwargs in (dict(origin=None, method=None), dict(origin=None, method="GET")):
        err = assert_s3_error(preflight(srv, cors_bucket, "k", **kwargs), 400, "BadRequest")
        assert err["Message"] == "Insufficient information. Origin request header needed."
    assert_s3_error(preflight(srv, cors_bucket, "k", method=None), 400, "BadRequest")
    # A bucket without rules, and one that does not exist (even without an Origin the answer is 400 first).
    plain = unique_bucket("cors-none")
    owner.create_bucket(Bucket=plain)
    err = assert_s3_error(preflight(srv, plain, "k"), 403, "AccessForbidden")
    assert err["Message"] == "CORSResponse: CORS is not enabled for this bucket."
    assert (err["Method"], err["ResourceType"]) == ("PUT", "BUCKET")
    err = assert_s3_error(preflight(srv, plain, method=None), 403, "AccessForbidden")
    assert err["Method"] == "OPTIONS"
    err = assert_s3_error(preflight(srv, unique_bucket("cors-missing"), "k"), 403, "AccessForbidden")
    assert err["Message"] == "CORSResponse: Bucket not found"
    assert_s3_error(preflight(srv, unique_bucket("cors-missing"), origin=None), 400, "BadRequest")
    # A signed OPTIONS is answered the same way: the preflight never looks at credentials.
    r = srv.request("OPTIONS", cors_bucket, "k", headers={"Origin": APP, "Access-Control-Request-Method": "PUT"})
    assert r.status_code == 200 and r.headers["Access-Control-Allow-Origin"] == APP


def test_actual_requests_carry_cors_headers_errors_included(srv, owner, cors_bucket):
    owner.put_object(Bucket=cors_bucket, Key="doc.txt", Body=b"hello cors")
    # GET is allowed to every origin by the second rule.
    r = srv.request("GET", cors_bucket, "doc.txt", headers={"Origin": "https://reader.test"})
    assert r.status_code == 200 and r.content == b"hello cors"
    assert cors_headers(r) == {"access-control-allow-origin": "*", "access-control-allow-methods": "GET, HEAD",
                               "vary": VARY}
    # An error answer carries them too, so a page can read the S3 error.
    r = srv.request("GET", cors_bucket, "missing.txt", headers={"Origin": "https://reader.test"})
    assert_s3_error(r, 404, "NoSuchKey")
    assert r.headers["Access-Control-Allow-Origin"] == "*"
    # An anonymous PUT from the app's origin is refused, and the browser may read why.
    r = srv.request("PUT", cors_bucket, "up.txt", headers={"Origin": APP}, body=b"x", sign=False)
    assert_s3_error(r, 403, "AccessDenied")
    assert r.headers["Access-Control-Allow-Origin"] == APP
    assert r.headers["Access-Control-Allow-Credentials"] == "true"
    assert r.headers["Access-Control-Expose-Headers"] == "ETag, x-amz-request-id"
    # A signed PUT from there succeeds with the headers.
    r = srv.request("PUT", cors_bucket, "up.txt", headers={"Origin": APP}, body=b"x", creds=USERS["owner"])
    assert r.status_code == 200 and r.headers["Access-Control-Allow-Origin"] == APP
    # No matching rule (DELETE is allowed to nobody), no Origin, or no rules at all: no CORS headers.
    r = srv.request("DELETE", cors_bucket, "up.txt", headers={"Origin": APP}, creds=USERS["owner"])
    assert r.status_code == 204 and cors_headers(r) == {}
    r = srv.request("GET", cors_bucket, "doc.txt")
    assert r.status_code == 200 and cors_headers(r) == {}
    owner.delete_bucket_cors(Bucket=cors_bucket)
    r = srv.request("GET", cors_bucket, "doc.txt", headers={"Origin": "https://reader.test"})
    assert r.status_code == 200 and cors_headers(r) == {}


def test_failed_browser_post_shows_its_error_to_the_page(srv, owner, cors_bucket):
    p = owner.generate_presigned_post(cors_bucket, "in/${filename}", ExpiresIn=300,
                                      Conditions=[["content-length-range", 1, 4]])
    r = requests.post(p["url"], data=p["fields"], files={"file": ("big.bin", b"too long for the policy")},
                      headers={"Origin": APP}, verify=srv.ca)
    assert r.status_code in (400, 403), r.text
    assert s3_error(r).get("Code"), r.text
    assert r.headers["Access-Control-Allow-Origin"] == APP


def test_filename_variable_in_post_form_fields(srv, owner):
    bucket = unique_bucket("filename")
    owner.create_bucket(Bucket=bucket)
    p = owner.generate_presigned_post(bucket, "uploads/${filename}", ExpiresIn=300,
                                      Fields={"Content-Disposition": 'attachment; filename="${filename}"',
                                              "success_action_status": "201"},
                                      Conditions=[["starts-with", "$Content-Disposition", "attachment; "],
                                                  {"success_action_status": "201"}])
    # Browsers on Windows may send a path: only what follows the last slash or backslash counts.
    r = requests.post(p["url"], data=p["fields"], files={"file": ("C:\\Users\\me\\report 2024.pdf", b"%PDF-1.7")},
                      verify=srv.ca)
    assert r.status_code == 201, r.text
    assert "<Key>uploads/report 2024.pdf</Key>" in r.text, r.text
    got = owner.get_object(Bucket=bucket, Key="uploads/report 2024.pdf")
    assert got["Body"].read() == b"%PDF-1.7"
    assert got["ContentDisposition"] == 'attachment; filename="report 2024.pdf"'
    assert [o["Key"] for o in owner.list_objects_v2(Bucket=bucket)["Contents"]] == ["uploads/report 2024.pdf"]
    # Conditions are checked on the replaced values (which is why botocore turns a key ending in ${filename}
    # into a starts-with condition): an exact condition on the unreplaced value fails.
    p = owner.generate_presigned_post(bucket, "exact/${filename}", ExpiresIn=300,
                                      Fields={"x-amz-meta-name": "${filename}"},
                                      Conditions=[{"x-amz-meta-name": "${filename}"}])
    r = requests.post(p["url"], data=p["fields"], files={"file": ("a.txt", b"x")}, verify=srv.ca)
    assert_s3_error(r, 403, "AccessDenied")
    p = owner.generate_presigned_post(bucket, "other/${filename}", ExpiresIn=300)
    r = requests.post(p["url"], data=p["fields"], files={"file": ("../../etc/passwd", b"x")}, verify=srv.ca)
    assert r.status_code == 204, r.text
    got = owner.get_object(Bucket=bucket, Key="other/passwd")
    assert got["Body"].read() == b"x"
    # The 204 has no body: the ETag comes as a header, as on S3.
    assert r.headers["ETag"] == got["ETag"]
