// One token on the API Tokens page: its facts, the Privilege and Default App State
// drop-downs (offering only what the caller may grant), its description, Retire, Promote,
// One-Step-Install, and the application names recorded under it with their state.
import { create } from "@bufbuild/protobuf";
import { FieldMaskSchema } from "@bufbuild/protobuf/wkt";
import { AppState, Privilege, TokenState, TokenType, type Application, type Token } from "./gen/apitokens/v1/resources_pb";
import { TokenSchema } from "./gen/apitokens/v1/resources_pb";
import { describe, failure, tokens } from "./api";
import { canWrite, isAdmin, memberName, type Ctx } from "./context";
import { confirmAction, copyable, showPanel } from "./dialog";
import { impact } from "./preview";
import { announce, field, h, replace, select } from "./dom";
import { APP_STATES, PRIVILEGES, appStateName, privilegeName, tokenStateName, tokenTypeName, when } from "./format";

export function tokenTitle(t: Token): string {
  return t.description.trim() !== "" ? t.description : `Token ${t.id.slice(0, 8)}`;
}

/** A token's card; `update` re-renders it in place, keeping focus. */
export class TokenCard {
  readonly el: HTMLElement;
  private readonly apps: HTMLElement;

  constructor(
    private readonly ctx: Ctx,
    private token: Token,
  ) {
    this.el = h("article", { class: "token", "aria-labelledby": `title-${token.id}`, data: { tokenId: token.id } });
    this.apps = h("section", { class: "apps", "aria-label": `Applications of ${tokenTitle(token)}` });
    this.render();
  }

  update(token: Token): void {
    this.token = token;
    this.ctx.tokenCache.set(token.id, token);
    this.render();
  }

  /** May the caller change this token (owner or Admin, not Read-Only, not retired)? */
  private get editable(): boolean {
    return canWrite(this.ctx) && this.token.state === TokenState.ACTIVE;
  }

  private render(): void {
    const t = this.token;
    const retired = t.state === TokenState.RETIRED;
    const facts: [string, Node | string][] = [
      ["Type", `${tokenTypeName(t.type)} token`],
      ["Owner", t.type === TokenType.USER ? memberName(this.ctx, t.ownerUserId) : "the account"],
      ["Effective privilege", privilegeName(t.effectivePrivilege)],
      ["State", tokenStateName(t.state)],
      ["Created", when(t.createTime)],
      ["Last used", when(t.lastUsedTime)],
    ];
    if (t.boundCidrs.length > 0) facts.push(["Usable from", t.boundCidrs.join(", ")]);
    if (t.expireTime) facts.push(["Expires", when(t.expireTime)]);
    if (t.rotateTime) facts.push(["Rotated", when(t.rotateTime)]);
    if (t.promoteTime) facts.push(["Promoted", when(t.promoteTime)]);
    if (t.retireTime) facts.push(["Retired", when(t.retireTime)]);

    replace(
      this.el,
      h(
        "header",
        { class: "token-head" },
        h("h2", { id: `title-${t.id}` }, tokenTitle(t)),
        h("span", { class: `badge ${t.type === TokenType.ACCOUNT ? "badge-account" : "badge-user"}` }, `${tokenTypeName(t.type)} token`),
        retired ? h("span", { class: "badge badge-retired" }, "Retired") : null,
        h("span", { class: "token-id" }, h("span", { class: "sr-only" }, "Token id "), h("code", null, t.id)),
      ),
      h("dl", { class: "facts" }, facts.map(([k, v]) => h("div", null, h("dt", null, k), h("dd", null, v)))),
      h("div", { class: "controls" }, this.privilegeControl(), this.defaultStateControl(), this.descriptionControl()),
      h("div", { class: "actions" }, this.actionButtons()),
      this.apps,
    );
    this.renderApps();
  }

  private privilegeControl(): HTMLElement {
    const t = this.token;
    // Only what the caller may grant; a higher current value is shown, not offered.
    const options: [string, string, boolean][] = PRIVILEGES.map(([p, label]) => [String(p), label, p > this.ctx.privilege]);
    return select("Privilege", `priv-${t.id}`, String(t.privilege), options, (v) => this.change({ privilege: Number(v) as Privilege }, ["privilege"]), !this.editable);
  }

  private defaultStateControl(): HTMLElement {
    const t = this.token;
    const options: [string, string][] = APP_STATES.map(([s, label]) => [String(s), label]);
    return select(
      "Default App State",
      `das-${t.id}`,
      String(t.defaultAppState),
      options,
      (v) => this.change({ defaultAppState: Number(v) as AppState }, ["default_app_state"]),
      !this.editable,
    );
  }

  private descriptionControl(): HTMLElement {
    const t = this.token;
    const input = h("input", { type: "text", value: t.description, maxlength: 1000, disabled: !this.editable, data: { key: `desc-${t.id}` } });
    const form = h(
      "form",
      {
        class: "describe",
        on: {
          submit: (e) => {
            e.preventDefault();
            if (input.value !== t.description) void this.change({ description: input.value }, ["description"]);
          },
        },
      },
      field("Description", input),
      this.editable ? h("button", { type: "submit", class: "secondary", data: { key: `desc-save-${t.id}` } }, "Save") : null,
    );
    return form;
  }

  private actionButtons(): (HTMLElement | null)[] {
    const t = this.token;
    if (!this.editable) return [];
    const title = tokenTitle(t);
    return [
      h("button", { type: "button", class: "secondary", data: { key: `install-${t.id}` }, on: { click: () => void this.install() } }, "One-Step-Install"),
      isAdmin(this.ctx) && t.type === TokenType.USER
        ? h("button", { type: "button", class: "secondary", data: { key: `promote-${t.id}` }, "aria-label": `Promote ${title}`, on: { click: () => void this.promote() } }, "Promote")
        : null,
      h("button", { type: "button", class: "danger", data: { key: `retire-${t.id}` }, "aria-label": `Retire ${title}`, on: { click: () => void this.retire() } }, "Retire"),
    ];
  }

  private async change(values: Partial<Pick<Token, "privilege" | "defaultAppState" | "description">>, paths: string[]): Promise<void> {
    try {
      const res = await tokens.updateToken({
        token: create(TokenSchema, { id: this.token.id, ...values }),
        updateMask: create(FieldMaskSchema, { paths }),
      });
      if (res.token) this.update(res.token);
      announce(`Saved: ${tokenTitle(this.token)}.`);
    } catch (err) {
      announce(`Not saved: ${describe(failure(err))}`, "error");
      this.render(); // the drop-down shows what the server holds again
    }
  }

  private async retire(): Promise<void> {
    const title = tokenTitle(this.token);
    let preview;
    try {
      // Who would notice, and whether the caller may: asked of the server, nothing changes.
      preview = (await tokens.retireToken({ id: this.token.id, validateOnly: true })).preview;
    } catch (err) {
      announce(`Cannot retire: ${describe(failure(err))}`, "error");
      return;
    }
    if (preview && !preview.permitted) {
      announce(`Cannot retire: ${preview.deniedMessage}`, "error");
      return;
    }
    const ok = await confirmAction(
      `Retire ${title}?`,
      [
        h("p", null, "Every application using this token is refused from now on."),
        this.token.id === this.ctx.callerTokenId ? h("p", { class: "strong" }, "You are signed in with this token: the console signs out.") : null,
        impact(preview),
        h("p", { class: "strong" }, "This cannot be undone: a retired token never works again."),
      ],
      "Retire token",
    );
    if (!ok) return;
    try {
      const res = await tokens.retireToken({ id: this.token.id });
      if (res.token) this.update(res.token);
      announce(`Retired: ${title}.`);
    } catch (err) {
      announce(`Not retired: ${describe(failure(err))}`, "error");
    }
  }

  private async promote(): Promise<void> {
    const title = tokenTitle(this.token);
    const owner = memberName(this.ctx, this.token.ownerUserId);
    const ok = await confirmAction(
      `Promote ${title} to an account token?`,
      [
        h("p", null, `It will belong to the account instead of ${owner}, and keep working if ${owner} leaves. Applications using it need no change.`),
        h("p", null, "It keeps the lower of its privilege and its owner's role: promotion never raises what it can do."),
        h("p", { class: "strong" }, "This cannot be undone: an account token cannot be demoted back to a user token."),
      ],
      "Promote token",
    );
    if (!ok) return;
    try {
      const res = await tokens.promoteToken({ id: this.token.id });
      if (res.token) this.update(res.token);
      announce(`Promoted to an account token: ${title}.`);
    } catch (err) {
      announce(`Not promoted: ${describe(failure(err))}`, "error");
    }
  }

  private async install(): Promise<void> {
    try {
      const res = await tokens.getInstallCommand({ tokenId: this.token.id });
      showPanel(`One-Step-Install with ${tokenTitle(this.token)}`, [
        h("p", null, "Run this on a host to install the agent with this token. It reads the token's secret from the environment variable ", h("code", null, res.keyEnvVar), " (the secret is never stored, so it cannot be shown here); set it first."),
        copyable("install command", res.command, `cmd-${this.token.id}`),
        h("p", null, "The installer's application name ", h("code", null, res.appName), " is now allowed on this token."),
        h("details", null, h("summary", null, "Configuration file (cosi.json)"), copyable("configuration", res.configJson, `cfg-${this.token.id}`)),
      ]);
    } catch (err) {
      announce(`No install command: ${describe(failure(err))}`, "error");
    }
  }

  renderApps(): void {
    const t = this.token;
    const live = this.ctx.live;
    const apps = live.of(t.id);
    let body: HTMLElement;
    if (!live.ready) body = h("p", { class: "muted" }, "Loading applications…");
    else if (apps.length === 0) body = h("p", { class: "muted" }, "No application has used this token yet.");
    else body = h("ul", { class: "app-list" }, apps.map((a) => this.appRow(a)));
    replace(this.apps, h("h3", null, `Applications (${live.ready ? apps.length : "…"})`), body);
  }

  private appRow(app: Application): HTMLElement {
    return h(
      "li",
      { class: `app app-${appStateName(app.state).toLowerCase()}` },
      h("span", { class: "app-name" }, app.name),
      appStateControl(this.ctx, app, this.editable),
      h("span", { class: "evidence" }, evidence(app)),
    );
  }
}

/** What the service has seen of an application's calls (approximate: written behind). */
export function evidence(app: Application): (string | Node)[] {
  const out: (string | Node)[] = ["first seen ", when(app.firstSeenTime, "—"), " · last seen ", when(app.lastSeenTime, "—")];
  const e = app.evidence;
  if (e) {
    out.push(` · ${e.allowedCount} allowed · ${e.refusedAttempts} refused`);
    if (e.lastClientAddress) out.push(" · last from ", h("code", null, e.lastClientAddress));
  }
  const c = app.conditions;
  if (c && app.state === AppState.ALLOW) {
    const parts: (string | Node)[] = [];
    if (c.expireTime) parts.push(" · allowed until ", when(c.expireTime));
    if (c.maxPrivilege) parts.push(` · at most ${privilegeName(c.maxPrivilege)}`);
    if (c.clientCidrs.length > 0) parts.push(` · only from ${c.clientCidrs.join(", ")}`);
    out.push(...parts);
  }
  return out;
}

/** The Allow / Pending / Deny drop-down of one application name. */
export function appStateControl(ctx: Ctx, app: Application, editable: boolean): HTMLElement {
  const options: [string, string][] = APP_STATES.map(([s, label]) => [String(s), label]);
  return select(
    `State of ${app.name}`,
    `app-${app.tokenId}-${app.name}`,
    String(app.state),
    options,
    (v) => void setAppState(ctx, app, Number(v) as AppState),
    !editable,
    true,
  );
}

export async function setAppState(ctx: Ctx, app: Application, state: AppState): Promise<void> {
  try {
    const res = await tokens.setApplicationState({ tokenId: app.tokenId, name: app.name, state });
    if (res.application) ctx.live.put(res.application);
    announce(`${app.name}: ${appStateName(state)}.`);
  } catch (err) {
    announce(`Not changed: ${describe(failure(err))}`, "error");
    ctx.live.put(app);
  }
}
