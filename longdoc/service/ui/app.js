// longdoc's page. It talks to the same /v1 routes as any client, with the token as a bearer header
// (kept in sessionStorage: asked once per browser tab, never put in a URL). Everything from the server,
// document text above all, is put into the page as text (textContent, text nodes): never as HTML.
"use strict";

const TOKEN_KEY = "longdoc-token";
const $ = (id) => document.getElementById(id);
let token = sessionStorage.getItem(TOKEN_KEY);

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

function headers(json) {
  const h = {};
  if (token) h.Authorization = `Bearer ${token}`;
  if (json) h["Content-Type"] = "application/json";
  return h;
}

async function api(path, options = {}) {
  const response = await fetch(path, {
    method: options.method || "GET",
    headers: headers(options.body !== undefined),
    body: options.body !== undefined ? JSON.stringify(options.body) : undefined,
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    if (response.status === 401) showLogin();
    throw new ApiError(response.status, (data.error && data.error.message) || `HTTP ${response.status}`);
  }
  return data;
}

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "text") node.textContent = value;
    else if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

// --- signing in ---------------------------------------------------------------------------------

function showLogin(message = "") {
  token = null;
  sessionStorage.removeItem(TOKEN_KEY);
  for (const id of ["hits", "citations", "jobs", "reader-text"]) $(id).replaceChildren();
  $("documents").tBodies[0].replaceChildren();
  $("app").hidden = true;
  $("sign-out").hidden = true;
  $("index-status").textContent = "";
  $("login").hidden = false;
  $("login-error").textContent = message;
  $("token").focus();
}

async function start() {
  try {
    await refreshStatus();
  } catch (e) {
    if (e.status !== 401) $("index-status").textContent = e.message;
    return;
  }
  $("login").hidden = true;
  $("app").hidden = false;
  $("sign-out").hidden = !token;
  $("query").focus();
  refreshDocuments();
  whenReady();
}

// Search and ask wait while the server loads its models (a fresh `longdoc serve`).
async function whenReady() {
  let status = await refreshStatus().catch(() => null);
  while (status && !status.ready) {
    busy(true);
    await new Promise((resolve) => setTimeout(resolve, 1000));
    status = await refreshStatus().catch(() => null);
  }
  busy(false);
}

$("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  token = $("token").value.trim();
  sessionStorage.setItem(TOKEN_KEY, token);
  $("token").value = "";
  try {
    await refreshStatus();
  } catch (e) {
    showLogin(e.status === 401 ? "That token was not accepted." : e.message);
    return;
  }
  start();
});

$("sign-out").addEventListener("click", () => showLogin());

async function refreshStatus() {
  const s = await api("/v1/status");
  const parts = [`${s.documents} documents`, `${s.chunks} chunks`];
  if (!s.ready) parts.push("loading models…");
  if (s.jobs_pending) parts.push(`${s.jobs_pending} job(s) running`);
  $("index-status").textContent = parts.join(" · ");
  return s;
}

// --- search and ask -----------------------------------------------------------------------------

function queryTerms(query) {
  return [...new Set(query.toLowerCase().match(/[\p{L}\p{N}]{3,}/gu) || [])];
}

// Text with the query's words marked, as nodes.
function highlighted(text, terms) {
  const out = document.createDocumentFragment();
  if (!terms.length) { out.append(text); return out; }
  const escaped = terms.map((t) => t.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
  const pattern = new RegExp(`(${escaped.join("|")})`, "giu");
  let last = 0;
  for (const match of text.matchAll(pattern)) {
    out.append(text.slice(last, match.index), el("mark", { text: match[0] }));
    last = match.index + match[0].length;
  }
  out.append(text.slice(last));
  return out;
}

function where(item) {
  const parts = [];
  if (item.section && item.section.length) parts.push(item.section.join(" › "));
  const first = item.page, last = item.page_end;
  if (first) parts.push(last && last !== first ? `pages ${first}–${last}` : `page ${first}`);
  return parts.join(" · ");
}

function sourceButton(item, label) {
  return el("button", {
    type: "button", class: "source", text: label,
    onclick: () => openDocument(item.doc_id, item.char_start, item.char_end),
  });
}

function clip(text, n) {
  return text.length > n ? `${text.slice(0, n)}…` : text;
}

function requestBody() {
  const body = { k: Number($("k").value) || 5 };
  if ($("mode").value) body.mode = $("mode").value;
  return body;
}

function busy(on) {
  $("search-button").disabled = on;
  $("ask-button").disabled = on;
}

$("query-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const query = $("query").value.trim();
  if (!query) return;
  $("query-error").textContent = "";
  $("answer").hidden = true;
  busy(true);
  try {
    const data = await api("/v1/search", { method: "POST", body: { query, ...requestBody() } });
    const terms = queryTerms(query);
    $("hits").replaceChildren(...data.hits.map((hit) => el("li", {},
      sourceButton(hit, hit.title || hit.path),
      el("p", { class: "meta", text: where(hit) }),
      el("p", { class: "snippet" }, highlighted(clip(hit.text, 600), terms)))));
    if (!data.hits.length) $("hits").append(el("li", { text: "Nothing found." }));
    $("results").hidden = false;
  } catch (e) {
    $("query-error").textContent = e.message;
  } finally {
    busy(false);
  }
});

// A streamed ask: server-sent events read from a fetch body (EventSource cannot send a bearer header).
async function* events(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let name = "message", data = "";
      for (const line of block.split("\n")) {
        if (line.startsWith("event: ")) name = line.slice(7);
        else if (line.startsWith("data: ")) data += line.slice(6);
      }
      yield [name, JSON.parse(data)];
    }
  }
}

function showCitations(answer) {
  $("citations").replaceChildren(...answer.citations.map((c) => el("li", { value: c.number },
    sourceButton(c, c.title || c.path),
    el("p", { class: "meta", text: [where(c), `${Math.round(c.attention * 100)}% of the answer's attention`].filter(Boolean).join(" · ") }),
    el("p", { class: "snippet", text: clip(c.text, 400) }))));
  $("citations-heading").hidden = !answer.citations.length;
  const t = answer.timings || {};
  const meta = [`attention: ${answer.attention}`];
  if (t.ttft_s !== undefined) meta.push(`first token after ${t.ttft_s.toFixed(1)} s`);
  $("answer-meta").textContent = answer.abstained ? "Nothing relevant was found in the documents." : meta.join(" · ");
}

$("ask-button").addEventListener("click", async () => {
  const question = $("query").value.trim();
  if (!question) { $("query").focus(); return; }
  $("query-error").textContent = "";
  $("results").hidden = true;
  $("answer").hidden = false;
  $("answer-text").textContent = "";
  $("answer-text").classList.add("streaming");
  $("answer-text").dataset.streamedTokens = "0";  // tokens shown before the whole answer came
  $("answer-meta").textContent = "Reading…";
  $("citations").replaceChildren();
  $("citations-heading").hidden = true;
  busy(true);
  try {
    const response = await fetch("/v1/ask", {
      method: "POST", headers: headers(true), body: JSON.stringify({ question, ...requestBody(), stream: true }),
    });
    if (!response.ok) {
      const data = await response.json().catch(() => ({}));
      if (response.status === 401) showLogin();
      throw new Error((data.error && data.error.message) || `HTTP ${response.status}`);
    }
    for await (const [name, data] of events(response)) {
      if (name === "token") {
        $("answer-text").append(data.text);
        $("answer-text").dataset.streamedTokens = Number($("answer-text").dataset.streamedTokens) + 1;
      }
      else if (name === "answer") {
        $("answer-text").textContent = data.text;
        showCitations(data);
      } else if (name === "error") throw new Error(data.message);
    }
  } catch (e) {
    $("query-error").textContent = e.message;
    $("answer-meta").textContent = "";
  } finally {
    $("answer-text").classList.remove("streaming");
    busy(false);
  }
});

// --- the reader pane ----------------------------------------------------------------------------

// Document text from `offset`, with chars [start, end) of the document marked.
function markedText(text, offset, start, end) {
  const a = Math.max(0, Math.min(text.length, start - offset));
  const b = Math.max(a, Math.min(text.length, end - offset));
  const out = document.createDocumentFragment();
  out.append(text.slice(0, a));
  if (b > a) out.append(el("mark", { class: "cited", text: text.slice(a, b) }));
  out.append(text.slice(b));
  return out;
}

async function openDocument(docId, start, end) {
  try {
    const doc = await api(`/v1/documents/${docId}/text?start=${start}&end=${end}`);
    $("reader-title").textContent = doc.title || doc.path;
    const box = $("reader-text");
    box.replaceChildren();
    if (doc.pages.length) {  // a PDF: the pages the span is on, each labelled
      const pages = doc.pages.map((p) => p.page);
      $("reader-where").textContent = `${doc.path} · ${pages.length > 1 ? `pages ${pages[0]}–${pages.at(-1)}` : `page ${pages[0]}`}`;
      for (const p of doc.pages) {
        box.append(el("span", { class: "page-label", text: `Page ${p.page}` }),
          markedText(doc.text.slice(p.start - doc.offset, p.end - doc.offset), p.start, start, end));
      }
    } else {
      const shown = doc.offset > 0 || doc.offset + doc.text.length < doc.length;
      $("reader-where").textContent = `${doc.path} · chars ${start}–${end} of ${doc.length}${shown ? " (the text round them)" : ""}`;
      box.append(markedText(doc.text, doc.offset, start, end));
    }
    $("reader").hidden = false;
    const mark = box.querySelector("mark.cited");
    if (mark) mark.scrollIntoView({ block: "start" });  // a long span reads from its first words
    box.focus({ preventScroll: true });
  } catch (e) {
    $("query-error").textContent = e.message;
  }
}

$("reader-close").addEventListener("click", () => { $("reader").hidden = true; });
document.addEventListener("keydown", (event) => {
  if (event.key === "Escape" && !$("reader").hidden) $("reader").hidden = true;
});

// --- documents, uploads and jobs ----------------------------------------------------------------

async function refreshDocuments() {
  const data = await api("/v1/documents");
  $("documents").tBodies[0].replaceChildren(...data.documents.map((d) => el("tr", {},
    el("td", { text: d.title || d.path, title: d.path }),
    el("td", { text: d.format }),
    el("td", { text: String(d.n_chunks) }),
    el("td", {}, el("button", {
      type: "button", class: "remove", text: "Remove", "aria-label": `Remove ${d.title || d.path}`,
      onclick: () => remove(d),
    })))));
}

function jobLine(label) {
  const line = el("li", { text: label });
  $("jobs").prepend(line);
  return line;
}

async function follow(job, line, label) {
  for (;;) {
    const j = await api(`/v1/jobs/${job.id}`);
    if (j.state === "done" || j.state === "failed") {
      line.textContent = j.state === "done" ? `${label}: done` : `${label}: failed: ${j.error}`;
      line.className = j.state;
      break;
    }
    const p = j.progress || {};
    const progress = p.files !== undefined ? ` (files ${p.files_done}/${p.files}, ${p.chunks_embedded} chunks embedded)` : "";
    line.textContent = `${label}: ${j.state}${progress}`;
    await new Promise((resolve) => setTimeout(resolve, 400));
  }
  await Promise.all([refreshDocuments(), refreshStatus()]);
}

async function remove(doc) {
  const label = `Removing ${doc.title || doc.path}`;
  const line = jobLine(label);
  try {
    const data = await api(`/v1/documents/${doc.id}`, { method: "DELETE" });
    await follow(data.job, line, label);
  } catch (e) {
    line.textContent = `${label}: ${e.message}`;
    line.className = "failed";
  }
}

function base64(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result.slice(reader.result.indexOf(",") + 1));
    reader.onerror = () => reject(new Error(`${file.name}: could not be read`));
    reader.readAsDataURL(file);
  });
}

async function upload(files) {
  for (const file of files) {
    const label = `Indexing ${file.name}`;
    const line = jobLine(`${label}: uploading`);
    try {
      const body = { filename: file.name, content_base64: await base64(file) };
      const data = await api("/v1/documents", { method: "POST", body });
      await follow(data.job, line, label);
    } catch (e) {
      line.textContent = `${label}: ${e.message}`;
      line.className = "failed";
    }
  }
}

const zone = $("dropzone");
zone.addEventListener("dragover", (event) => { event.preventDefault(); zone.classList.add("over"); });
zone.addEventListener("dragleave", () => zone.classList.remove("over"));
zone.addEventListener("drop", (event) => {
  event.preventDefault();
  zone.classList.remove("over");
  upload([...event.dataTransfer.files]);
});
zone.addEventListener("keydown", (event) => {
  if (event.key === "Enter" || event.key === " ") { event.preventDefault(); $("file-input").click(); }
});
$("file-input").addEventListener("change", (event) => {
  upload([...event.target.files]);
  event.target.value = "";
});

start();
