// The console's entry: sign in (or resume the tab's session), then the pages by hash route:
// #/tokens, #/members, #/audit (Admins). A refused token signs out with the reason shown.
import { accounts, failure, session, type Failure } from "./api";
import { AuditPage } from "./audit_page";
import { isAdmin, loadMembers, type Ctx } from "./context";
import { clearStatus, h, replace } from "./dom";
import { privilegeName } from "./format";
import { LiveApplications } from "./live";
import { MembersPage } from "./members_page";
import { renderSignIn } from "./signin";
import { TokensPage } from "./tokens_page";

interface Page {
  mount(main: HTMLElement): Promise<void>;
  unmount(): void;
}

const main = document.getElementById("main") as HTMLElement;
const nav = document.getElementById("nav") as HTMLElement;
const who = document.getElementById("who") as HTMLElement;

let ctx: Ctx | null = null;
let page: Page | null = null;

async function signIn(token: string): Promise<void> {
  session.signIn(token);
  try {
    const res = await accounts.getAccount({});
    if (!res.account) throw new Error("GetAccount answered without an account");
    const live = new LiveApplications();
    ctx = {
      account: res.account,
      caller: res.caller,
      callerTokenId: res.callerTokenId,
      privilege: res.callerPrivilege,
      live,
      members: new Map(),
      tokenCache: new Map(),
    };
    live.start((code, reason) => signedOut({ code, reason, message: "Your token no longer lets the console in.", fields: [] }));
    // Owner and actor names; a failure here only costs names.
    await loadMembers(ctx).catch(() => undefined);
    renderShell();
    if (!location.hash.startsWith("#/")) history.replaceState(null, "", "#/tokens");
    await route();
  } catch (err) {
    signedOut(failure(err));
  }
}

/** Back to the sign-in page; the token is kept only when it may work once approved. */
function signedOut(problem?: Failure): void {
  ctx?.live.stop();
  ctx = null;
  page?.unmount();
  page = null;
  if (problem?.reason !== "APP_PENDING") session.signOut();
  nav.replaceChildren();
  who.replaceChildren();
  clearStatus();
  renderSignIn(main, (token) => void signIn(token), problem);
}

function renderShell(): void {
  if (!ctx) return;
  const link = (href: string, text: string) => h("a", { href, class: "nav-link" }, text);
  replace(
    nav,
    h(
      "ul",
      null,
      h("li", null, link("#/tokens", "API Tokens")),
      h("li", null, link("#/members", "Members")),
      isAdmin(ctx) ? h("li", null, link("#/audit", "Audit log")) : null,
    ),
  );
  const name = ctx.caller ? ctx.caller.userName : "an account token";
  replace(
    who,
    h("span", { class: "who-name" }, name),
    h("span", { class: "muted" }, ` · ${privilegeName(ctx.privilege)} · account ${ctx.account.name}`),
    h(
      "button",
      {
        type: "button",
        class: "secondary",
        id: "sign-out",
        on: {
          click: () => {
            session.signOut();
            signedOut();
          },
        },
      },
      "Sign out",
    ),
  );
}

async function route(): Promise<void> {
  if (!ctx) return;
  page?.unmount();
  clearStatus();
  const hash = location.hash;
  const next: Page =
    hash === "#/members" ? new MembersPage(ctx) : hash === "#/audit" && isAdmin(ctx) ? new AuditPage(ctx) : new TokensPage(ctx);
  page = next;
  for (const a of nav.querySelectorAll("a")) {
    if (a.getAttribute("href") === hash) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  await next.mount(main);
  // A page reached from the navigation takes focus at its heading, as a page load would.
  main.querySelector("h1")?.setAttribute("tabindex", "-1");
}

window.addEventListener("hashchange", () => {
  if (!location.hash.startsWith("#/")) return;
  void route().then(() => main.querySelector<HTMLElement>("h1")?.focus());
});

document.getElementById("skip")?.addEventListener("click", (e) => {
  e.preventDefault();
  main.focus();
});

const saved = session.token();
if (saved) void signIn(saved);
else signedOut();
