// Accessibility: axe-core on every page (no serious or critical violation), and the main
// flow with the keyboard alone: sign in, create a token, set its privilege, allow an
// application that just asked, retire the token.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { after, before, describe, test } from "node:test";
import type { Browser, Page } from "playwright-core";
import { AppState, Privilege, TokenState, TokenType } from "../src/gen/apitokens/v1/resources_pb";
import { Decision } from "../src/gen/apitokens/v1/authorize_service_pb";
import { api, launch, newPage, signIn, startServer, tabTo, type Api, type Server } from "./_harness";

const axeSource = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");

let server: Server;
let browser: Browser;
let admin: Api;

before(async () => {
  server = await startServer();
  browser = await launch();
  admin = api(server, server.adminSecret);
  // Something on every page: tokens with applications, a pending one, a member, audit events.
  const made = await admin.tokens.createToken({ type: TokenType.USER, privilege: Privilege.NORMAL, description: "deploys", defaultAppState: AppState.PENDING });
  await admin.authorize.authorize({ token: made.secret, appName: "deployer", requiredPrivilege: Privilege.READ_ONLY });
  await admin.authorize.authorize({ token: made.secret, appName: "backup", requiredPrivilege: Privilege.READ_ONLY });
  await admin.tokens.setApplicationState({ tokenId: made.token!.id, name: "backup", state: AppState.ALLOW });
  await admin.tokens.createToken({ type: TokenType.ACCOUNT, description: "monitoring" });
  await admin.accounts.addMember({ userName: "carol@example.com", role: Privilege.READ_ONLY });
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

interface AxeResult {
  violations: { id: string; impact: string | null; help: string; nodes: { target: string[] }[] }[];
}

/** axe-core in the page; the serious and critical violations. */
async function seriousViolations(page: Page): Promise<string[]> {
  // Evaluated through the DevTools protocol, which the page's CSP does not govern.
  await page.evaluate(axeSource);
  const result = (await page.evaluate(() =>
    (window as unknown as { axe: { run(o: object): Promise<unknown> } }).axe.run({ resultTypes: ["violations"] }),
  )) as AxeResult;
  return result.violations
    .filter((v) => v.impact === "serious" || v.impact === "critical")
    .map((v) => `${v.impact} ${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(" ")).join("; ")})`);
}

describe("accessibility", () => {
  test("axe-core: no serious or critical violation on any page", async () => {
    const { page, context } = await newPage(browser);
    await page.goto(server.url + "/");
    await page.locator("#token-input").waitFor();
    const found: Record<string, string[]> = { "sign-in": await seriousViolations(page) };

    await signIn(page, server, server.adminSecret);
    await page.locator("#pending li.pending-item").first().waitFor();
    await page.locator(".app").first().waitFor();
    found.tokens = await seriousViolations(page);

    await page.getByRole("button", { name: "New token" }).click();
    await page.getByRole("button", { name: "User token" }).click();
    await page.locator("#secret-panel").waitFor();
    found["new secret"] = await seriousViolations(page);

    await page.locator("article.token").first().getByRole("button", { name: /^Retire/ }).click();
    await page.getByRole("dialog").waitFor();
    found["confirmation"] = await seriousViolations(page);
    await page.keyboard.press("Escape");

    await page.getByRole("link", { name: "Members" }).click();
    await page.getByRole("cell", { name: "carol@example.com", exact: true }).waitFor();
    found.members = await seriousViolations(page);

    await page.getByRole("link", { name: "Audit log" }).click();
    await page.getByRole("cell", { name: "token.create" }).first().waitFor();
    found["audit log"] = await seriousViolations(page);

    for (const [where, violations] of Object.entries(found)) {
      assert.deepEqual(violations, [], `${where}: ${violations.join("\n")}`);
    }
    await context.close();
  });

  test("the main flow with the keyboard alone", async () => {
    const { page, context } = await newPage(browser);
    const key = (k: string) => page.keyboard.press(k);
    await page.goto(server.url + "/");
    // Sign in: the field has focus on arrival.
    await page.locator("#token-input").waitFor();
    assert.equal(await page.evaluate(() => document.activeElement?.id), "token-input");
    await page.keyboard.type(server.adminSecret);
    await key("Enter");
    await page.getByRole("heading", { name: "API Tokens", level: 1 }).waitFor();

    // Create a user token from the menu.
    await tabTo(page, page.getByRole("button", { name: "New token" }));
    await key("Enter");
    assert.equal(await page.evaluate(() => document.activeElement?.textContent), "User token");
    await key("Enter");
    await page.locator("#secret-panel").waitFor();
    const id = (await page.locator("[data-new-token-id]").innerText()).trim();
    const secret = (await page.locator("[data-copy=secret]").innerText()).trim();
    const card = page.locator(`#fresh-tokens article.token[data-token-id="${id}"]`);

    // Privilege: Read-Only -> Normal with the arrow keys.
    await tabTo(page, card.getByLabel("Privilege"));
    await key("ArrowDown");
    await page.locator("#status").getByText("Saved").waitFor();
    assert.equal((await admin.tokens.getToken({ id })).token!.privilege, Privilege.NORMAL);

    // An application asks; allow it from the pending list.
    await admin.authorize.authorize({ token: secret, appName: "keyboard-app", requiredPrivilege: Privilege.READ_ONLY });
    const allow = page.getByRole("button", { name: "Allow keyboard-app" });
    await allow.waitFor();
    await tabTo(page, allow);
    await key("Enter");
    await allow.waitFor({ state: "detached" });
    const decision = await admin.authorize.authorize({ token: secret, appName: "keyboard-app", requiredPrivilege: Privilege.READ_ONLY });
    assert.equal(decision.decision, Decision.ALLOW);

    // Retire it, confirming in the dialog (focus starts on Cancel: Tab to the confirmation).
    await tabTo(page, card.getByRole("button", { name: /^Retire/ }));
    await key("Enter");
    await page.getByRole("dialog").waitFor();
    assert.equal(await page.evaluate(() => document.activeElement?.textContent), "Cancel");
    await key("Tab");
    assert.equal(await page.evaluate(() => document.activeElement?.textContent), "Retire token");
    await key("Enter");
    await card.getByText("Retired", { exact: true }).first().waitFor();
    assert.equal((await admin.tokens.getToken({ id })).token!.state, TokenState.RETIRED);
    await context.close();
  });
});
