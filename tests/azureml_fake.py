"""A fake Azure ML workspace service on loopback HTTPS, for azure-ai-ml's real MLClient.

The SDK is pointed at it with ``AZUREML_DEV_URL_MFE`` (azure-ai-ml's own switch for a local management
front end); bearer tokens are only sent over TLS, so the server has a throw-away self-signed
certificate for 127.0.0.1 that the client trusts through ``REQUESTS_CA_BUNDLE``. It answers the calls a
job submission makes — code asset lookup by hash, pending upload, the blob upload itself (block blobs
under ``/devstoreaccount1/...``), environment and code versions, jobs PUT/GET/cancel — keeps what it
was sent, and lets a test move a job through Azure ML's statuses.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import ssl
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse


def self_signed_cert(folder: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    import ipaddress

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(hours=2))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    cp, kp = folder / "cert.pem", folder / "key.pem"
    cp.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    kp.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                     serialization.NoEncryption()))
    return cp, kp


def _b64(d: dict) -> str:
    import base64

    return base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()


class FakeCredential:
    """A credential that issues unsigned JWTs whose audience is the scope asked for (the SDK reads ``aud``
    and ``tid`` from them); stands in for DefaultAzureCredential, which needs a real tenant."""

    def __init__(self):
        self.scopes: list[tuple[str, ...]] = []

    def _token(self, scopes: tuple[str, ...]) -> str:
        import time

        self.scopes.append(scopes)
        s = scopes[0] if scopes else ""
        aud = s[: -len("/.default")] if s.endswith("/.default") else s
        return (_b64({"alg": "none", "typ": "JWT"}) + "." +
                _b64({"aud": aud, "tid": "tenant-0", "oid": "user-0", "exp": int(time.time()) + 3600}) + ".sig")

    def get_token(self, *scopes, **kw):
        import time

        from azure.core.credentials import AccessToken

        return AccessToken(self._token(scopes), int(time.time()) + 3600)

    def get_token_info(self, *scopes, options=None):
        import time

        from azure.core.credentials import AccessTokenInfo

        return AccessTokenInfo(self._token(scopes), int(time.time()) + 3600)


class FakeAzureML:
    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.requests: list[dict] = []
        self.jobs: dict[str, dict] = {}  # name -> REST body as stored (with status)
        self.blobs: dict[str, bytes] = {}  # path -> bytes
        self.blocks: dict[str, dict[str, bytes]] = {}
        self.assets: dict[str, dict] = {}
        self.outputs: dict[str, dict[str, bytes]] = {}  # job name -> {relative path: bytes} of its results
        self.auth_headers: set[str] = set()
        self.lock = threading.Lock()
        self.cert, key = self_signed_cert(self.folder)
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _send(self, code: int, body: object = None, headers: dict | None = None, raw: bytes | None = None):
                data = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
                self.send_response(code)
                if raw is None and body is not None:
                    self.send_header("Content-Type", "application/json")
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            def _handle(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                if self.headers.get("Authorization"):
                    fake.auth_headers.add(self.headers["Authorization"])
                u = urlparse(self.path)
                with fake.lock:
                    fake.requests.append({"method": self.command, "path": u.path, "query": parse_qs(u.query),
                                          "body": body})
                try:
                    fake.route(self, self.command, u.path, parse_qs(u.query), body)
                except Exception as e:  # a bug in the fake shows in the test, not as a hang
                    self._send(500, {"error": {"code": "FakeBug", "message": repr(e)}})

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_PATCH = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(self.cert), str(key))
        self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "FakeAzureML":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    # -- helpers for tests ---------------------------------------------------------------------
    def set_status(self, name: str, status: str, **props: str) -> None:
        with self.lock:
            job = self.jobs[name]
            job["properties"]["status"] = status
            job["properties"].setdefault("properties", {}).update(props)

    def job_puts(self) -> list[dict]:
        return [json.loads(r["body"]) for r in self.requests if r["method"] == "PUT" and "/jobs/" in r["path"]]

    def uploaded_files(self) -> dict[str, bytes]:
        return dict(self.blobs)

    # -- routes ---------------------------------------------------------------------------------
    def route(self, h, method: str, path: str, query: dict, body: bytes) -> None:
        ws = re.match(r"^/subscriptions/([^/]+)/resourceGroups/([^/]+)/providers/Microsoft\.MachineLearningServices/"
                      r"workspaces/([^/]+)(/.*)?$", path)
        if path.startswith("/devstoreaccount1/"):
            return self._blob(h, method, path, query, body)
        if not ws:
            return h._send(404, {"error": {"code": "NotFound", "message": f"no route {path}"}})
        base = path[: len(path) - len(ws.group(4) or "")]
        rest = ws.group(4) or ""
        arm = base + rest
        if rest == "" and method == "GET":
            return h._send(200, {"id": arm, "name": ws.group(3), "location": "eastus",
                                 "type": "Microsoft.MachineLearningServices/workspaces",
                                 "properties": {"workspaceId": "11111111-2222-3333-4444-555555555555",
                                                "discoveryUrl": f"{self.url}/discovery", "friendlyName": ws.group(3)}})
        m = re.match(r"^/(codes|environments|components)/([^/]+)/versions$", rest)
        if m and method == "GET":
            return h._send(200, {"value": []})  # nothing with this content hash yet: upload it
        m = re.match(r"^/(codes|environments|components)/([^/]+)/versions/([^/]+)/startPendingUpload$", rest)
        if m and method == "POST":
            container = f"azureml-blobstore-{uuid.uuid4().hex[:8]}"
            blob_uri = f"{self.url}/devstoreaccount1/{container}"
            return h._send(200, {"blobReferenceForConsumption": {
                "blobUri": blob_uri, "storageAccountArmId": None,
                "credential": {"credentialType": "SAS", "sasUri": blob_uri + "?sv=2021-08-06&sig=fake"}},
                "pendingUploadId": uuid.uuid4().hex, "pendingUploadType": "TemporaryBlobReference"})
        m = re.match(r"^/(codes|environments|components)/([^/]+)/versions/([^/]+)$", rest)
        if m and method == "PUT":
            doc = json.loads(body)
            doc.update(id=arm, name=m.group(3), type=f"Microsoft.MachineLearningServices/workspaces/{m.group(1)}/versions")
            doc.setdefault("systemData", {"createdAt": "2026-12-02T07:00:00Z", "createdBy": "test"})
            self.assets[arm] = doc
            return h._send(200, doc)
        if m and method == "GET":
            if arm in self.assets:
                return h._send(200, self.assets[arm])
            return h._send(404, {"error": {"code": "NotFound", "message": "no such version"}})
        m = re.match(r"^/jobs/([^/]+)$", rest)
        if m and method == "PUT":
            doc = json.loads(body)
            doc["properties"]["status"] = "NotStarted"
            doc.update(id=arm, name=m.group(1), type="Microsoft.MachineLearningServices/workspaces/jobs",
                       systemData={"createdAt": "2026-12-02T07:00:00Z", "createdBy": "test",
                                   "createdByType": "User"})
            doc["properties"].setdefault("services", {})["Studio"] = {
                "endpoint": f"https://ml.azure.com/runs/{m.group(1)}?wsid=fake", "jobServiceType": "Studio"}
            with self.lock:
                self.jobs[m.group(1)] = doc
            return h._send(201, doc)
        if m and method == "GET":
            if m.group(1) not in self.jobs:
                return h._send(404, {"error": {"code": "UserError", "message": f"Job {m.group(1)} not found."}})
            return h._send(200, self.jobs[m.group(1)])
        m = re.match(r"^/jobs/([^/]+)/cancel$", rest)
        if m and method == "POST":
            if m.group(1) not in self.jobs:
                return h._send(404, {"error": {"code": "UserError", "message": "not found"}})
            self.set_status(m.group(1), "CancelRequested")
            return h._send(202, None, {"Location": f"{self.url}{base}/operationResults/cancel-{m.group(1)}"
                                                   "?api-version=2024-01-01-preview"})
        m = re.match(r"^/operationResults/cancel-(.+)$", rest)
        if m:
            self.set_status(m.group(1), "Canceled")
            return h._send(200, {})
        return h._send(404, {"error": {"code": "NotFound", "message": f"no route {method} {rest}"}})

    def _blob(self, h, method: str, path: str, query: dict, body: bytes) -> None:
        comp = (query.get("comp") or [""])[0]
        if method == "PUT" and comp == "block":
            self.blocks.setdefault(path, {})[query["blockid"][0]] = body
            return h._send(201, None)
        if method == "PUT" and comp == "blocklist":
            ids = re.findall(rb"<(?:Latest|Uncommitted|Committed)>([^<]+)</", body)
            parts = self.blocks.pop(path, {})
            self.blobs[path] = b"".join(parts[i.decode()] for i in ids)
            return h._send(201, None, {"ETag": '"1"', "Last-Modified": "Wed, 02 Dec 2026 07:00:00 GMT"})
        if method == "PUT" and comp in ("", "metadata", "properties"):
            if comp == "":
                self.blobs[path] = body
            return h._send(201 if comp == "" else 200, None,
                           {"ETag": '"1"', "Last-Modified": "Wed, 02 Dec 2026 07:00:00 GMT"})
        if method == "GET" and (query.get("restype") or [""])[0] == "container" and comp == "list":
            return h._send(200, raw=(b'<?xml version="1.0" encoding="utf-8"?><EnumerationResults><Blobs/>'
                                     b"<NextMarker/></EnumerationResults>"),
                           headers={"Content-Type": "application/xml"})
        if method in ("GET", "HEAD"):
            if path in self.blobs:
                return h._send(200, raw=self.blobs[path], headers={"Content-Type": "application/octet-stream",
                                                                    "x-ms-blob-type": "BlockBlob"})
            return h._send(404, None, {"x-ms-error-code": "BlobNotFound"})
        return h._send(400, None)
