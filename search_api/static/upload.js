// Uploads: one row per file with a progress bar, first for the bytes (XMLHttpRequest reports
// them; fetch() does not), then for the processing, which the status socket pushes as it
// changes. A key may hold 16 sockets per API process, so at most SOCKETS are open at once and
// the other rows wait their turn.

import { apiKey, ApiError, json, protocols, socketUrl } from "./api.js";
import { el } from "./cards.js";

const SOCKETS = 8;
const POLL_MS = 2000; // when a socket closes early (refused, the API restarted): ask instead
const TERMINAL = new Set(["completed", "failed"]);
let open = 0;
const waiting = [];

/** One file's row: name, a progress bar and its state in words. */
function row(list, file) {
  const bar = el("progress", { max: "100", value: "0", "aria-label": `${file.name} progress` });
  const state = el("span", { class: "state", text: "waiting" });
  const item = el("li", { "data-file": file.name }, el("span", { text: file.name }), bar, state);
  list.append(item);
  return {
    item,
    show(text, percent, status) {
      state.textContent = text;
      state.className = `state state-${status || "pending"}`;
      item.dataset.status = status || "pending";
      if (percent !== undefined) bar.value = percent;
    },
  };
}

/** POST one file with its progress; the 202's body, or an ApiError with the API's detail. */
function send(file, fields, onProgress) {
  return new Promise((resolve, reject) => {
    const form = new FormData();
    form.append("file", file, file.name);
    for (const [name, value] of Object.entries(fields)) if (value) form.append(name, value);
    const request = new XMLHttpRequest();
    request.open("POST", "/api/v1/images");
    request.setRequestHeader("X-API-Key", apiKey());
    request.responseType = "json";
    request.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) onProgress(event.loaded / event.total);
    });
    request.addEventListener("error", () => reject(new ApiError(0, "the API cannot be reached")));
    request.addEventListener("load", () => {
      const body = request.response || {};
      if (request.status >= 200 && request.status < 300) return resolve(body);
      let detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
      const after = request.getResponseHeader("Retry-After");
      if (request.status === 429 && after) detail += ` Try again in ${after} s.`;
      reject(new ApiError(request.status, detail || `${request.status}`));
    });
    request.send(form);
  });
}

function nextSocket() {
  open -= 1;
  const start = waiting.shift();
  if (start) start();
}

/** Ask for the status every POLL_MS until it ends (or the API refuses to say). */
async function poll(imageId, view) {
  for (;;) {
    let status;
    try {
      status = await json(`/api/v1/images/${imageId}/status`);
    } catch (error) {
      view({ status: "unknown", reason: error.message });
      return;
    }
    view(status);
    if (TERMINAL.has(status.status)) return;
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

/** Follow one image's status over the socket until it ends; `view` gets each status view. */
function follow(imageId, view) {
  const start = () => {
    open += 1;
    let ended = false;
    const socket = new WebSocket(socketUrl(`/hub/processing-status?imageId=${imageId}`), protocols());
    socket.addEventListener("message", (event) => {
      const status = JSON.parse(event.data);
      if (status.success === false) return; // refused (too many sockets...): polled on close
      if (TERMINAL.has(status.status)) ended = true;
      view(status);
    });
    socket.addEventListener("close", () => {
      if (!ended) poll(imageId, view);
      nextSocket();
    });
  };
  if (open < SOCKETS) start();
  else waiting.push(start);
}

/** Upload `files` one after another, each row then following its image's processing. */
export async function uploadAll(list, files, fields, announce) {
  const rows = files.map((file) => [file, row(list, file)]);
  let done = 0;
  const finished = (status) => {
    done += 1;
    if (done === rows.length) announce(`All ${rows.length} uploads finished processing.`);
    return status;
  };
  for (const [file, line] of rows) {
    line.show("uploading", 0, "uploading");
    let accepted;
    try {
      accepted = await send(file, fields, (part) => line.show("uploading", Math.round(part * 30), "uploading"));
    } catch (error) {
      line.show(`refused: ${error.message}`, 0, "failed");
      finished("failed");
      continue;
    }
    line.item.dataset.imageId = accepted.imageId;
    const note = accepted.duplicateOf ? ` (same bytes as ${accepted.duplicateOf})` : "";
    line.show(`${accepted.status}${note}`, 30, accepted.status);
    follow(accepted.imageId, (status) => {
      const percent = 30 + Math.round((status.percentComplete || 0) * 0.7);
      const text = status.reason ? `${status.status}: ${status.reason}` : status.status;
      line.show(text, status.status === "completed" ? 100 : percent, status.status);
      if (TERMINAL.has(status.status) || status.status === "unknown") finished(status.status);
    });
  }
}
