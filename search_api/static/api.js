// Talking to the API: the tenant key, requests with it, and the API's errors as sentences.
// The key lives in sessionStorage (this tab only, gone when it closes) and is sent in the
// X-API-Key header or the status socket's subprotocols, never in a URL.

const KEY_ITEM = "deeplens.apiKey";

export function apiKey() {
  return sessionStorage.getItem(KEY_ITEM);
}

export function setApiKey(key) {
  if (key) sessionStorage.setItem(KEY_ITEM, key);
  else sessionStorage.removeItem(KEY_ITEM);
}

/** An answer other than 2xx, with the sentence to show (the API's `detail`). */
export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** `detail` as one sentence: a string as it is, FastAPI's validation list as its messages. */
function describe(detail) {
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) {
    return detail.map((d) => (d.loc ? `${d.loc.slice(1).join(".")}: ${d.msg}` : d.msg)).join("; ");
  }
  return JSON.stringify(detail);
}

/** When to try again after a 429/503, from Retry-After (seconds or an HTTP date). */
function retryAfter(response) {
  const value = response.headers.get("Retry-After");
  if (!value) return "";
  const seconds = /^\d+$/.test(value) ? Number(value) : (Date.parse(value) - Date.now()) / 1000;
  if (!Number.isFinite(seconds)) return "";
  const at = new Date(Date.now() + Math.max(0, seconds) * 1000).toLocaleTimeString();
  return ` Try again in ${Math.max(1, Math.ceil(seconds))} s (at ${at}).`;
}

async function failure(response) {
  let detail = `${response.status} ${response.statusText}`;
  try {
    const body = await response.json();
    if (body && body.detail !== undefined) detail = describe(body.detail);
  } catch {
    // not JSON: the status line says it
  }
  const prefix = response.status === 429 ? "Too many requests: " : "";
  return new ApiError(response.status, prefix + detail + retryAfter(response));
}

/** fetch() with the key; the answer when 2xx, else an ApiError carrying the API's detail. */
export async function call(path, options = {}) {
  const headers = new Headers(options.headers || {});
  const key = apiKey();
  if (key) headers.set("X-API-Key", key);
  let response;
  try {
    response = await fetch(path, { ...options, headers });
  } catch (error) {
    throw new ApiError(0, `The API cannot be reached: ${error.message}`);
  }
  if (!response.ok) throw await failure(response);
  return response;
}

export async function json(path, options = {}) {
  const response = await call(path, options);
  return response.status === 204 ? null : response.json();
}

/** A blob: URL of an image's thumbnail: <img src> can't send the key header, fetch() can. */
export async function thumbnail(url) {
  const response = await call(url);
  return URL.createObjectURL(await response.blob());
}

/** The status socket's URL (same origin), for `new WebSocket(url, protocols(key))`. */
export function socketUrl(path) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}${path}`;
}

export function protocols() {
  return ["deeplens", `deeplens.key.${apiKey()}`];
}
