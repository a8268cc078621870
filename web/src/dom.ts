// The one way this console makes DOM: elements from a tag, attributes and children, where
// every string child becomes a text node. Nothing here (or anywhere in the console) parses
// HTML, so a name chosen by whoever holds a token is shown as text, whatever it contains;
// the server's Content-Security-Policy (trusted types 'none') makes any attempt throw.

export type Child = Node | string | number | null | undefined | false;
export type Children = Child | Children[];

type Listener = (event: Event) => void;

export interface Attrs {
  /** Event listeners, added with addEventListener: never inline handler attributes. */
  on?: Partial<Record<keyof HTMLElementEventMap, Listener>>;
  /** Property `value` (inputs, selects). */
  value?: string;
  /** `data-*` attributes, by their name without the prefix. */
  data?: Record<string, string>;
  [attribute: string]: string | number | boolean | undefined | Attrs["on"] | Attrs["data"];
}

/** An element with attributes and children. Strings become text nodes, never markup. */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs?: Attrs | null,
  ...children: Children[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [name, value] of Object.entries(attrs)) {
      if (value === undefined || value === false) continue;
      if (name === "on") {
        for (const [type, listener] of Object.entries(value as Attrs["on"] ?? {})) {
          if (listener) el.addEventListener(type, listener as Listener);
        }
      } else if (name === "data") {
        for (const [key, v] of Object.entries(value as Record<string, string>)) {
          el.dataset[key] = v;
        }
      } else if (name === "value") {
        (el as HTMLInputElement).value = String(value);
      } else if (/^on/i.test(name)) {
        throw new Error(`inline handler attribute ${name}: use "on"`);
      } else {
        el.setAttribute(name, value === true ? "" : String(value));
      }
    }
  }
  append(el, children);
  return el;
}

function append(parent: Node, children: Children): void {
  if (Array.isArray(children)) {
    for (const child of children) append(parent, child);
  } else if (children instanceof Node) {
    parent.appendChild(children);
  } else if (children !== null && children !== undefined && children !== false) {
    parent.appendChild(document.createTextNode(String(children)));
  }
}

/**
 * Replaces an element's children, keeping keyboard focus on the control with the same
 * `data-key` when the new content has one (a live update must not throw the user's focus
 * back to the top of the page).
 */
export function replace(parent: Element, ...children: Children[]): void {
  const active = document.activeElement;
  const key = active instanceof HTMLElement && parent.contains(active) ? active.dataset.key : undefined;
  parent.replaceChildren();
  append(parent, children);
  if (key !== undefined) {
    const again = parent.querySelector<HTMLElement>(`[data-key="${CSS.escape(key)}"]`);
    again?.focus();
  }
}

let fields = 0;

/**
 * A control with its label, tied by `for`/`id` (a label wrapping a control would name it
 * with the control's own value too: "Role Normal" instead of "Role").
 */
export function field(label: string, control: HTMLElement, hideLabel = false): HTMLElement {
  control.id = `field-${++fields}`;
  return h("div", { class: "field" }, h("label", { for: control.id, class: hideLabel ? "sr-only" : "field-label" }, label), control);
}

/** A `<select>` with a label; `options` are [value, label, disabled?]. */
export function select(
  label: string,
  key: string,
  value: string,
  options: [string, string, boolean?][],
  onChange: (value: string) => void,
  disabled = false,
  hideLabel = false,
): HTMLElement {
  const control = h(
    "select",
    {
      data: { key },
      disabled,
      on: { change: (e) => onChange((e.target as HTMLSelectElement).value) },
    },
    options.map(([v, text, off]) => h("option", { value: v, selected: v === value, disabled: off }, text)),
  );
  control.value = value;
  return field(label, control, hideLabel);
}

/** Announces a message to screen readers and shows it in the page's status area. */
export function announce(message: string, kind: "info" | "error" = "info"): void {
  const area = document.getElementById("status");
  if (!area) return;
  replace(area, h("p", { class: kind === "error" ? "status-error" : "status-info", role: kind === "error" ? "alert" : undefined }, message));
}

export function clearStatus(): void {
  const area = document.getElementById("status");
  if (area) area.replaceChildren();
}
