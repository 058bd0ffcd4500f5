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


STORAGE_ACCOUNT = "gpfakestore"
STORAGE_HOST = f"{STORAGE_ACCOUNT}.blob.core.windows.net"  # what the SDK builds: https://{account}.blob.{cloud storage endpoint}
CONTAINER = "azureml-blobstore-11111111-2222-3333-4444-555555555555"
SAS = "sv=2021-08-06&ss=b&srt=co&sp=rl&se=2026-12-02T09%3A00%3A00Z&sig=fakeSasSignature"


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
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                        x509.DNSName(STORAGE_HOST)]), False)
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


class TunnelProxy:
    """An HTTP CONNECT proxy on loopback that tunnels every connection to one local port.

    azure-ai-ml builds the storage account URL itself (``https://{account}.blob.{storage endpoint}``,
    _artifacts/_artifact_utilities.get_datastore_info) and gives its blob client no transport or URL
    override, so a name like ``gpfakestore.blob.core.windows.net`` is what goes on the wire. The SDK's
    requests transport honours ``HTTPS_PROXY`` (as behind a corporate proxy); this proxy takes the CONNECT
    for that name to the fake workspace, which holds a certificate for it. Nothing leaves the machine:
    every tunnel ends on loopback, and the hosts asked for are kept for the test to read.
    """

    def __init__(self, target_port: int):
        import socket
        import socketserver

        self.hosts: list[str] = []
        proxy = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self):
                line = self.rfile.readline(65536).decode("latin-1")
                while self.rfile.readline(65536) not in (b"\r\n", b"\n", b""):
                    pass
                parts = line.split()
                if len(parts) < 2 or parts[0] != "CONNECT":
                    self.wfile.write(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
                    return
                proxy.hosts.append(parts[1])
                up = socket.create_connection(("127.0.0.1", target_port))
                self.wfile.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
                self.wfile.flush()

                def pipe(a, b):
                    try:
                        while True:
                            data = a.recv(65536)
                            if not data:
                                break
                            b.sendall(data)
                    except OSError:
                        pass
                    finally:
                        try:
                            b.shutdown(socket.SHUT_WR)
                        except OSError:
                            pass

                t = threading.Thread(target=pipe, args=(up, self.connection), daemon=True)
                t.start()
                pipe(self.connection, up)
                t.join(timeout=30)
                up.close()

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "TunnelProxy":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


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
        self.endpoints: dict[str, dict] = {}  # online endpoint name -> REST body
        self.deployments: dict[tuple[str, str], dict] = {}  # (endpoint, deployment) -> REST body
        self.operations: dict[str, dict] = {}  # async operation id -> {"polls_left", "done"}
        self.scoring_uri: str | None = None  # where a deployed endpoint says it scores (a loopback server)
        self.created_at: str | None = None  # endpoints' and deployments' systemData.createdAt (default: now)
        self.endpoint_keys = {"primaryKey": "fake-primary-key-0f1e2d", "secondaryKey": "fake-secondary-key-3c4b5a"}
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
                host = (self.headers.get("Host") or "").split(":")[0]
                path = u.path
                if host == STORAGE_HOST:  # the datastore's account, reached through TunnelProxy
                    path = f"/{STORAGE_ACCOUNT}{u.path}"
                with fake.lock:
                    fake.requests.append({"method": self.command, "path": path, "query": parse_qs(u.query),
                                          "body": body, "host": host, "headers": dict(self.headers)})
                try:
                    fake.route(self, self.command, path, parse_qs(u.query), body)
                except Exception as e:  # a bug in the fake shows in the test, not as a hang
                    self._send(500, {"error": {"code": "FakeBug", "message": repr(e)}})

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_PATCH = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(self.cert), str(key))
        self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.proxy = TunnelProxy(self.server.server_port)

    def __enter__(self) -> "FakeAzureML":
        self.thread.start()
        self.proxy.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.proxy.__exit__(*exc)
        self.server.shutdown()
        self.server.server_close()

    # -- helpers for tests ---------------------------------------------------------------------
    def set_status(self, name: str, status: str, **props: str) -> None:
        with self.lock:
            job = self.jobs[name]
            job["properties"]["status"] = status
            job["properties"].setdefault("properties", {}).update(props)

    def complete_with_outputs(self, name: str, folder: Path, output: str = "results", **times: str) -> str:
        """The job wrote ``folder`` (every file under it) to its ``output`` in the workspace blob store and
        completed; returns the blob prefix."""
        prefix = f"azureml/{name}/{output}"
        with self.lock:
            for f in sorted(Path(folder).rglob("*")):
                if f.is_file():
                    self.blobs[f"/{STORAGE_ACCOUNT}/{CONTAINER}/{prefix}/{f.relative_to(folder).as_posix()}"] = \
                        f.read_bytes()
            self.outputs[name] = {"output": output, "prefix": prefix}
        self.set_status(name, "Completed", **times)
        return prefix

    def storage_requests(self) -> list[dict]:
        return [r for r in self.requests if r["host"] == STORAGE_HOST]

    def job_puts(self) -> list[dict]:
        return [json.loads(r["body"]) for r in self.requests if r["method"] == "PUT" and "/jobs/" in r["path"]]

    def uploaded_files(self) -> dict[str, bytes]:
        return dict(self.blobs)

    # -- routes ---------------------------------------------------------------------------------
    def route(self, h, method: str, path: str, query: dict, body: bytes) -> None:
        if path.startswith((f"/{STORAGE_ACCOUNT}/", "/devstoreaccount1/")):
            return self._blob(h, method, path, query, body)
        if path == "/discovery" and method == "GET":  # the workspace's service URLs: all of them here
            return h._send(200, {k: self.url for k in ("api", "catalog", "experimentation", "history",
                                                         "modelmanagement", "pipelines")})
        for plane in ("/history/v1.0", "/data/v1.0"):
            if path.startswith(plane + "/subscriptions/"):
                return self._dataplane(h, method, plane, path[len(plane):], body)
        ws = re.match(r"^/subscriptions/([^/]+)/resourceGroups/([^/]+)/providers/Microsoft\.MachineLearningServices/"
                      r"workspaces/([^/]+)(/.*)?$", path)
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
        m = re.match(r"^/(codes|environments|components|models)/([^/]+)/versions$", rest)
        if m and method == "GET":
            return h._send(200, {"value": []})  # nothing with this content hash yet: upload it
        m = re.match(r"^/(codes|environments|components|models)/([^/]+)/versions/([^/]+)/startPendingUpload$", rest)
        if m and method == "POST":
            container = f"azureml-blobstore-{uuid.uuid4().hex[:8]}"
            blob_uri = f"{self.url}/devstoreaccount1/{container}"
            return h._send(200, {"blobReferenceForConsumption": {
                "blobUri": blob_uri, "storageAccountArmId": None,
                "credential": {"credentialType": "SAS", "sasUri": blob_uri + "?sv=2021-08-06&sig=fake"}},
                "pendingUploadId": uuid.uuid4().hex, "pendingUploadType": "TemporaryBlobReference"})
        m = re.match(r"^/(codes|environments|components|models)/([^/]+)/versions/([^/]+)$", rest)
        if m and method == "PUT":
            doc = json.loads(body)
            doc.update(id=arm, name=m.group(3), type=f"Microsoft.MachineLearningServices/workspaces/{m.group(1)}/versions")
            doc.setdefault("systemData", {"createdAt": "2026-12-02T07:00:00Z", "createdBy": "test"})
            if m.group(1) == "models":  # the service always answers with the model's flavors
                doc["properties"]["flavors"] = doc["properties"].get("flavors") or {}
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
        m = re.match(r"^/datastores/([^/]+)(/listSecrets)?$", rest)
        if m:
            return self._datastore(h, method, arm, m.group(1), bool(m.group(2)), query)
        if rest == "/datastores" and method == "GET":  # get_default: ?isDefault=true
            return h._send(200, {"value": [self._datastore_body(base + "/datastores/workspaceblobstore",
                                                                 "workspaceblobstore")]})
        m = re.match(r"^/onlineEndpoints/([^/]+)(?:/deployments/([^/]+))?(/listKeys|/deployments)?$", rest)
        if m:
            return self._online(h, method, base, arm, m.group(1), m.group(2), m.group(3), body)
        m = re.match(r"^/operations/([^/]+)$", rest)
        if m and method == "GET":
            return self._operation_status(h, m.group(1))
        return h._send(404, {"error": {"code": "NotFound", "message": f"no route {method} {rest}"}})

    # -- run history and data planes: where a job's named outputs are ------------------------------
    @staticmethod
    def _asset_id(name: str, output: str) -> str:
        return (f"azureml://locations/eastus/workspaces/11111111-2222-3333-4444-555555555555/data/"
                f"azureml_{name}_output_data_{output}/versions/1")

    def _dataplane(self, h, method: str, plane: str, path: str, body: bytes) -> None:
        ws = re.match(r"^/subscriptions/([^/]+)/resourceGroups/([^/]+)/providers/Microsoft\.MachineLearningServices/"
                      r"workspaces/([^/]+)(/.*)$", path)
        if not ws or method != "POST":
            return h._send(404, {"error": {"code": "NotFound", "message": f"no route {method} {plane}{path}"}})
        sub, rg, wsname, rest = ws.groups()
        req = json.loads(body or b"{}")
        if plane == "/history/v1.0" and rest == "/rundata":
            name = req.get("runId")
            if name not in self.jobs:
                return h._send(404, {"error": {"code": "UserError", "message": f"Run {name} was not found"}})
            out = self.outputs.get(name)
            outputs = {out["output"]: {"assetId": self._asset_id(name, out["output"]), "type": "uri_folder"}} \
                if out else {}
            return h._send(200, {"runMetadata": {"runId": name, "status": self.jobs[name]["properties"]["status"],
                                                 "outputs": outputs}})
        if plane == "/data/v1.0" and rest == "/dataversion/batchGetResolvedUris":
            values = {}
            for asset in req.get("values") or []:
                m = re.search(r"/data/azureml_(.+)_output_data_(.+)/versions/", asset)
                out = self.outputs.get(m.group(1)) if m else None
                if out and out["output"] == m.group(2):
                    values[asset] = {"type": "UriFolder", "uri": (
                        f"azureml://subscriptions/{sub}/resourcegroups/{rg}/workspaces/{wsname}/datastores/"
                        f"workspaceblobstore/paths/{out['prefix']}/")}
            return h._send(200, {"values": values})
        return h._send(404, {"error": {"code": "NotFound", "message": f"no route {plane}{rest}"}})

    # -- datastores ------------------------------------------------------------------------------
    @staticmethod
    def _datastore_body(arm: str, name: str) -> dict:
        return {"id": arm, "name": name, "type": "Microsoft.MachineLearningServices/workspaces/datastores",
                "properties": {"datastoreType": "AzureBlob", "accountName": STORAGE_ACCOUNT,
                               "containerName": CONTAINER, "endpoint": "core.windows.net", "protocol": "https",
                               "credentials": {"credentialsType": "AccountKey"}, "isDefault": True,
                               "serviceDataAccessAuthIdentity": "None"}}

    def _datastore(self, h, method: str, arm: str, name: str, secrets: bool, query: dict) -> None:
        if name != "workspaceblobstore":
            return h._send(404, {"error": {"code": "UserError", "message": f"Datastore {name} not found"}})
        if secrets and method == "POST":  # an expirable secret: a SAS for the container, valid an hour
            return h._send(200, {"secretsType": "Sas", "sasToken": SAS})
        if method == "GET":
            return h._send(200, self._datastore_body(arm, name))
        return h._send(405, {"error": {"code": "MethodNotAllowed", "message": method}})

    # -- managed online endpoints: ARM long-running operations -------------------------------------
    def _lro(self, h, code: int, body: object, base: str, effect) -> None:
        op = uuid.uuid4().hex
        with self.lock:
            self.operations[op] = {"polls_left": 1, "effect": effect, "status": "InProgress"}
        status_url = f"{self.url}{base}/operations/{op}?api-version=2024-01-01-preview"
        h._send(code, body, {"Azure-AsyncOperation": status_url, "Location": status_url, "Retry-After-Ms": "20"})

    def _operation_status(self, h, op: str) -> None:
        with self.lock:
            o = self.operations.get(op)
            if o is None:
                return h._send(404, {"error": {"code": "NotFound", "message": "no such operation"}})
            if o["status"] == "InProgress":
                if o["polls_left"] > 0:
                    o["polls_left"] -= 1
                else:
                    o["effect"]()
                    o["status"] = "Succeeded"
            status = o["status"]
        return h._send(200, {"id": op, "name": op, "status": status}, {"Retry-After-Ms": "20"})

    def _online(self, h, method: str, base: str, arm: str, ep: str, dep: str | None, suffix: str | None,
                body: bytes) -> None:
        now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        if dep is None and suffix is None:
            if method == "GET":
                if ep not in self.endpoints:
                    return h._send(404, {"error": {"code": "UserError", "message": f"Endpoint {ep} not found."}})
                return h._send(200, self.endpoints[ep])
            if method == "PUT":
                doc = json.loads(body)
                old = self.endpoints.get(ep)
                doc.update(id=arm, name=ep, type="Microsoft.MachineLearningServices/workspaces/onlineEndpoints",
                           systemData={**((old or {}).get("systemData") or {"createdAt": self.created_at or now, "createdBy": "test",
                                                                          "createdByType": "User"}),
                                       "lastModifiedAt": now, "lastModifiedBy": "test",
                                       "lastModifiedByType": "User"})
                props = doc["properties"]
                props["provisioningState"] = "Updating" if old else "Creating"
                props["scoringUri"] = self.scoring_uri or f"https://{ep}.eastus.inference.ml.azure.com/score"
                props["swaggerUri"] = f"https://{ep}.eastus.inference.ml.azure.com/swagger.json"
                with self.lock:
                    self.endpoints[ep] = doc

                def done():
                    self.endpoints[ep]["properties"]["provisioningState"] = "Succeeded"
                return self._lro(h, 200 if old else 201, doc, base, done)
            if method == "DELETE":
                if ep not in self.endpoints:
                    return h._send(204, None)
                self.endpoints[ep]["properties"]["provisioningState"] = "Deleting"

                def gone():
                    self.endpoints.pop(ep, None)
                    for k in [k for k in self.deployments if k[0] == ep]:
                        self.deployments.pop(k)
                return self._lro(h, 202, None, base, gone)
        if ep not in self.endpoints:
            return h._send(404, {"error": {"code": "UserError", "message": f"Endpoint {ep} not found."}})
        if suffix == "/listKeys" and method == "POST":
            return h._send(200, self.endpoint_keys)
        if suffix == "/deployments" and method == "GET":
            return h._send(200, {"value": [d for (e, _), d in self.deployments.items() if e == ep]})
        if dep is not None and suffix is None:
            if method == "GET":
                if (ep, dep) not in self.deployments:
                    return h._send(404, {"error": {"code": "UserError", "message": f"Deployment {dep} not found."}})
                return h._send(200, self.deployments[(ep, dep)])
            if method == "PUT":
                doc = json.loads(body)
                doc.update(id=arm, name=dep,
                           type="Microsoft.MachineLearningServices/workspaces/onlineEndpoints/deployments",
                           systemData={"createdAt": self.created_at or now, "createdBy": "test",
                                       "createdByType": "User", "lastModifiedAt": now, "lastModifiedBy": "test", "lastModifiedByType": "User"})
                doc["properties"]["provisioningState"] = "Creating"
                doc["properties"].setdefault("scaleSettings", {"scaleType": "Default"})  # as the service fills in
                with self.lock:
                    self.deployments[(ep, dep)] = doc

                def done():
                    self.deployments[(ep, dep)]["properties"]["provisioningState"] = "Succeeded"
                return self._lro(h, 201, doc, base, done)
        return h._send(404, {"error": {"code": "NotFound", "message": f"no route {method} {arm}"}})

    # -- blob storage: path-style (pending uploads on 127.0.0.1) and the datastore's account ---------
    def _blob(self, h, method: str, path: str, query: dict, body: bytes) -> None:
        comp = (query.get("comp") or [""])[0]
        restype = (query.get("restype") or [""])[0]
        if method == "GET" and restype == "container" and comp == "list":
            prefix = (query.get("prefix") or [""])[0]
            root = path.rstrip("/") + "/"
            items = []
            with self.lock:
                blobs = sorted((k[len(root):], v) for k, v in self.blobs.items() if k.startswith(root))
            for name, data in blobs:
                if name.startswith(prefix):
                    items.append(
                        f"<Blob><Name>{name}</Name><Properties><Last-Modified>Wed, 02 Dec 2026 07:40:00 GMT"
                        f"</Last-Modified><Etag>0x8DD1</Etag><Content-Length>{len(data)}</Content-Length>"
                        "<Content-Type>application/octet-stream</Content-Type><BlobType>BlockBlob</BlobType>"
                        "<LeaseStatus>unlocked</LeaseStatus><LeaseState>available</LeaseState></Properties>"
                        "<Metadata/></Blob>")
            xml = ('<?xml version="1.0" encoding="utf-8"?><EnumerationResults ServiceEndpoint="https://'
                   f'{STORAGE_HOST}/" ContainerName="{root.strip("/").split("/")[-1]}"><Prefix>{prefix}</Prefix>'
                   f"<Blobs>{''.join(items)}</Blobs><NextMarker/></EnumerationResults>")
            return h._send(200, raw=xml.encode(), headers={"Content-Type": "application/xml"})
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
        if method in ("GET", "HEAD"):
            if path not in self.blobs:
                return h._send(404, None, {"x-ms-error-code": "BlobNotFound"})
            data = self.blobs[path]
            meta = {"Content-Type": "application/octet-stream", "x-ms-blob-type": "BlockBlob", "ETag": '"0x8DD1"',
                    "Last-Modified": "Wed, 02 Dec 2026 07:40:00 GMT", "Accept-Ranges": "bytes"}
            rng = re.match(r"bytes=(\d+)-(\d*)$", h.headers.get("x-ms-range") or h.headers.get("Range") or "")
            if rng and method == "GET":
                if not data:
                    return h._send(416, None, {"x-ms-error-code": "InvalidRange", "Content-Range": "bytes */0"})
                a = int(rng.group(1))
                b = min(int(rng.group(2)) if rng.group(2) else len(data) - 1, len(data) - 1)
                return h._send(206, raw=data[a:b + 1], headers={**meta, "Content-Range": f"bytes {a}-{b}/{len(data)}"})
            return h._send(200, raw=data, headers=meta)
        return h._send(400, None)


def fake_az_cli(folder: Path) -> Path:
    """A stand-in for the Azure CLI's ``az account get-access-token`` in a folder to put first on PATH, so
    the real ``DefaultAzureCredential`` (``AZURE_TOKEN_CREDENTIALS=AzureCliCredential``: only its Azure CLI
    link) signs the CLI's calls exactly as after ``az login``. Each call is logged to ``az-calls.log``."""
    import sys

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    az = folder / "az"
    az.write_text(f"""#!{sys.executable}
import base64, json, sys, time
args = sys.argv[1:]
with open({str(folder / 'az-calls.log')!r}, "a") as log:
    log.write(" ".join(args) + "\\n")
if args[:2] != ["account", "get-access-token"]:
    sys.stderr.write("fake az: only `account get-access-token` is answered here\\n")
    sys.exit(2)
res = args[args.index("--resource") + 1] if "--resource" in args else args[args.index("--scope") + 1]
aud = res[: -len("/.default")] if res.endswith("/.default") else res
b64 = lambda d: base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()
exp = int(time.time()) + 3600
tok = b64({{"alg": "none", "typ": "JWT"}}) + "." + b64({{"aud": aud, "tid": "tenant-0", "oid": "user-0", "exp": exp}}) + ".sig"
print(json.dumps({{"accessToken": tok, "expires_on": exp, "tokenType": "Bearer", "tenant": "tenant-0",
                  "subscription": "00000000-0000-0000-0000-000000000000"}}))
""")
    az.chmod(0o755)
    return folder
