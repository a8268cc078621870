// Modal dialogs on the page's one <dialog>: a confirmation for what cannot be undone, and a
// panel that shows something (an install command). The browser's <dialog> traps focus,
// closes on Escape and gives focus back to the control that opened it.
import { h, type Children } from "./dom";

function dialogElement(): HTMLDialogElement {
  const el = document.getElementById("dialog");
  if (!(el instanceof HTMLDialogElement)) throw new Error("index.html has no <dialog id=dialog>");
  return el;
}

/** Asks; resolves true only when the confirming button is pressed. */
export function confirmAction(title: string, body: Children, confirmLabel: string): Promise<boolean> {
  const dialog = dialogElement();
  const opener = document.activeElement instanceof HTMLElement ? document.activeElement : null;
  return new Promise((resolve) => {
    let answer = false;
    const cancel = h("button", { type: "button", class: "secondary", on: { click: () => dialog.close() } }, "Cancel");
    const confirm = h(
      "button",
      { type: "button", class: "danger", on: { click: () => ((answer = true), dialog.close()) } },
      confirmLabel,
    );
    dialog.replaceChildren(
      h("h2", { id: "dialog-title" }, title),
      h("div", { class: "dialog-body" }, body),
      h("div", { class: "dialog-actions" }, cancel, confirm),
    );
    dialog.setAttribute("aria-labelledby", "dialog-title");
    dialog.addEventListener(
      "close",
      () => {
        opener?.focus();
        resolve(answer);
      },
      { once: true },
    );
    dialog.showModal();
    cancel.focus();
  });
}

/** Shows content with a Close button. */
export function showPanel(title: string, body: Children): void {
  const dialog = dialogElement();
  const opener = document.activeElement instanceof HTMLElement ? document.activeElement : null;
  const close = h("button", { type: "button", on: { click: () => dialog.close() } }, "Close");
  dialog.replaceChildren(
    h("h2", { id: "dialog-title" }, title),
    h("div", { class: "dialog-body" }, body),
    h("div", { class: "dialog-actions" }, close),
  );
  dialog.setAttribute("aria-labelledby", "dialog-title");
  dialog.addEventListener("close", () => opener?.focus(), { once: true });
  dialog.showModal();
  close.focus();
}

/** A read-only block of text with a Copy button (the clipboard, or a selection to copy by hand). */
export function copyable(label: string, text: string, key: string): HTMLElement {
  const code = h("code", { class: "copy-text", data: { copy: key } }, text);
  const status = h("span", { class: "copy-status", role: "status" });
  const button = h(
    "button",
    {
      type: "button",
      class: "secondary",
      data: { key: `copy-${key}` },
      "aria-label": `Copy ${label}`,
      on: {
        click: async () => {
          try {
            await navigator.clipboard.writeText(text);
            status.textContent = "Copied";
          } catch {
            const range = document.createRange();
            range.selectNodeContents(code);
            const selection = getSelection();
            selection?.removeAllRanges();
            selection?.addRange(range);
            status.textContent = "Selected: press Ctrl+C to copy";
          }
        },
      },
    },
    "Copy",
  );
  return h("div", { class: "copyable" }, h("pre", null, code), h("div", { class: "copy-row" }, button, status));
}
