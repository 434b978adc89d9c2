// The search page: sign in with a tenant key, search by image, more like this, browse, review
// duplicate groups, upload. Every request goes to this origin with the key in a header.

import { apiKey, call, json, setApiKey } from "./api.js";
import { card, clear, el } from "./cards.js";
import { uploadAll } from "./upload.js";

const $ = (id) => document.getElementById(id);
const PAGE_SIZE = 24;

// -- messages: errors (role=alert) and progress (role=status) -------------------------------

function announce(text) {
  $("status").textContent = text;
}

function showError(error) {
  const box = $("error");
  box.textContent = error ? error.message : "";
  box.hidden = !error;
}

/** Run `work`, showing what went wrong (the API's detail) instead of failing silently. */
async function guarded(work) {
  showError(null);
  try {
    return await work();
  } catch (error) {
    showError(error);
    announce("");
    return undefined;
  }
}

// -- signing in ------------------------------------------------------------------------------

function showSignedIn() {
  const signedIn = Boolean(apiKey());
  $("sign-in").hidden = signedIn;
  $("signed-in").hidden = !signedIn;
  for (const button of document.querySelectorAll("main button[type=submit], .pager button")) {
    button.disabled = !signedIn;
  }
  if (signedIn) {
    $("browse-prev").disabled = true;
    $("browse-next").disabled = true;
  }
}

$("sign-in").addEventListener("submit", (event) => {
  event.preventDefault();
  const key = $("api-key").value.trim();
  setApiKey(key);
  guarded(async () => {
    await json("/api/v1/images?limit=1"); // a key the API refuses is not kept
    $("api-key").value = "";
    $("tenant-note").textContent = "Signed in with a tenant key";
    showSignedIn();
    announce("Signed in.");
    $("main").focus();
  }).then(() => {
    if ($("signed-in").hidden) setApiKey(null);
  });
});

$("sign-out").addEventListener("click", () => {
  setApiKey(null);
  for (const grid of [$("results"), $("library")]) clear(grid);
  $("groups").replaceChildren();
  showSignedIn();
  announce("Signed out; the key is forgotten.");
  $("api-key").focus();
});

// -- tabs --------------------------------------------------------------------------------------

function showTab(name) {
  for (const button of document.querySelectorAll("[data-tab]")) {
    const on = button.dataset.tab === name;
    if (on) button.setAttribute("aria-current", "page");
    else button.removeAttribute("aria-current");
    $(button.dataset.tab).hidden = !on;
  }
}

for (const button of document.querySelectorAll("[data-tab]")) {
  button.addEventListener("click", () => {
    showTab(button.dataset.tab);
    if (button.dataset.tab === "browse" && apiKey() && !$("library").children.length) browse(0);
  });
}

// -- drop zones: a file dropped on the label goes into its input -----------------------------

for (const zone of document.querySelectorAll("[data-drop]")) {
  const input = $(zone.dataset.drop);
  zone.addEventListener("dragover", (event) => {
    event.preventDefault();
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    input.files = event.dataTransfer.files;
    input.dispatchEvent(new Event("change"));
  });
  input.addEventListener("change", () => {
    const names = [...input.files].map((f) => f.name).join(", ");
    zone.querySelector("span").textContent = names || "Drop an image here, or choose one";
  });
}

// -- search and more like this ---------------------------------------------------------------

/** A metadata value as typed: JSON (a number, true, "quoted text") when it parses, else text. */
function value(text) {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** The filter the search form describes, as the API's JSON; an Error says which line is wrong. */
function filterOf(form) {
  const filter = {};
  const uploadedBy = form.uploadedBy.value.trim();
  if (uploadedBy) filter.uploadedBy = uploadedBy;
  if (form.contentType.value) filter.contentType = form.contentType.value;
  for (const line of form.metadata.value.split("\n").map((l) => l.trim()).filter(Boolean)) {
    const at = line.indexOf("=");
    if (at < 1) throw new Error(`Metadata filter "${line}" is not key=value`);
    filter[`metadata.${line.slice(0, at).trim()}`] = value(line.slice(at + 1).trim());
  }
  return Object.keys(filter).length ? JSON.stringify(filter) : "";
}

function showHits(answer, title) {
  const grid = $("results");
  clear(grid);
  const hits = answer.results;
  $("results-note").textContent = `${title}: ${hits.length} result(s) in ${answer.tookMs} ms${answer.cached ? " (cached)" : ""}.`;
  for (const hit of hits) card(grid, hit, [{ label: "More like this", onClick: moreLikeThis }, deleteAction()]);
  announce(`${hits.length} result(s).`);
}

$("search-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const form = event.target;
  guarded(async () => {
    const file = form.file.files[0];
    if (!file) throw new Error("Choose or drop an image to search with.");
    const body = new FormData();
    body.append("file", file, file.name);
    body.append("topK", form.topK.value || "20");
    const filter = filterOf(form);
    if (filter) body.append("filter", filter);
    if (form.scoreThreshold.value) body.append("scoreThreshold", form.scoreThreshold.value);
    announce("Searching…");
    showHits(await json("/api/v1/search", { method: "POST", body }), `Like ${file.name}`);
  });
});

function moreLikeThis(image) {
  const form = $("search-form");
  guarded(async () => {
    const query = new URLSearchParams({ topK: form.topK.value || "20" });
    const filter = filterOf(form);
    if (filter) query.set("filter", filter);
    if (form.scoreThreshold.value) query.set("scoreThreshold", form.scoreThreshold.value);
    announce(`Looking for images like ${image.fileName}…`);
    const answer = await json(`/api/v1/images/${image.imageId}/similar?${query}`);
    showTab("search");
    showHits(answer, `More like ${image.fileName}`);
    $("results-title").scrollIntoView();
  });
}

// -- deleting --------------------------------------------------------------------------------

async function remove(imageId) {
  await call(`/api/v1/images/${imageId}`, { method: "DELETE" });
}

function deleteAction() {
  return {
    label: "Delete",
    kind: "danger",
    onClick: (image, item) => {
      if (!confirm(`Delete ${image.fileName}? This cannot be undone.`)) return;
      guarded(async () => {
        await remove(image.imageId);
        item.remove();
        announce(`Deleted ${image.fileName}.`);
      });
    },
  };
}

// -- browsing, page by page (cursors) --------------------------------------------------------

const pages = { cursors: [null], at: 0 };

function browse(at) {
  guarded(async () => {
    const query = new URLSearchParams({ limit: String(PAGE_SIZE) });
    if (pages.cursors[at]) query.set("cursor", pages.cursors[at]);
    announce("Loading images…");
    const answer = await json(`/api/v1/images?${query}`);
    pages.at = at;
    pages.cursors.length = at + 1;
    if (answer.nextCursor) pages.cursors.push(answer.nextCursor);
    const grid = $("library");
    clear(grid);
    for (const image of answer.items) {
      const actions = [deleteAction()];
      if (image.status === "completed") actions.unshift({ label: "More like this", onClick: moreLikeThis });
      card(grid, image, actions);
    }
    $("browse-prev").disabled = at === 0;
    $("browse-next").disabled = !answer.nextCursor;
    const note = `Page ${at + 1}: ${answer.items.length} image(s).`;
    $("browse-note").textContent = note;
    announce(note);
  });
}

$("browse-first").addEventListener("click", () => browse(0));
$("browse-prev").addEventListener("click", () => browse(Math.max(0, pages.at - 1)));
$("browse-next").addEventListener("click", () => browse(pages.at + 1));

// -- duplicate groups: keep one, delete the others -------------------------------------------

function group(box, found, number) {
  const fieldset = el("fieldset", { class: "group", "data-group": String(number) });
  const legend = el("legend", {
    text: `Group ${number}: ${found.imageIds.length} images, ${found.tier}, similarity ≥ ${found.score}`,
  });
  const grid = el("ul", { class: "grid" });
  const button = el("button", { type: "button", class: "danger", text: "Keep the chosen one, delete the others" });
  fieldset.append(legend, grid, button);
  box.append(fieldset);
  clear(grid);
  const name = `keep-${number}`;
  return Promise.all(found.imageIds.map((id) => json(`/api/v1/images/${id}`))).then((images) => {
    images.forEach((image, n) => {
      const item = card(grid, image);
      const choice = el("input", { type: "radio", name, value: image.imageId, checked: n === 0 });
      choice.addEventListener("change", () => {
        for (const other of grid.children) other.classList.toggle("keep", other === item);
      });
      item.append(el("label", {}, choice, ` Keep this one`));
      if (n === 0) item.classList.add("keep");
    });
    button.addEventListener("click", () => {
      const keep = fieldset.querySelector(`input[name="${name}"]:checked`).value;
      const doomed = images.filter((image) => image.imageId !== keep);
      if (!confirm(`Delete ${doomed.length} image(s) of this group and keep one?`)) return;
      guarded(async () => {
        for (const image of doomed) await remove(image.imageId);
        fieldset.replaceWith(el("p", { class: "note", text: `Group ${number}: kept one, deleted ${doomed.length}.` }));
        announce(`Deleted ${doomed.length} duplicate(s).`);
      });
    });
  });
}

$("duplicates-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const tier = event.target.tier.value;
  guarded(async () => {
    announce("Loading duplicate groups…");
    const answer = await json(`/api/v1/duplicates?tier=${tier}&limit=20`);
    const box = $("groups");
    box.replaceChildren();
    if (!answer.groups.length) box.append(el("p", { text: `No ${tier} duplicate groups.` }));
    await Promise.all(answer.groups.map((found, n) => group(box, found, n + 1)));
    announce(`${answer.groups.length} ${tier} duplicate group(s).`);
  });
});

// -- uploads -----------------------------------------------------------------------------------

$("upload-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const form = event.target;
  guarded(async () => {
    const files = [...form.files.files];
    if (!files.length) throw new Error("Choose or drop the images to upload.");
    const metadata = form.metadata.value.trim();
    if (metadata) {
      // A typo is said once here, not by every upload refused for it.
      try {
        JSON.parse(metadata);
      } catch (error) {
        throw new Error(`Metadata is not JSON: ${error.message}`);
      }
    }
    announce(`Uploading ${files.length} file(s)…`);
    await uploadAll($("uploads"), files, { uploadedBy: form.uploadedBy.value.trim(), metadata }, announce);
    form.reset();
    form.querySelector(".drop span").textContent = "Drop images here, or choose some";
  });
});

showSignedIn();
if (apiKey()) $("tenant-note").textContent = "Signed in with a tenant key";
