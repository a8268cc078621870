// The API Tokens page: the applications waiting for approval (live), the menu that creates a
// User or Account token (its secret shown once), and the tokens the caller may see, a page
// at a time, each with its applications.
import { AppState, TokenState, TokenType, type Token } from "./gen/apitokens/v1/resources_pb";
import { describe, failure, tokens } from "./api";
import { canWrite, isAdmin, type Ctx } from "./context";
import { copyable } from "./dialog";
import { announce, h, replace, select } from "./dom";
import { appStateControl, evidence, setAppState, TokenCard, tokenTitle } from "./token_card";

const PAGE_SIZE = 50;

export class TokensPage {
  private readonly list = h("div", { class: "token-list", id: "token-list", "aria-live": "off" });
  private readonly pager = h("nav", { class: "pager", "aria-label": "Token pages" });
  private readonly pending = h("section", { class: "panel pending", "aria-labelledby": "pending-heading", id: "pending" });
  private readonly secret = h("div", { id: "new-secret" });
  /** Tokens created on this page: shown at the top, whatever page of the list they fall on. */
  private readonly fresh = h("div", { class: "token-list", id: "fresh-tokens" });
  private readonly freshCards = new Map<string, TokenCard>();
  private readonly cards = new Map<string, TokenCard>();
  private state: TokenState = TokenState.ACTIVE;
  private type: TokenType = TokenType.UNSPECIFIED;
  /** page_token of each page shown so far; the last is the current page's. */
  private pages: string[] = [""];
  private next = "";
  private unsubscribe: (() => void) | null = null;
  private lookups = new Set<string>();

  constructor(private readonly ctx: Ctx) {}

  async mount(main: HTMLElement): Promise<void> {
    replace(
      main,
      h("div", { class: "page-head" }, h("h1", null, "API Tokens"), this.menu()),
      this.pending,
      this.secret,
      this.fresh,
      h("div", { class: "filters" }, this.filters()),
      this.list,
      this.pager,
    );
    this.unsubscribe = this.ctx.live.subscribe((tokenId) => this.onLive(tokenId));
    this.renderPending();
    await this.load();
  }

  unmount(): void {
    this.unsubscribe?.();
  }

  private menu(): HTMLElement | null {
    if (!canWrite(this.ctx)) return null;
    const items = h("div", { class: "menu-items", id: "new-token-menu", hidden: true });
    const toggle = h(
      "button",
      {
        type: "button",
        id: "new-token",
        "aria-expanded": "false",
        "aria-controls": "new-token-menu",
        on: {
          click: () => {
            const open = items.hidden;
            items.hidden = !open;
            toggle.setAttribute("aria-expanded", String(open));
            if (open) items.querySelector("button")?.focus();
          },
        },
      },
      "New token ▾",
    );
    const close = () => {
      items.hidden = true;
      toggle.setAttribute("aria-expanded", "false");
    };
    items.addEventListener("keydown", (e) => {
      if (e.key === "Escape") {
        close();
        toggle.focus();
      }
    });
    items.append(
      h("button", { type: "button", id: "new-user-token", on: { click: () => (close(), void this.create(TokenType.USER)) } }, "User token"),
      // Account tokens: Admins only, as the Circonus API Tokens page says.
      isAdmin(this.ctx)
        ? h("button", { type: "button", id: "new-account-token", on: { click: () => (close(), void this.create(TokenType.ACCOUNT)) } }, "Account token")
        : "",
    );
    return h("div", { class: "menu" }, toggle, items);
  }

  private filters(): HTMLElement[] {
    const out = [
      select(
        "Show",
        "filter-state",
        String(this.state),
        [
          [String(TokenState.ACTIVE), "Active tokens"],
          [String(TokenState.RETIRED), "Retired tokens"],
          [String(TokenState.UNSPECIFIED), "All tokens"],
        ],
        (v) => {
          this.state = Number(v) as TokenState;
          this.pages = [""];
          void this.load();
        },
      ),
    ];
    if (isAdmin(this.ctx)) {
      out.push(
        select(
          "Type",
          "filter-type",
          String(this.type),
          [
            [String(TokenType.UNSPECIFIED), "User and account"],
            [String(TokenType.USER), "User tokens"],
            [String(TokenType.ACCOUNT), "Account tokens"],
          ],
          (v) => {
            this.type = Number(v) as TokenType;
            this.pages = [""];
            void this.load();
          },
        ),
      );
    }
    return out;
  }

  private async create(type: TokenType): Promise<void> {
    try {
      // An idempotency key: a retry of this very click never makes a second token.
      const res = await tokens.createToken({ type, requestId: crypto.randomUUID() });
      const token = res.token;
      if (!token) return;
      this.ctx.tokenCache.set(token.id, token);
      this.showSecret(token, res.secret);
      const card = new TokenCard(this.ctx, token);
      this.freshCards.set(token.id, card);
      this.fresh.prepend(card.el);
      // Never two cards for one token: the list leaves out the ones shown above it.
      if (this.cards.has(token.id)) await this.load();
    } catch (err) {
      announce(`No token created: ${describe(failure(err))}`, "error");
    }
  }

  private showSecret(token: Token, secret: string): void {
    const done = h("button", { type: "button", class: "secondary", on: { click: () => (this.secret.replaceChildren(), document.getElementById("new-token")?.focus()) } }, "I have stored it");
    replace(
      this.secret,
      h(
        "section",
        { class: "panel secret", "aria-labelledby": "secret-heading", tabindex: "-1", id: "secret-panel" },
        h("h2", { id: "secret-heading" }, `New ${token.type === TokenType.ACCOUNT ? "account" : "user"} token created`),
        h("p", { class: "strong" }, "Copy the secret now: it is shown this once and can never be retrieved again."),
        copyable("secret", secret, "secret"),
        h(
          "p",
          null,
          "It starts with Read-Only privilege and Default App State Pending: set them below to what its use needs, and no more. Token id ",
          h("code", { data: { newTokenId: token.id } }, token.id),
          ".",
        ),
        done,
      ),
    );
    document.getElementById("secret-panel")?.focus();
  }

  private async load(): Promise<void> {
    const pageToken = this.pages[this.pages.length - 1] ?? "";
    this.list.setAttribute("aria-busy", "true");
    try {
      const res = await tokens.listTokens({ pageSize: PAGE_SIZE, pageToken, state: this.state, type: this.type });
      this.next = res.nextPageToken;
      this.cards.clear();
      for (const t of res.tokens) {
        this.ctx.tokenCache.set(t.id, t);
        if (!this.freshCards.has(t.id)) this.cards.set(t.id, new TokenCard(this.ctx, t));
      }
      replace(
        this.list,
        res.tokens.length === 0 ? h("p", { class: "muted" }, "No tokens to show.") : [...this.cards.values()].map((c) => c.el),
      );
      this.renderPager(res.tokens.length);
      this.renderPending();
    } catch (err) {
      announce(`Cannot list tokens: ${describe(failure(err))}`, "error");
    } finally {
      this.list.removeAttribute("aria-busy");
    }
  }

  private renderPager(shown: number): void {
    const page = this.pages.length;
    const first = (page - 1) * PAGE_SIZE + (shown > 0 ? 1 : 0);
    replace(
      this.pager,
      h(
        "button",
        {
          type: "button",
          class: "secondary",
          data: { key: "prev" },
          disabled: page === 1,
          on: { click: () => (this.pages.pop(), void this.load()) },
        },
        "Previous",
      ),
      h("span", { class: "muted" }, shown > 0 ? `Tokens ${first}–${first + shown - 1}` : ""),
      h(
        "button",
        {
          type: "button",
          class: "secondary",
          data: { key: "next" },
          disabled: this.next === "",
          on: { click: () => (this.pages.push(this.next), void this.load()) },
        },
        "Next",
      ),
    );
  }

  private onLive(tokenId: string | null): void {
    for (const cards of [this.cards, this.freshCards]) {
      if (tokenId === null) for (const card of cards.values()) card.renderApps();
      else cards.get(tokenId)?.renderApps();
    }
    this.renderPending();
  }

  /** Applications waiting for approval, on every token the caller may see (retired ones left out). */
  private renderPending(): void {
    const live = this.ctx.live;
    const waiting = live.pending().filter((app) => {
      const token = this.ctx.tokenCache.get(app.tokenId);
      if (!token) this.lookUp(app.tokenId);
      return token?.state !== TokenState.RETIRED;
    });
    const heading = h("h2", { id: "pending-heading" }, `Waiting for approval (${live.ready ? waiting.length : "…"})`);
    const trouble = live.trouble ? h("p", { class: "status-error" }, `Live updates interrupted (${live.trouble}); reconnecting…`) : null;
    if (!live.ready) {
      replace(this.pending, heading, trouble, h("p", { class: "muted" }, "Loading…"));
      return;
    }
    if (waiting.length === 0) {
      replace(this.pending, heading, trouble, h("p", { class: "muted" }, "No application is waiting. New ones appear here as soon as they first use a token."));
      return;
    }
    replace(
      this.pending,
      heading,
      trouble,
      h(
        "ul",
        { class: "pending-list" },
        waiting.map((app) => {
          const token = this.ctx.tokenCache.get(app.tokenId);
          const editable = canWrite(this.ctx);
          return h(
            "li",
            { class: "pending-item" },
            h("span", { class: "app-name" }, app.name),
            h("span", { class: "muted" }, "on ", token ? tokenTitle(token) : `token ${app.tokenId.slice(0, 8)}`),
            h("span", { class: "evidence" }, evidence(app)),
            editable
              ? h(
                  "span",
                  { class: "pending-actions" },
                  h("button", { type: "button", data: { key: `allow-${app.tokenId}-${app.name}` }, "aria-label": `Allow ${app.name}`, on: { click: () => void setAppState(this.ctx, app, AppState.ALLOW) } }, "Allow"),
                  h("button", { type: "button", class: "danger", data: { key: `deny-${app.tokenId}-${app.name}` }, "aria-label": `Deny ${app.name}`, on: { click: () => void setAppState(this.ctx, app, AppState.DENY) } }, "Deny"),
                )
              : appStateControl(this.ctx, app, false),
          );
        }),
      ),
    );
  }

  /** Names the token of a pending application not on this page (once per token). */
  private lookUp(tokenId: string): void {
    if (this.lookups.has(tokenId)) return;
    this.lookups.add(tokenId);
    tokens
      .getToken({ id: tokenId })
      .then((res) => {
        if (res.token) {
          this.ctx.tokenCache.set(tokenId, res.token);
          this.renderPending();
        }
      })
      .catch(() => undefined);
  }
}
