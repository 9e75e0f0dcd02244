"""The HTTP service, as a real `longdoc serve` process on a free loopback port, over a real index."""
import base64
import json
import os
import shutil
import subprocess
import sys
import threading
import time

import httpx
import pytest
from conftest import FIXTURES, running_server

TOKEN = "test-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _cli(*args, env=None, timeout=120):
    return subprocess.run([sys.executable, "-m", "longdoc", *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}, timeout=timeout)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("service")
    corpus, roots = tmp / "corpus", tmp / "roots"
    corpus.mkdir()
    roots.mkdir()
    for name in ("fog_signals.txt", "lighthouses.md", "tides.rst"):
        shutil.copy(FIXTURES / name, corpus / name)
    shutil.copy(FIXTURES / "phare_latin1.txt", roots / "phare_latin1.txt")
    assert _cli("index", corpus, "--index", tmp / "index").returncode == 0
    with running_server(tmp / "index", "--root", roots, "--max-request-mb", "1", "--timeout", "60",
                        env={"LONGDOC_API_TOKEN": TOKEN}) as base:
        yield {"base": base, "roots": roots, "index": tmp / "index"}


def _wait_job(base, job_id, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        job = httpx.get(f"{base}/v1/jobs/{job_id}", headers=AUTH).json()
        if job["state"] in ("done", "failed"):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish")


def test_the_server_refuses_to_start_without_a_token(tmp_path):
    proc = _cli("serve", "--index", tmp_path, env={"LONGDOC_API_TOKEN": ""})
    assert proc.returncode == 1 and "refusing to serve without a token" in proc.stderr
    proc = _cli("serve", "--index", tmp_path, "--insecure-local", "--host", "0.0.0.0", env={"LONGDOC_API_TOKEN": ""})
    assert proc.returncode == 1 and "only on 127.0.0.1" in proc.stderr
    proc = _cli("serve", "--index", tmp_path, env={"LONGDOC_API_TOKEN": "short"})
    assert proc.returncode == 1 and "too short" in proc.stderr


@pytest.mark.slow
def test_auth_is_refused_and_accepted(server):
    base = server["base"]
    assert httpx.get(f"{base}/healthz").json() == {"status": "ok"}
    for headers in ({}, {"Authorization": "Bearer wrong-token-000000000"}, {"Authorization": TOKEN}):
        r = httpx.post(f"{base}/v1/search", json={"query": "fog"}, headers=headers)
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
        assert r.headers["www-authenticate"] == "Bearer"
    r = httpx.post(f"{base}/v1/search", json={"query": "how are tide tables read?", "k": 2}, headers=AUTH)
    assert r.status_code == 200
    hits = r.json()["hits"]
    assert len(hits) == 2 and hits[0]["path"].endswith("tides.rst") and hits[0]["char_end"] > hits[0]["char_start"]
    assert "/v1/ask" in httpx.get(f"{base}/openapi.json").json()["paths"]


@pytest.mark.slow
def test_oversized_and_malformed_requests_get_json_errors(server):
    base = server["base"]
    big = b'{"query": "' + b"a" * (2 * 2**20) + b'"}'
    r = httpx.post(f"{base}/v1/search", content=big, headers={**AUTH, "Content-Type": "application/json"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "too_large"

    def chunks():  # no Content-Length: the cap is enforced while reading
        yield b'{"query": "'
        for _ in range(40):
            yield b"a" * 65536
        yield b'"}'
    r = httpx.post(f"{base}/v1/search", content=chunks(), headers={**AUTH, "Content-Type": "application/json"})
    assert r.status_code == 413
    cases = [("/v1/search", b'{"query": ', "not valid JSON"), ("/v1/search", b"{}", "query: Field required"),
             ("/v1/search", b'{"query": "x", "mode": "magic"}', "mode"), ("/v1/search", b'{"query": "x", "k": 1000}', "at most 100"),
             ("/v1/ask", b'{"question": ""}', "question"),
             ("/v1/documents", b'{"filename": "../../etc/x.txt", "text": "hi"}', "plain file name"),
             ("/v1/documents", b'{"filename": "a.txt", "content_base64": "%%%"}', "not valid base64"),
             ("/v1/documents", b'{"filename": "a.txt", "text": "x", "path": "/etc/hosts"}', "exactly one")]
    for route, body, message in cases:
        r = httpx.post(f"{base}{route}", content=body, headers={**AUTH, "Content-Type": "application/json"})
        assert r.status_code == 422, (route, body, r.text)
        assert message in r.json()["error"]["message"] and "Traceback" not in r.text
    r = httpx.post(f"{base}/v1/documents", json={"filename": "x.exe", "text": "hi"}, headers=AUTH)
    assert r.status_code == 415
    r = httpx.post(f"{base}/v1/documents", json={"path": "/etc/hosts"}, headers=AUTH)
    assert r.status_code == 403 and "outside the configured roots" in r.json()["error"]["message"]
    r = httpx.post(f"{base}/v1/documents", json={"path": str(server["roots"] / ".." / "index" / "catalog.sqlite")},
                   headers=AUTH)
    assert r.status_code == 403  # ../ out of a root is resolved first
    assert httpx.delete(f"{base}/v1/documents/9999", headers=AUTH).status_code == 404
    assert httpx.get(f"{base}/v1/nothing", headers=AUTH).json()["error"]["code"] == "http_error"


@pytest.mark.slow
def test_ask_streams_tokens_then_the_answer_with_citations(server):
    body = {"question": "How are tide tables read?", "stream": True, "max_new_tokens": 12}
    events = []
    with httpx.stream("POST", f"{server['base']}/v1/ask", json=body, headers=AUTH, timeout=120) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        event = None
        for line in r.iter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                events.append((event, json.loads(line[6:])))
    kinds = [k for k, _ in events]
    assert kinds[-1] == "answer" and kinds.count("token") >= 1 and set(kinds[:-1]) == {"token"}
    answer = events[-1][1]
    streamed = "".join(d["text"] for k, d in events if k == "token")
    assert answer["raw"] and answer["raw"].strip() in streamed.strip()
    assert answer["citations"] and answer["citations"][0]["path"].endswith("tides.rst")
    plain = httpx.post(f"{server['base']}/v1/ask", json={**body, "stream": False}, headers=AUTH, timeout=120).json()
    assert plain["raw"] == answer["raw"]  # greedy: the same answer either way


def test_dropped_streams_stop_generating(server):
    """Streams closed right after their headers: their answers are abandoned, not generated for no one
    (24 such streams once kept a server busy for a minute)."""
    base = server["base"]
    before = httpx.get(f"{base}/v1/status", headers=AUTH, timeout=60).json()["asks"]
    body = {"question": "How are tide tables read?", "stream": True, "max_new_tokens": 48}
    for _ in range(6):
        with httpx.stream("POST", f"{base}/v1/ask", json=body, headers=AUTH, timeout=60) as r:
            assert r.status_code == 200  # closed here, before any event is read
    deadline = time.time() + 120
    while time.time() < deadline:
        asks = httpx.get(f"{base}/v1/status", headers=AUTH, timeout=60).json()["asks"]
        if sum(asks.values()) - sum(before.values()) >= 6:
            break
        time.sleep(0.2)
    assert asks["abandoned"] - before["abandoned"] >= 5, (before, asks)
    assert asks["answered"] - before["answered"] <= 1
    plain = httpx.post(f"{base}/v1/ask", json={**body, "stream": False}, headers=AUTH, timeout=120)
    assert plain.status_code == 200 and plain.json()["raw"]  # the reader is free and works


@pytest.mark.slow
def test_searches_keep_being_served_while_documents_are_added_and_removed(server):
    base = server["base"]
    text = (FIXTURES / "keepers.html").read_bytes()
    big = b"".join(text.replace(b"Keepers", f"Keepers {i}".encode()) for i in range(30))  # a few seconds of indexing
    r = httpx.post(f"{base}/v1/documents", json={"filename": "keepers.html",
                                                 "content_base64": base64.b64encode(big).decode()}, headers=AUTH)
    assert r.status_code == 202
    job_id = r.json()["job"]["id"]
    finished = threading.Event()
    results, errors = [], []

    def client():
        with httpx.Client(base_url=base, headers=AUTH, timeout=60) as c:
            q = 0
            while not finished.is_set() or q < 3:
                resp = c.post("/v1/search", json={"query": f"fog signal number {q}", "k": 3})
                (results if resp.status_code == 200 else errors).append((time.time(), resp.status_code))
                q += 1

    threads = [threading.Thread(target=client) for _ in range(4)]
    for t in threads:
        t.start()
    job = _wait_job(base, job_id)
    finished.set()
    for t in threads:
        t.join()
    assert errors == [] and job["state"] == "done" and job["result"]["added"] == 1, (errors, job)
    assert job["progress"]["files_done"] == job["progress"]["files"] == 1
    assert job["progress"]["chunks_embedded"] == job["result"]["chunks_embedded"] > 0
    during = [t for t, _ in results if job["submitted"] < t < job["finished"]]
    assert len(during) >= 4, "no search was served while the document was being indexed"
    hits = httpx.post(f"{base}/v1/search", json={"query": "keepers cottages, supplies by boat once a fortnight", "k": 1},
                      headers=AUTH).json()["hits"]
    assert hits[0]["path"].endswith("uploads/keepers.html")
    status = httpx.get(f"{base}/v1/status", headers=AUTH).json()
    assert status["documents"] == 4 and status["query_batches"]["queries"] >= status["query_batches"]["batches"] > 0

    # A file inside the roots may be added by path; then both new documents are removed.
    job = _wait_job(base, httpx.post(f"{base}/v1/documents", json={"path": str(server["roots"] / "phare_latin1.txt")},
                                     headers=AUTH).json()["job"]["id"])
    assert job["state"] == "done" and job["result"]["added"] == 1
    docs = httpx.get(f"{base}/v1/documents", headers=AUTH).json()["documents"]
    for doc in docs:
        if "uploads" in doc["path"] or "roots" in doc["path"]:
            job = _wait_job(base, httpx.delete(f"{base}/v1/documents/{doc['id']}", headers=AUTH).json()["job"]["id"])
            assert job["state"] == "done" and job["result"]["removed"] == [doc["path"]]
    assert httpx.get(f"{base}/v1/status", headers=AUTH).json()["documents"] == 3
    assert not (server["index"] / "uploads" / "keepers.html").exists()
    assert (server["roots"] / "phare_latin1.txt").exists()  # never the user's own file


# Values of the wrong kind, size or shape, put in each field of a request in turn.
ODD_VALUES = [None, True, -1, 0, 1.5, 10**40, "", "x" * 5000, "\x00", [], ["x"], {}, {"$gt": 1}, [[[]]]]
RAW_BODIES = [b"", b"{", b"[]", b'"text"', b"null", b"12", b'{"query": NaN}', b'{"question": "\xff\xfe"}',
              b"[" * 50_000 + b"]" * 50_000, b'{"a": ' * 5_000 + b"1" + b"}" * 5_000]
GOOD = {"/v1/search": {"query": "fog", "k": 2}, "/v1/ask": {"question": "fog?", "k": 1, "max_new_tokens": 1},
        "/v1/documents": {"filename": "audit.txt", "text": "an audit"}}


@pytest.mark.slow
def test_every_route_answers_malformed_requests_with_a_4xx_json_error(server):
    """Each route the service publishes, sent bodies that are not JSON or not objects, and every field of a
    good request replaced in turn by values of the wrong type or size, plus filters of the wrong shape,
    odd path parameters and wrong methods: never a 5xx, always a JSON error naming a code."""
    base = server["base"]
    api = httpx.get(f"{base}/openapi.json").json()
    paths = api["paths"]
    assert {p for p, ops in paths.items() if "post" in ops} == set(GOOD)  # a new route needs its good request here

    def fields_of(route):
        ref = paths[route]["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        return list(api["components"]["schemas"][ref.rsplit("/", 1)[1]]["properties"])
    sent = []

    def check(method, url, **kwargs):
        r = httpx.request(method, f"{base}{url}", headers={**AUTH, "Content-Type": "application/json"}, timeout=120,
                          **kwargs)
        sent.append((method, url, r.status_code))
        assert r.status_code < 500, (method, url, kwargs, r.status_code, r.text[:500])
        if r.status_code >= 400:
            assert r.json()["error"]["code"], (url, r.text[:500])
        return r

    for route, good in GOOD.items():
        for body in RAW_BODIES:
            assert check("POST", route, content=body).status_code in (400, 413, 422)
        assert set(good) <= set(fields_of(route))
        for field in fields_of(route):
            for value in ODD_VALUES:
                check("POST", route, content=json.dumps({**good, field: value}).encode())
    for filters in [[], "x", 5, {"documents": 5}, {"documents": [5, None]}, {"section": 7}, {"path_glob": ["*"]},
                    {"section": {"a": 1}}, {"nope": 1}]:
        assert check("POST", "/v1/search", json={"query": "fog", "filters": filters}).status_code == 422, filters
    for url in ["/v1/documents/abc", "/v1/documents/-1", "/v1/documents/" + "9" * 40, "/v1/documents/1.5",
                "/v1/jobs/nope", "/v1/jobs/" + "9" * 40, "/v1/jobs/%00"]:
        assert check("DELETE" if "documents" in url else "GET", url).status_code in (404, 422), url
    for method, url in [("PUT", "/v1/search"), ("GET", "/v1/ask"), ("PATCH", "/v1/documents"), ("POST", "/v1/status")]:
        assert check(method, url).status_code == 405
    assert len(sent) > 250
    for doc in httpx.get(f"{base}/v1/documents", headers=AUTH).json()["documents"]:  # what the good ones added
        if doc["path"].endswith("audit.txt"):
            _wait_job(base, httpx.delete(f"{base}/v1/documents/{doc['id']}", headers=AUTH).json()["job"]["id"])


def test_a_documents_text_round_a_span_for_the_reader_pane(server):
    base = server["base"]
    hit = httpx.post(f"{base}/v1/search", json={"query": "diaphone", "k": 1}, headers=AUTH).json()["hits"][0]
    url = f"{base}/v1/documents/{hit['doc_id']}/text"
    doc = httpx.get(url, params={"start": hit["char_start"], "end": hit["char_end"]}, headers=AUTH).json()
    lo = hit["char_start"] - doc["offset"]
    assert doc["text"][lo:lo + len(hit["text"])] == hit["text"] and doc["pages"] == []
    assert doc["title"] == hit["title"] and doc["length"] >= hit["char_end"]
    assert httpx.get(url, params={"start": 5, "end": 10**9}, headers=AUTH).status_code == 422
    assert httpx.get(f"{base}/v1/documents/999999/text", headers=AUTH).status_code == 404
    assert httpx.get(url).status_code == 401
