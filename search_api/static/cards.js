// Image cards: a thumbnail (fetched with the key, shown from a blob: URL), what is known of the
// image, and buttons. Built with DOM calls, never innerHTML: file names and metadata are the
// uploaders' text.

import { thumbnail } from "./api.js";

const shown = new WeakMap(); // grid -> the blob: URLs its cards show, revoked on the next render

/** An element with text and attributes. */
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name === "text") node.textContent = value;
    else if (value !== undefined && value !== null && value !== false) node.setAttribute(name, value);
  }
  node.append(...children);
  return node;
}

/** Empty `grid`, letting go of the thumbnails it showed. */
export function clear(grid) {
  for (const url of shown.get(grid) || []) URL.revokeObjectURL(url);
  shown.set(grid, []);
  grid.replaceChildren();
}

function describe(image) {
  const lines = [`${image.width}×${image.height} ${image.contentType}`];
  if (image.uploadedBy) lines.push(`by ${image.uploadedBy}`);
  if (image.uploadedAt) lines.push(new Date(image.uploadedAt).toLocaleString());
  const metadata = Object.entries(image.metadata || {});
  if (metadata.length) {
    lines.push(metadata.map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`).join(", "));
  }
  if (image.status && image.status !== "completed") lines.push(`status: ${image.status}`);
  return lines;
}

/**
 * A card for `image` (a search hit or a listed image) in `grid`, with `actions`:
 * [{label, onClick, kind}] buttons; the thumbnail arrives when fetched.
 */
export function card(grid, image, actions = []) {
  const item = el("li", { class: "card", "data-image-id": image.imageId });
  const holder = el("div", { class: "thumb", role: "img", "aria-label": `${image.fileName} (loading)` });
  item.append(holder);
  item.append(el("span", { class: "name", text: image.fileName }));
  if (image.score !== undefined) {
    item.append(el("span", { class: "score", text: `score ${image.score.toFixed(3)}` }));
  }
  for (const line of describe(image)) item.append(el("p", { class: "meta", text: line }));
  const buttons = el("div", { class: "actions" });
  for (const action of actions) {
    const button = el("button", {
      type: "button",
      class: action.kind || "quiet",
      "aria-label": `${action.label}: ${image.fileName}`,
      text: action.label,
    });
    button.addEventListener("click", () => action.onClick(image, item, button));
    buttons.append(button);
  }
  if (actions.length) item.append(buttons);
  grid.append(item);
  thumbnail(image.thumbnailUrl)
    .then((url) => {
      shown.get(grid)?.push(url);
      holder.replaceWith(el("img", { src: url, alt: image.fileName }));
    })
    .catch((error) => {
      holder.setAttribute("aria-label", `${image.fileName}: no thumbnail (${error.message})`);
    });
  return item;
}
