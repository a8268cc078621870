// The audit log (Admins): every change, newest first, with who made it and the target
// before and after, a page at a time.
import type { AuditEvent } from "./gen/apitokens/v1/resources_pb";
import { describe, failure, tokens } from "./api";
import { memberName, type Ctx } from "./context";
import { announce, h, replace } from "./dom";
import { when } from "./format";

const PAGE_SIZE = 50;

export class AuditPage {
  private readonly body = h("tbody");
  private readonly more = h("div", { class: "pager" });
  private next = "";

  constructor(private readonly ctx: Ctx) {}

  async mount(main: HTMLElement): Promise<void> {
    replace(
      main,
      h("h1", null, "Audit log"),
      h("p", { class: "help" }, "Every change made through the API, newest first, recorded in the same transaction as the change."),
      h(
        "table",
        { class: "table audit" },
        h("caption", { class: "sr-only" }, "Audit events"),
        h("thead", null, h("tr", null, ["Time", "Actor", "Action", "Target", "Change"].map((c) => h("th", { scope: "col" }, c)))),
        this.body,
      ),
      this.more,
    );
    await this.load("");
  }

  unmount(): void {}

  private async load(pageToken: string): Promise<void> {
    try {
      const res = await tokens.listAuditEvents({ pageSize: PAGE_SIZE, pageToken });
      this.body.append(...res.auditEvents.map((e) => this.row(e)));
      this.next = res.nextPageToken;
      replace(
        this.more,
        this.next
          ? h("button", { type: "button", class: "secondary", data: { key: "older" }, on: { click: () => void this.load(this.next) } }, "Older events")
          : h("span", { class: "muted" }, "The beginning of the log."),
      );
    } catch (err) {
      announce(`Cannot read the audit log: ${describe(failure(err))}`, "error");
    }
  }

  private row(e: AuditEvent): HTMLElement {
    const actor = e.actorUserId ? memberName(this.ctx, e.actorUserId) : e.actorTokenId ? "an account token" : "the command line";
    const json = (s: AuditEvent["before"]) => (s ? JSON.stringify(s, null, 2) : "—");
    return h(
      "tr",
      null,
      h("td", null, when(e.createTime)),
      h("td", null, actor),
      h("td", null, h("code", null, e.action)),
      h("td", null, `${e.targetType} `, h("code", { class: "wrap" }, e.targetId)),
      h(
        "td",
        null,
        h("ul", { class: "changes" }, changes(e.before, e.after).map((c) => h("li", null, c)), e.reason ? h("li", null, `reason: ${e.reason}`) : null),
        h("details", null, h("summary", null, "Before and after"), h("div", { class: "diff" }, h("pre", null, json(e.before)), h("pre", null, json(e.after)))),
      ),
    );
  }
}

type Fields = AuditEvent["before"];
/** Ids and times are in the row already, or noise. */
const NOISE = /(^id$|_id$|_time$)/;
const show = (v: unknown) => (v === undefined || v === null ? "none" : typeof v === "string" ? v : JSON.stringify(v));

/** What changed, one line a field: "role: read_only → normal"; a creation lists what it set. */
function changes(before: Fields, after: Fields): string[] {
  if (!before && after) {
    const set = Object.entries(after).filter(([k]) => !NOISE.test(k));
    return [`created${set.length ? ": " : ""}${set.map(([k, v]) => `${k} ${show(v)}`).join(", ")}`];
  }
  if (before && !after) return ["removed"];
  const b = before ?? {};
  const a = after ?? {};
  return [...new Set([...Object.keys(b), ...Object.keys(a)])]
    .filter((k) => !NOISE.test(k) && JSON.stringify(b[k]) !== JSON.stringify(a[k]))
    .map((k) => `${k}: ${show(b[k])} → ${show(a[k])}`);
}
