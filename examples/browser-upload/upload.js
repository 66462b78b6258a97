// Coffer browser upload: an SSE-C upload straight from a web page to Coffer (or S3) by a
// SigV4-signed POST policy form. No dependencies and no build step.
//
// The secret access key and the encryption key live only in this page's memory (form fields
// and local variables): nothing is stored, and nothing is sent anywhere but the endpoint.
"use strict";

(function () {
  const utf8 = new TextEncoder();

  // ---------------------------------------------------------------------------------------
  // MD5 (RFC 1321). WebCrypto has no MD5, and SSE-C needs the MD5 of the key
  // (x-amz-server-side-encryption-customer-key-MD5). Only ever used for that checksum.
  // ---------------------------------------------------------------------------------------

  // floor(abs(sin(i + 1)) * 2^32), i = 0..63
  const MD5_K = new Uint32Array([
    0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee,
    0xf57c0faf, 0x4787c62a, 0xa8304613, 0xfd469501,
    0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be,
    0x6b901122, 0xfd987193, 0xa679438e, 0x49b40821,
    0xf61e2562, 0xc040b340, 0x265e5a51, 0xe9b6c7aa,
    0xd62f105d, 0x02441453, 0xd8a1e681, 0xe7d3fbc8,
    0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed,
    0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a,
    0xfffa3942, 0x8771f681, 0x6d9d6122, 0xfde5380c,
    0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70,
    0x289b7ec6, 0xeaa127fa, 0xd4ef3085, 0x04881d05,
    0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665,
    0xf4292244, 0x432aff97, 0xab9423a7, 0xfc93a039,
    0x655b59c3, 0x8f0ccc92, 0xffeff47d, 0x85845dd1,
    0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1,
    0xf7537e82, 0xbd3af235, 0x2ad7d2bb, 0xeb86d391,
  ]);
  // Per-round left-rotation amounts.
  const MD5_S = [7, 12, 17, 22, 5, 9, 14, 20, 4, 11, 16, 23, 6, 10, 15, 21];

  /** The 16-byte MD5 digest of a Uint8Array. */
  function md5(input) {
    const length = input.length;
    // Message, 0x80, zeros, then the bit length as 64 bits little-endian: a multiple of 64.
    const blocks = Math.floor((length + 8) / 64) + 1;
    const buf = new Uint8Array(blocks * 64);
    buf.set(input);
    buf[length] = 0x80;
    const view = new DataView(buf.buffer);
    const bits = length * 8;
    view.setUint32(buf.length - 8, bits % 0x100000000, true);
    view.setUint32(buf.length - 4, Math.floor(bits / 0x100000000), true);

    let a0 = 0x67452301, b0 = 0xefcdab89, c0 = 0x98badcfe, d0 = 0x10325476;
    const m = new Uint32Array(16);
    for (let block = 0; block < blocks; block++) {
      for (let j = 0; j < 16; j++) m[j] = view.getUint32(block * 64 + j * 4, true);
      let a = a0, b = b0, c = c0, d = d0;
      for (let i = 0; i < 64; i++) {
        let f, g;
        if (i < 16) {
          f = (b & c) | (~b & d);
          g = i;
        } else if (i < 32) {
          f = (d & b) | (~d & c);
          g = (5 * i + 1) % 16;
        } else if (i < 48) {
          f = b ^ c ^ d;
          g = (3 * i + 5) % 16;
        } else {
          f = c ^ (b | ~d);
          g = (7 * i) % 16;
        }
        const s = MD5_S[(i >> 4) * 4 + (i % 4)];
        const x = (a + f + MD5_K[i] + m[g]) | 0;
        a = d;
        d = c;
        c = b;
        b = (b + ((x << s) | (x >>> (32 - s)))) | 0;
      }
      a0 = (a0 + a) | 0;
      b0 = (b0 + b) | 0;
      c0 = (c0 + c) | 0;
      d0 = (d0 + d) | 0;
    }
    const out = new Uint8Array(16);
    const outView = new DataView(out.buffer);
    [a0, b0, c0, d0].forEach((word, i) => outView.setUint32(i * 4, word >>> 0, true));
    return out;
  }

  // RFC 1321's test suite, checked when the page loads.
  const MD5_VECTORS = [
    ["", "d41d8cd98f00b204e9800998ecf8427e"],
    ["a", "0cc175b9c0f1b6a831c399e269772661"],
    ["abc", "900150983cd24fb0d6963f7d28e17f72"],
    ["message digest", "f96b697d7cb7938d525a2f31aaf161d0"],
    ["abcdefghijklmnopqrstuvwxyz", "c3fcd3d76192e4007dfb496cca67e13b"],
    ["ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", "d174ab98d277d9f5a5611c2c9f419d9f"],
    ["1234567890".repeat(8), "57edf4a22be3c955ac49da2e2107b67a"],
  ];

  function md5SelfTest() {
    return MD5_VECTORS.every(([text, want]) => toHex(md5(utf8.encode(text))) === want);
  }

  // ---------------------------------------------------------------------------------------
  // Encodings
  // ---------------------------------------------------------------------------------------

  function toHex(bytes) {
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  function toBase64(bytes) {
    let binary = "";
    for (const b of bytes) binary += String.fromCharCode(b);
    return btoa(binary);
  }

  /** Strict base64 (padded, no stray characters) to bytes; throws on anything else. */
  function fromBase64(text) {
    const clean = text.replace(/\s+/g, "");
    if (!/^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(clean)) {
      throw new Error("not valid base64");
    }
    return Uint8Array.from(atob(clean), (ch) => ch.charCodeAt(0));
  }

  // ---------------------------------------------------------------------------------------
  // SigV4 POST policy, signed with WebCrypto's HMAC-SHA256
  // ---------------------------------------------------------------------------------------

  async function hmacSha256(keyBytes, message) {
    const key = await crypto.subtle.importKey("raw", keyBytes, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
    return new Uint8Array(await crypto.subtle.sign("HMAC", key, utf8.encode(message)));
  }

  /** The signing key: HMAC chain of date, region, service and "aws4_request". */
  async function signingKey(secret, dateStamp, region) {
    let key = await hmacSha256(utf8.encode("AWS4" + secret), dateStamp);
    key = await hmacSha256(key, region);
    key = await hmacSha256(key, "s3");
    return hmacSha256(key, "aws4_request");
  }

  /** "20260101T120000Z" and "20260101" for a Date. */
  function amzDates(now) {
    const iso = now.toISOString().replace(/[-:]/g, "").replace(/\.\d{3}/, "");
    return { amzDate: iso, dateStamp: iso.slice(0, 8) };
  }

  /**
   * The form fields of a signed POST upload (everything but the file and the SSE-C key).
   * The policy pins the bucket, the key (or its prefix before ${filename}), SSE-C with this
   * key's MD5, and the 201 answer; it never contains the key itself.
   */
  async function signedFields({ accessKeyId, secret, region, bucket, key, keyMd5, contentType, now, validSeconds }) {
    const { amzDate, dateStamp } = amzDates(now);
    const credential = `${accessKeyId}/${dateStamp}/${region}/s3/aws4_request`;
    const variable = key.indexOf("${filename}");
    const conditions = [
      { bucket },
      variable >= 0 ? ["starts-with", "$key", key.slice(0, variable)] : { key },
      ["starts-with", "$Content-Type", ""],
      { success_action_status: "201" },
      { "x-amz-algorithm": "AWS4-HMAC-SHA256" },
      { "x-amz-credential": credential },
      { "x-amz-date": amzDate },
      { "x-amz-server-side-encryption-customer-algorithm": "AES256" },
      ["starts-with", "$x-amz-server-side-encryption-customer-key", ""],
      { "x-amz-server-side-encryption-customer-key-MD5": keyMd5 },
    ];
    const expiration = new Date(now.getTime() + validSeconds * 1000).toISOString();
    const policy = toBase64(utf8.encode(JSON.stringify({ expiration, conditions })));
    const signature = toHex(await hmacSha256(await signingKey(secret, dateStamp, region), policy));
    return {
      key,
      "Content-Type": contentType,
      success_action_status: "201",
      "x-amz-algorithm": "AWS4-HMAC-SHA256",
      "x-amz-credential": credential,
      "x-amz-date": amzDate,
      policy,
      "x-amz-signature": signature,
    };
  }

  // ---------------------------------------------------------------------------------------
  // The page
  // ---------------------------------------------------------------------------------------

  const $ = (id) => document.getElementById(id);
  let keyDownloadUrl = null;

  function setText(id, text) {
    $(id).textContent = text;
  }

  function clearResult() {
    for (const id of ["status", "result-key", "result-etag", "error-code", "error-message", "hint"]) setText(id, "");
  }

  function showError(message) {
    setText("status", "not sent");
    setText("error-code", "ClientError");
    setText("error-message", message);
  }

  function generateKey() {
    const key = crypto.getRandomValues(new Uint8Array(32));
    $("sse-key").value = toBase64(key);
    key.fill(0);
    offerKeyDownload();
  }

  /** A download link for the key in the box, as base64 text. */
  function offerKeyDownload() {
    if (keyDownloadUrl) URL.revokeObjectURL(keyDownloadUrl);
    keyDownloadUrl = null;
    const link = $("download-key");
    const text = $("sse-key").value.trim();
    if (!text) {
      link.hidden = true;
      return;
    }
    keyDownloadUrl = URL.createObjectURL(new Blob([text + "\n"], { type: "text/plain" }));
    link.href = keyDownloadUrl;
    link.download = "sse-c-key.b64";
    link.hidden = false;
  }

  function forgetSecrets() {
    for (const id of ["secret-access-key", "sse-key", "premade-fields"]) $(id).value = "";
    offerKeyDownload();
    clearResult();
  }

  /** Fields pasted as JSON: boto3's generate_presigned_post answer ({url, fields}) or just the fields. */
  function premadeFields() {
    let parsed;
    try {
      parsed = JSON.parse($("premade-fields").value);
    } catch (e) {
      throw new Error("the pre-made fields are not valid JSON: " + e.message);
    }
    if (parsed && typeof parsed.fields === "object") return { url: parsed.url, fields: parsed.fields };
    if (parsed && typeof parsed === "object") return { url: null, fields: parsed };
    throw new Error("the pre-made fields must be a JSON object");
  }

  function xmlField(doc, name) {
    const el = doc && doc.getElementsByTagName(name)[0];
    return el ? el.textContent : "";
  }

  async function upload() {
    clearResult();
    const file = $("file").files[0];
    if (!file) return showError("pick a file first");
    let sseKey;
    try {
      sseKey = fromBase64($("sse-key").value);
    } catch (e) {
      return showError("the encryption key is " + e.message + " (generate one, or paste 32 bytes as base64)");
    }
    if (sseKey.length !== 32) return showError(`the encryption key must be 32 bytes, this one is ${sseKey.length}`);
    const keyB64 = toBase64(sseKey);
    const keyMd5 = toBase64(md5(sseKey));
    sseKey.fill(0);

    const endpoint = $("endpoint").value.trim().replace(/\/+$/, "");
    const bucket = $("bucket").value.trim();
    let url = `${endpoint}/${encodeURIComponent(bucket)}`;
    let fields;
    try {
      if ($("mode-paste").checked) {
        const premade = premadeFields();
        fields = Object.assign({}, premade.fields);
        if (premade.url) url = premade.url;
        if (!("key" in fields)) fields.key = $("object-key").value;
      } else {
        if (!endpoint || !bucket) return showError("endpoint and bucket are required");
        fields = await signedFields({
          accessKeyId: $("access-key-id").value.trim(),
          secret: $("secret-access-key").value,
          region: $("region").value.trim() || "us-east-1",
          bucket,
          key: $("object-key").value,
          keyMd5,
          contentType: file.type || "application/octet-stream",
          now: new Date(),
          validSeconds: 15 * 60,
        });
      }
    } catch (e) {
      return showError(e.message);
    }
    if (url.startsWith("http:")) {
      setText("hint", "Warning: SSE-C over plain HTTP is refused by Coffer and S3; use the https endpoint.");
    }

    const form = new FormData();
    for (const [name, value] of Object.entries(fields)) form.append(name, value);
    form.append("x-amz-server-side-encryption-customer-algorithm", "AES256");
    form.append("x-amz-server-side-encryption-customer-key", keyB64);
    form.append("x-amz-server-side-encryption-customer-key-MD5", keyMd5);
    form.append("file", file); // the file must be the last field

    setText("status", "uploading...");
    let resp;
    try {
      resp = await fetch(url, { method: "POST", body: form, credentials: "omit" });
    } catch (e) {
      setText("status", "network error");
      setText("error-code", "NetworkError");
      setText("error-message",
        "The browser could not reach the endpoint or was not allowed to read its answer: check the URL, " +
        "that the browser trusts the endpoint's certificate, and the bucket's CORS rules for this page's " +
        `origin (${location.origin}). (${e.message})`);
      return;
    }
    const body = await resp.text();
    const doc = body ? new DOMParser().parseFromString(body, "application/xml") : null;
    setText("status", `${resp.status} ${resp.statusText}`.trim());
    if (resp.ok) {
      const objectKey = xmlField(doc, "Key") || fields.key;
      setText("result-key", objectKey);
      setText("result-etag", resp.headers.get("ETag") || xmlField(doc, "ETag"));
      setText("hint",
        `Read it back with the same key: base64 -d sse-c-key.b64 > sse-c.key && aws s3api get-object ` +
        `--bucket ${bucket} --key '${objectKey}' --sse-customer-algorithm AES256 ` +
        `--sse-customer-key fileb://sse-c.key out.bin`);
    } else {
      setText("error-code", xmlField(doc, "Code") || "HTTP " + resp.status);
      setText("error-message", xmlField(doc, "Message") || body.slice(0, 500));
    }
  }

  function init() {
    const ok = md5SelfTest();
    setText("selftest", ok ? "MD5 self-test passed" : "MD5 self-test FAILED: do not use this page");
    $("selftest").className = ok ? "ok" : "bad";
    if (!window.crypto || !crypto.subtle) {
      setText("hint", "This page needs WebCrypto: open it from http://localhost, http://127.0.0.1 or https.");
    }
    $("generate-key").addEventListener("click", generateKey);
    $("sse-key").addEventListener("input", offerKeyDownload);
    $("forget").addEventListener("click", forgetSecrets);
    $("upload").addEventListener("click", () => {
      upload().catch((e) => showError(String(e && e.message ? e.message : e)));
    });
    const syncMode = () => {
      const paste = $("mode-paste").checked;
      $("sign-fields").hidden = paste;
      $("paste-fields").hidden = !paste;
    };
    $("mode-sign").addEventListener("change", syncMode);
    $("mode-paste").addEventListener("change", syncMode);
    syncMode();
  }

  // For tests and the curious: the pure pieces, callable from the console.
  window.CofferUpload = { md5, md5SelfTest, toHex, toBase64, fromBase64, signedFields, signingKey };
  document.addEventListener("DOMContentLoaded", init);
})();
