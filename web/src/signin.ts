// Signing in: a pasted token, kept in this tab's sessionStorage, checked with GetAccount.
// A token whose default app state is Pending records the console itself as a pending
// application on its first use: the page says so, and how to approve it.
import { CONSOLE_APP_NAME, Code, describe, session, type Failure } from "./api";
import { h, replace } from "./dom";

export function renderSignIn(main: HTMLElement, onSubmit: (token: string) => void, problem?: Failure): void {
  const input = h("input", {
    id: "token-input",
    type: "password",
    name: "token",
    autocomplete: "off",
    spellcheck: "false",
    required: true,
    "aria-describedby": "token-help",
  });
  const form = h(
    "form",
    {
      class: "signin",
      on: {
        submit: (e) => {
          e.preventDefault();
          const token = input.value.trim();
          if (token) onSubmit(token);
        },
      },
    },
    h("label", { for: "token-input", class: "field-label" }, "API token"),
    input,
    h(
      "p",
      { id: "token-help", class: "help" },
      "The token stays in this browser tab only (sessionStorage): it is forgotten when the tab closes, is never stored in a cookie, and is sent to this server alone.",
    ),
    h("button", { type: "submit" }, "Sign in"),
  );
  replace(
    main,
    h("h1", null, "Sign in to API Tokens"),
    problem ? problemPanel(problem, onSubmit) : null,
    form,
    h(
      "p",
      { class: "help" },
      "The console calls the server as application ",
      h("code", null, CONSOLE_APP_NAME),
      ", like any other program using your token. If the token's Default App State is Allow, it just works. If it is Pending or Deny, the first sign-in records ",
      h("code", null, CONSOLE_APP_NAME),
      " under the token, waiting for approval, and you are told here how to allow it.",
    ),
  );
  if (!problem) input.focus();
}

function problemPanel(f: Failure, retry: (token: string) => void): HTMLElement {
  const again = () => {
    const token = session.token();
    if (token) retry(token);
  };
  if (f.reason === "APP_PENDING") {
    return h(
      "section",
      { class: "panel warning", role: "alert", "aria-labelledby": "pending-title" },
      h("h2", { id: "pending-title" }, "This console is waiting for approval on your token"),
      h(
        "p",
        null,
        "Your token's Default App State is Pending, so its first use by a new application records that application as pending. The console is such an application: ",
        h("code", null, CONSOLE_APP_NAME),
        " is now listed under your token, waiting.",
      ),
      h("p", null, "Someone who may manage this token (its owner with another token, or an Admin of the account) allows it:"),
      h(
        "ul",
        null,
        h("li", null, "in this console: API Tokens, under the token, set ", h("code", null, CONSOLE_APP_NAME), " to Allow (it is also listed under Waiting for approval);"),
        h("li", null, "or on the command line: ", h("code", null, `api-tokens apps allow TOKEN_ID ${CONSOLE_APP_NAME}`), "."),
      ),
      h("p", null, "Then try again. Nothing else about the token changes."),
      h("button", { type: "button", id: "retry-signin", on: { click: again } }, "Try again"),
    );
  }
  if (f.reason === "APP_DENIED") {
    return h(
      "section",
      { class: "panel error", role: "alert" },
      h("h2", null, "This console is denied on your token"),
      h(
        "p",
        null,
        "Application ",
        h("code", null, CONSOLE_APP_NAME),
        " is set to Deny under this token. The token's owner or an Admin can set it to Allow; or sign in with another token.",
      ),
    );
  }
  const text =
    f.code === Code.Unauthenticated || f.code === Code.PermissionDenied
      ? describe(f)
      : `The server could not check the token: ${describe(f)}`;
  return h("section", { class: "panel error", role: "alert" }, h("h2", null, "Cannot sign in"), h("p", null, text));
}
