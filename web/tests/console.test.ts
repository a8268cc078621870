// The console in a real browser against the real server: sign in (and the pending case),
// create a token and see its secret once, change its privilege, approve an application that
// an Authorize just recorded (seen live), retire, promote, members, the audit log, what a
// Normal member sees, hostile names shown as text, and the first load's size. Screenshots
// go to docs/console/ for docs/CONSOLE.md.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { Browser, Page } from "playwright-core";
import { AppState, Privilege, TokenState, TokenType } from "../src/gen/apitokens/v1/resources_pb";
import { Decision } from "../src/gen/apitokens/v1/authorize_service_pb";
import { api, launch, newPage, operator, screenshot, signIn, startServer, type Api, type Server } from "./_harness";

let server: Server;
let browser: Browser;
let admin: Api;
/** The Admin's browser tab, signed in once and used by the steps in order. */
let page: Page;

const HOSTILE = "<img src=x onerror=alert(1)>";

before(async () => {
  server = await startServer();
  browser = await launch();
  admin = api(server, server.adminSecret);
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

const card = (id: string) => page.locator(`article.token[data-token-id="${id}"]`).first();
const pendingItem = (name: string) => page.locator("#pending li.pending-item").filter({ hasText: name });

describe("the console", () => {
  test("the sign-in page, and a Pending token: the console waits for approval and says how", async () => {
    const pendingToken = await admin.tokens.createToken({ type: TokenType.USER, privilege: Privilege.NORMAL, defaultAppState: AppState.PENDING, description: "laptop" });
    ({ page } = await newPage(browser));
    await page.goto(server.url + "/");
    await page.locator("#token-input").waitFor();
    await screenshot(page, "sign-in");

    await page.locator("#token-input").fill(pendingToken.secret);
    await page.getByRole("button", { name: "Sign in" }).click();
    const panel = page.getByRole("alert").filter({ hasText: "waiting for approval" });
    await panel.waitFor();
    assert.match(await panel.innerText(), /api-tokens-console/);
    assert.match(await panel.innerText(), /api-tokens apps allow TOKEN_ID api-tokens-console/);
    await screenshot(page, "sign-in-pending");

    // The console's first use recorded it, pending, under the token.
    const apps = await admin.tokens.listApplications({ tokenId: pendingToken.token!.id });
    assert.deepEqual(apps.applications.map((a) => [a.name, a.state]), [["api-tokens-console", AppState.PENDING]]);

    // Allowed (as the owner would, here from Node), "Try again" gets in.
    await admin.tokens.setApplicationState({ tokenId: pendingToken.token!.id, name: "api-tokens-console", state: AppState.ALLOW });
    await page.getByRole("button", { name: "Try again" }).click();
    await page.getByRole("heading", { name: "API Tokens", level: 1 }).waitFor();
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.locator("#token-input").waitFor();
    assert.equal(await page.evaluate(() => sessionStorage.length), 0, "signing out forgets the token");
  });

  test("sign in as the Admin: the token lives in sessionStorage only, no cookie", async () => {
    await signIn(page, server, server.adminSecret);
    await page.getByRole("heading", { name: "API Tokens", level: 1 }).waitFor();
    await card(server.adminTokenId).waitFor();
    const storage = await page.evaluate(() => ({
      session: Object.keys(sessionStorage),
      local: localStorage.length,
      cookie: document.cookie,
    }));
    assert.deepEqual(storage, { session: ["api-tokens-console.token"], local: 0, cookie: "" });
    assert.deepEqual(await page.context().cookies(), []);
  });

  let created = { id: "", secret: "" };

  test("create a user token: the secret is shown once; then change its privilege", async () => {
    await page.getByRole("button", { name: "New token" }).click();
    await page.getByRole("button", { name: "User token" }).click();
    const secretPanel = page.locator("#secret-panel");
    await secretPanel.waitFor();
    created = {
      id: (await secretPanel.locator("[data-new-token-id]").innerText()).trim(),
      secret: (await secretPanel.locator("[data-copy=secret]").innerText()).trim(),
    };
    assert.match(created.secret, /^[0-9a-f-]{36}$/);
    assert.match(await secretPanel.innerText(), /shown this once/);

    const privilege = card(created.id).getByLabel("Privilege");
    assert.equal(await privilege.inputValue(), String(Privilege.READ_ONLY));
    await privilege.selectOption({ label: "Normal" });
    await page.locator("#status").getByText("Saved").waitFor();
    const description = card(created.id).getByLabel("Description");
    await description.fill("ci pipeline");
    await card(created.id).getByRole("button", { name: "Save" }).click();
    await card(created.id).getByRole("heading", { name: "ci pipeline" }).waitFor();
    const stored = (await admin.tokens.getToken({ id: created.id })).token!;
    assert.equal(stored.privilege, Privilege.NORMAL);
    assert.equal(stored.description, "ci pipeline");
    assert.equal(stored.defaultAppState, AppState.PENDING);
    await screenshot(page, "tokens-new-secret");
    await page.getByRole("button", { name: "I have stored it" }).click();
    assert.equal(await page.locator("#secret-panel").count(), 0, "the secret is gone from the page");
  });

  test("an application recorded by an Authorize appears live; Allow lets it in", async () => {
    const started = performance.now();
    const first = await admin.authorize.authorize({ token: created.secret, appName: "ci-runner", requiredPrivilege: Privilege.READ_ONLY });
    assert.equal(first.decision, Decision.PENDING);
    await pendingItem("ci-runner").waitFor();
    const seenAfter = performance.now() - started;
    console.log(`# pending application shown ${seenAfter.toFixed(0)} ms after the Authorize that recorded it`);
    await card(created.id).locator(".app").filter({ hasText: "ci-runner" }).waitFor();
    await screenshot(page, "tokens-pending");

    await pendingItem("ci-runner").getByRole("button", { name: "Allow ci-runner" }).click();
    await pendingItem("ci-runner").waitFor({ state: "detached" });
    assert.equal(await card(created.id).getByLabel("State of ci-runner").inputValue(), String(AppState.ALLOW));
    const again = await admin.authorize.authorize({ token: created.secret, appName: "ci-runner", requiredPrivilege: Privilege.READ_ONLY });
    assert.equal(again.decision, Decision.ALLOW);

    // Denied from the drop-down under the token.
    await card(created.id).getByLabel("State of ci-runner").selectOption({ label: "Deny" });
    await page.locator("#status").getByText("ci-runner: Deny").waitFor();
    const denied = await admin.authorize.authorize({ token: created.secret, appName: "ci-runner", requiredPrivilege: Privilege.READ_ONLY });
    assert.equal(denied.decision, Decision.DENIED);
  });

  test("a hostile application name and description are shown as text, and nothing runs", async () => {
    await admin.authorize.authorize({ token: created.secret, appName: HOSTILE, requiredPrivilege: Privilege.READ_ONLY });
    await admin.tokens.updateToken({ token: { id: created.id, description: `<script>window.pwned=1</script>${HOSTILE}` }, updateMask: { paths: ["description"] } });
    await page.reload();
    const item = pendingItem(HOSTILE);
    await item.waitFor();
    assert.equal((await item.locator(".app-name").innerText()).trim(), HOSTILE);
    await card(created.id).getByRole("heading", { name: `<script>window.pwned=1</script>${HOSTILE}` }).waitFor();
    const dom = await page.evaluate(() => ({
      images: document.querySelectorAll("img").length,
      scripts: [...document.querySelectorAll("script")].map((s) => s.getAttribute("src")),
      pwned: (window as unknown as { pwned?: number }).pwned ?? null,
    }));
    assert.deepEqual(dom, { images: 0, scripts: ["/console/console.js"], pwned: null });
    await screenshot(page, "xss-as-text");
    await admin.tokens.updateToken({ token: { id: created.id, description: "ci pipeline" }, updateMask: { paths: ["description"] } });
    await admin.tokens.setApplicationState({ tokenId: created.id, name: HOSTILE, state: AppState.DENY });
  });

  test("One-Step-Install shows the command and pre-allows the installer", async () => {
    await page.reload();
    await card(created.id).getByRole("button", { name: "One-Step-Install" }).click();
    const dialog = page.getByRole("dialog");
    await dialog.waitFor();
    assert.match(await dialog.innerText(), /COSI_KEY|cosi/i);
    await screenshot(page, "install-command");
    await page.keyboard.press("Escape");
    await dialog.waitFor({ state: "hidden" });
  });

  test("promote a user token to an account token, after a confirmation that says it cannot be undone", async () => {
    await card(created.id).getByRole("button", { name: /^Promote/ }).click();
    const dialog = page.getByRole("dialog");
    assert.match(await dialog.innerText(), /cannot be undone/);
    await screenshot(page, "promote-confirm");
    await dialog.getByRole("button", { name: "Promote token" }).click();
    await card(created.id).getByText("Account token", { exact: true }).first().waitFor();
    const stored = (await admin.tokens.getToken({ id: created.id })).token!;
    assert.equal(stored.type, TokenType.ACCOUNT);
    assert.equal(await card(created.id).getByRole("button", { name: /^Promote/ }).count(), 0);
  });

  test("retire a token: confirmed, and every later use is refused", async () => {
    const doomed = await admin.tokens.createToken({ type: TokenType.USER, description: "old laptop", defaultAppState: AppState.ALLOW });
    await page.reload();
    const doomedCard = card(doomed.token!.id);
    await doomedCard.getByRole("button", { name: /^Retire/ }).click();
    const dialog = page.getByRole("dialog");
    assert.match(await dialog.innerText(), /cannot be undone/);
    // Cancel first: nothing happens.
    await dialog.getByRole("button", { name: "Cancel" }).click();
    assert.equal((await admin.tokens.getToken({ id: doomed.token!.id })).token!.state, TokenState.ACTIVE);
    await doomedCard.getByRole("button", { name: /^Retire/ }).click();
    await dialog.getByRole("button", { name: "Retire token" }).click();
    await doomedCard.getByText("Retired", { exact: true }).first().waitFor();
    const refused = await admin.authorize.authorize({ token: doomed.secret, appName: "anything", requiredPrivilege: Privilege.READ_ONLY });
    assert.equal(refused.decision, Decision.RETIRED);
  });

  test("members: add one, change a role; the audit log shows it all", async () => {
    await page.getByRole("link", { name: "Members" }).click();
    await page.getByRole("heading", { name: "Members", level: 1 }).waitFor();
    await page.getByLabel("User name").fill("bob@example.com");
    await page.getByLabel("Role", { exact: true }).selectOption({ label: "Read-Only" });
    await page.getByRole("button", { name: "Add member" }).click();
    await page.getByRole("cell", { name: "bob@example.com", exact: true }).waitFor();
    await page.getByLabel("Role of bob@example.com").selectOption({ label: "Normal" });
    await page.locator("#status").getByText("bob@example.com is now Normal").waitFor();
    const members = await admin.accounts.listMembers({});
    assert.equal(members.members.find((m) => m.userName === "bob@example.com")?.role, Privilege.NORMAL);
    await screenshot(page, "members");

    await page.getByRole("link", { name: "Audit log" }).click();
    await page.getByRole("heading", { name: "Audit log", level: 1 }).waitFor();
    await page.getByRole("cell", { name: "member.update" }).first().waitFor();
    for (const action of ["token.create", "token.retire", "token.promote", "application.set_state"]) {
      assert.ok((await page.getByRole("cell", { name: action }).count()) > 0, `${action} in the audit log`);
    }
    await page.locator("details").first().locator("summary").click();
    await screenshot(page, "audit-log");
  });

  test("a Normal member sees only their own tokens: no account token, no Promote, no Account menu item, no audit log", async () => {
    const issued = JSON.parse(operator(server, ["issue-token", "--account", "acme", "--user", "bob@example.com", "--output", "json"])) as { secret: string; token_id: string };
    const bob = await newPage(browser);
    await signIn(bob.page, server, issued.secret);
    const bobCard = bob.page.locator(`article.token[data-token-id="${issued.token_id}"]`);
    await bobCard.waitFor();
    // The Admin's tokens exist (an account token among them), and none is shown.
    assert.equal(await bob.page.locator("article.token").count(), 1);
    assert.equal(await bob.page.getByText("Account token", { exact: true }).count(), 0);
    assert.equal(await bob.page.getByRole("button", { name: /^Promote/ }).count(), 0);
    assert.equal(await bob.page.getByRole("link", { name: "Audit log" }).count(), 0);
    assert.equal(await bob.page.getByLabel("Type", { exact: true }).count(), 0, "no type filter: a Normal member has user tokens only");
    await bob.page.getByRole("button", { name: "New token" }).click();
    assert.equal(await bob.page.getByRole("button", { name: "Account token" }).count(), 0);
    await bob.page.getByRole("button", { name: "User token" }).waitFor();
    await bob.page.keyboard.press("Escape");
    // Privilege: Admin is shown, never offered.
    const admin_option = bobCard.getByLabel("Privilege").locator(`option[value="${Privilege.ADMIN}"]`);
    assert.equal(await admin_option.isDisabled(), true);
    await screenshot(bob.page, "normal-member");
    await bob.page.getByRole("link", { name: "Members" }).click();
    await bob.page.getByRole("heading", { name: "Members", level: 1 }).waitFor();
    assert.equal(await bob.page.getByRole("button", { name: "Add member" }).count(), 0);
    assert.equal(await bob.page.getByRole("button", { name: /^Remove/ }).count(), 0);
    await bob.context.close();
  });

  test("the first load transfers at most 150 KB compressed", async () => {
    const fresh = await newPage(browser);
    const cdp = await fresh.context.newCDPSession(fresh.page);
    await cdp.send("Network.enable");
    await cdp.send("Network.setCacheDisabled", { cacheDisabled: true });
    let bytes = 0;
    const urls: string[] = [];
    cdp.on("Network.loadingFinished", (e: { encodedDataLength: number }) => {
      bytes += e.encodedDataLength;
    });
    cdp.on("Network.responseReceived", (e: { response: { url: string } }) => urls.push(e.response.url));
    await fresh.page.goto(server.url + "/", { waitUntil: "networkidle" });
    await fresh.page.locator("#token-input").waitFor();
    console.log(`# first load: ${bytes} bytes over the wire (headers included) in ${urls.length} responses`);
    assert.ok(urls.every((u) => u.startsWith(server.url)), `only this origin: ${urls.join(", ")}`);
    assert.ok(bytes <= 150 * 1024, `first load ${bytes} bytes`);
    await fresh.context.close();
  });
});
