"""coffer-bench (crates/coffer-bench, issue 6) against a real coffer process, and `bench/run.sh --smoke`.

Correctness only, never timing: every op (put, get, range-get, head, list, delete, multipart-put), with and without
`--ssec`, runs a few times over HTTPS and must report zero errors in a JSON report of the documented shape; objects the
tool wrote with SSE-C must read back through boto3 with the same key only; a failing run must exit 1 and name the S3
error code; `bench/run.sh --smoke` must run its tiny matrix with every cell clean.

The binary is `target/debug/coffer-bench` (built by `cargo build --workspace` in scripts/test.sh), or
$COFFER_BENCH_BIN.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import subprocess
from pathlib import Path

import pytest

from conftest import REPO, assert_client_error, coffer_bin, ssec_params, unique_bucket

KiB = 1024
MiB = 1024 * KiB
OPS = ["put", "get", "range-get", "head", "list", "delete", "multipart-put"]
OP_KEYS = {"ops", "bytes", "ops_per_s", "mib_per_s", "latency_ms", "errors", "errors_by_code", "error_samples"}
TOP_KEYS = {"tool", "version", "label", "endpoint", "tls", "region", "bucket", "prefix", "size", "objects",
            "concurrency", "mix", "ssec", "payload", "tagged_bodies", "part_size", "range_size", "warmup_s",
            "duration_s", "ops_limit", "prepare", "elapsed_s", "ops", "total", "client_cpu_s", "server_cpu_s"}


def bench_bin() -> Path:
    path = Path(os.environ.get("COFFER_BENCH_BIN") or coffer_bin().parent / "coffer-bench")
    if not path.exists():
        pytest.fail(f"coffer-bench not found at {path} (cargo build --workspace builds it)")
    return path


def clean_env() -> dict:
    return {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "COFFER_BENCH"))}


def run_bench(server, *args, expect_rc: int | None = 0, endpoint=None, timeout=300) -> dict:
    endpoint = endpoint or server.https
    cmd = [str(bench_bin()), "--endpoint", endpoint, "--access-key", server.access_key,
           "--secret-key", server.secret_key, "--json", "--quiet", *map(str, args)]
    if endpoint.startswith("https"):
        cmd += ["--ca-bundle", server.ca]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=clean_env(),
                         stdin=subprocess.DEVNULL)
    assert expect_rc is None or res.returncode == expect_rc, (f"exit {res.returncode}, expected {expect_rc}: {' '.join(cmd)}\n"
                                         f"stdout: {res.stdout[-3000:]}\nstderr: {res.stderr[-3000:]}\n"
                                         f"{server.log_tail(30)}")
    return json.loads(res.stdout)


def check_shape(report: dict, ops: list[str]):
    assert TOP_KEYS <= report.keys(), f"missing {TOP_KEYS - report.keys()}"
    assert report["tool"] == "coffer-bench"
    assert sorted(report["ops"]) == sorted(ops)
    assert sorted(report["mix"]) == sorted(ops)
    for name, o in report["ops"].items():
        assert OP_KEYS <= o.keys(), f"{name}: missing {OP_KEYS - o.keys()}"
        assert isinstance(o["ops"], int) and isinstance(o["bytes"], int)
        assert o["errors"] == sum(o["errors_by_code"].values())
        if o["ops"]:
            lat = o["latency_ms"]
            assert set(lat) == {"p50", "p90", "p99", "max", "mean"}
            assert 0 <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
    total = report["total"]
    assert total["ops"] == sum(o["ops"] for o in report["ops"].values())
    assert total["bytes"] == sum(o["bytes"] for o in report["ops"].values())
    assert total["errors"] == sum(o["errors"] for o in report["ops"].values())
    assert report["elapsed_s"] > 0


def expected_bytes(op: str, report: dict, n: int) -> int | None:
    size = report["size"]
    return {"put": n * size, "get": n * size, "multipart-put": n * size, "range-get": n * report["range_size"],
            "head": 0, "delete": 0}.get(op)


@pytest.mark.parametrize("ssec", [False, True], ids=["plain", "ssec"])
@pytest.mark.parametrize("op", OPS)
def test_every_op_succeeds(server, op, ssec):
    bucket = unique_bucket(f"bench-{op}")
    # multipart-put: 11 MiB in 5 MiB parts, so an object has three parts, the last one short.
    size, part = ("11MiB", "5MiB") if op == "multipart-put" else ("64KiB", "8MiB")
    n = 3 if op == "multipart-put" else 12
    report = run_bench(server, "--bucket", bucket, "--op", op, "--size", size, "--part-size", part,
                       "--objects", 4, "--ops", n, "--concurrency", 2, *(["--ssec"] if ssec else []))
    check_shape(report, [op])
    o = report["ops"][op]
    assert o["errors"] == 0 and report["total"]["errors"] == 0, o["error_samples"]
    assert o["ops"] == n
    assert report["ssec"] is ssec and report["tls"] is True
    assert report["ops_limit"] == n and report["duration_s"] is None
    want = expected_bytes(op, report, n)
    if want is not None:
        assert o["bytes"] == want
    else:
        assert o["bytes"] > 0  # list: the XML of each page
    reads = op not in ("put", "multipart-put")
    assert (report["prepare"] is not None) is reads
    if reads:
        assert report["prepare"]["objects"] == 4


def test_mix_with_duration_and_warmup(server):
    # No put in this mix: a GET racing an overwrite of its key is test_get_racing_an_overwrite below.
    bucket = unique_bucket("bench-mix")
    report = run_bench(server, "--bucket", bucket, "--op", "get=2,head=1,range-get=1,list=1",
                       "--size", "16KiB", "--objects", 8, "--duration", "1", "--warmup", "0.3",
                       "--concurrency", 3, "--ssec")
    check_shape(report, ["get", "head", "range-get", "list"])
    assert report["total"]["errors"] == 0, {k: o["error_samples"] for k, o in report["ops"].items()}
    assert report["total"]["ops"] > 0
    assert report["duration_s"] == 1.0 and report["warmup_s"] == 0.3 and report["ops_limit"] is None
    assert report["prepare"]["objects"] == 8


def test_get_racing_an_overwrite(server):
    """PUTs and GETs of the same few keys at once: every GET must get the old or the new object, whole."""
    bucket = unique_bucket("bench-race")
    report = run_bench(server, "--bucket", bucket, "--op", "put=1,get=2", "--size", "16KiB", "--objects", 2,
                       "--duration", "3", "--concurrency", 4, "--ssec", expect_rc=None)
    check_shape(report, ["put", "get"])
    assert report["total"]["errors"] == 0, {k: o["error_samples"] for k, o in report["ops"].items()}


def test_ssec_objects_need_the_key(server, s3):
    """The tool really encrypts with the key it is given: boto3 reads the object back with it, and not without."""
    bucket = unique_bucket("bench-key")
    key = secrets.token_bytes(32)
    report = run_bench(server, "--bucket", bucket, "--prefix", "k/", "--op", "put", "--size", "100KiB",
                       "--objects", 1, "--ops", 1, "--ssec", "--ssec-key", base64.b64encode(key).decode())
    assert report["total"]["errors"] == 0
    got = s3.get_object(Bucket=bucket, Key="k/00000000", **ssec_params(key))["Body"].read()
    assert len(got) == 100 * KiB
    assert_client_error(s3.get_object, 400, None, Bucket=bucket, Key="k/00000000")
    # Tagged bodies: two PUTs of the same key send different bytes.
    run_bench(server, "--bucket", bucket, "--prefix", "k/", "--op", "put", "--size", "100KiB",
              "--objects", 1, "--ops", 1, "--ssec", "--ssec-key", base64.b64encode(key).decode())
    again = s3.get_object(Bucket=bucket, Key="k/00000000", **ssec_params(key))["Body"].read()
    assert len(again) == len(got) and again != got


def test_failures_exit_1_with_the_s3_code(server):
    """SSE-C over plain HTTP is refused by coffer: every op fails, the report says why, the exit status is 1."""
    bucket = unique_bucket("bench-fail")
    report = run_bench(server, "--bucket", bucket, "--op", "put", "--size", "4KiB", "--ops", 3, "--ssec",
                       endpoint=server.http, expect_rc=1)
    check_shape(report, ["put"])
    o = report["ops"]["put"]
    assert o["ops"] == 0 and o["errors"] == 3 and o["latency_ms"] is None
    assert list(o["errors_by_code"]) == ["400 InvalidRequest"]
    assert o["bytes"] == 0  # bytes of failed ops are not counted


def test_bad_credentials_exit_2(server):
    cmd = [str(bench_bin()), "--endpoint", server.https, "--ca-bundle", server.ca, "--access-key", server.access_key,
           "--secret-key", "not-the-secret", "--bucket", unique_bucket("bench-auth"), "--ops", "1", "--json",
           "--quiet"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=clean_env(), stdin=subprocess.DEVNULL)
    assert res.returncode == 2, res.stderr
    assert res.stdout == ""
    assert "403" in res.stderr


def test_run_sh_smoke(tmp_path):
    """bench/run.sh --smoke: its own coffer, the tiny matrix and every op, every report checked by the script."""
    out = tmp_path / "bench-out"
    env = clean_env()
    env.update({"BENCH_SKIP_BUILD": "1", "BENCH_OUT": str(out), "COFFER_BIN": str(coffer_bin()),
                "COFFER_BENCH_BIN": str(bench_bin()), "TMPDIR": str(tmp_path)})
    env.pop("PEERS", None)
    env.pop("PEER_ENDPOINT", None)
    res = subprocess.run([str(REPO / "bench" / "run.sh"), "--smoke"], capture_output=True, text=True, timeout=900,
                         env=env, cwd=REPO, stdin=subprocess.DEVNULL)
    assert res.returncode == 0, f"stdout: {res.stdout[-2000:]}\nstderr: {res.stderr[-5000:]}"
    cells = [line.split("\t") for line in (out / "cells.tsv").read_text().splitlines()]
    ran = {(c[2], c[3]) for c in cells}
    assert {(op, enc) for op in OPS for enc in ("plain", "ssec")} <= ran
    assert all(c[6] == "0" for c in cells), cells
    for c in cells:
        report = json.loads((out / c[5]).read_text())
        check_shape(report, [c[2]])
        assert report["total"]["errors"] == 0
        # The server's peak RSS (KiB) during every cell: more than an idle process, far less than a GiB.
        assert 4_000 < int(c[7]) < 1_000_000, c
    assert "0 problems" in res.stderr


def test_run_sh_scale_smoke(tmp_path):
    """bench/run.sh --scale --smoke: populate 1000 and 5000 objects, start coffer on each, every cell clean, and a doc
    with the side-by-side latency, populate and memory tables."""
    out = tmp_path / "bench-out"
    doc = tmp_path / "scale.md"
    env = clean_env()
    env.update({"BENCH_SKIP_BUILD": "1", "BENCH_OUT": str(out), "COFFER_BIN": str(coffer_bin()),
                "COFFER_BENCH_BIN": str(bench_bin()), "TMPDIR": str(tmp_path), "BENCH_DURATION": "0.3",
                "BENCH_SCALE_DOC": str(doc)})
    res = subprocess.run([str(REPO / "bench" / "run.sh"), "--scale", "--smoke"], capture_output=True, text=True,
                         timeout=600, env=env, cwd=REPO, stdin=subprocess.DEVNULL)
    assert res.returncode == 0, f"stdout: {res.stdout[-2000:]}\nstderr: {res.stderr[-5000:]}"
    assert "0 problems" in res.stderr
    cells = [line.split("\t") for line in (out / "cells.tsv").read_text().splitlines()]
    kinds = ["list-start", "list-middle", "list-prefix", "list-folders", "put", "get"]
    for count in ("1000", "5000"):
        ran = {(c[8], c[3]) for c in cells if c[9] == count}
        assert {(k, "plain") for k in kinds} | {("put", "ssec"), ("get", "ssec")} <= ran, (count, ran)
    for c in cells:
        assert c[6] == "0", c
        report = json.loads((out / c[5]).read_text())
        check_shape(report, [c[2]])
        assert report["total"]["errors"] == 0
        assert 4_000 < int(c[7]) < 1_000_000, c
        if c[8].startswith("list"):
            # Every page was checked to be full (999 keys after the first one of a 1000-object bucket).
            want = 999 if (c[8], c[9]) == ("list-middle", "1000") else 1000
            assert report["list"]["min_keys"] == want and report["list"]["max_keys"] == 1000, report["list"]
            assert report["prepare"] is None
            assert report["list"]["delimiter"] == ("/" if c[8] == "list-folders" else None)
    runs = {line.split("\t")[0]: line.split("\t") for line in (out / "scale.tsv").read_text().splitlines()}
    assert set(runs) == {"1000", "5000"}
    assert "populated 5000 zero-byte objects obj/00000000..obj/00004999" in runs["5000"][9]
    text = doc.read_text()
    for heading in ("## Populate and start", "## Latency", "## Peak memory", "## Issue 6 targets"):
        assert heading in text
    assert "| LIST from the middle (start-after) | plain | 2 |" in text
    assert "<!-- notes: kept across runs -->" in text
