// What the browser tests stand on: the real binary serving a fresh SQLite file on
// 127.0.0.1 (a free port it picks itself), the operator commands run beside it, a gRPC-Web
// client in Node for what internal services do (Authorize) and for checking what the
// console did, and Debian's Chromium driven by playwright-core.
import { spawn, execFileSync, type ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { chromium, type Browser, type BrowserContext, type Locator, type Page } from "playwright-core";
import { AccountService } from "../src/gen/apitokens/v1/account_service_pb";
import { AuthorizeService } from "../src/gen/apitokens/v1/authorize_service_pb";
import { TokenService } from "../src/gen/apitokens/v1/token_service_pb";

const here = dirname(fileURLToPath(import.meta.url));
export const repo = resolve(here, "..", "..");
export const screenshots = join(repo, "docs", "console");

export function binary(): string {
  if (process.env.API_TOKENS_BINARY) return process.env.API_TOKENS_BINARY;
  const target = process.env.CARGO_TARGET_DIR ?? join(repo, "target");
  return join(target, "debug", "api-tokens");
}

export interface Server {
  url: string;
  databaseUrl: string;
  /** The bootstrap Admin's secret (user token, Admin, default app state Allow). */
  adminSecret: string;
  adminTokenId: string;
  stop(): Promise<void>;
}

/** Bootstraps account "acme" in a fresh SQLite file and serves it. */
export async function startServer(extra: string[] = []): Promise<Server> {
  const dir = mkdtempSync(join(tmpdir(), "api-tokens-console-"));
  const databaseUrl = `sqlite://${join(dir, "console.db")}?mode=rwc`;
  const made = JSON.parse(
    execFileSync(binary(), ["bootstrap", "--account", "acme", "--admin", "admin@example.com", "--output", "json", "--database-url", databaseUrl], {
      encoding: "utf8",
    }),
  ) as { secret: string; token_id: string };
  const proc: ChildProcess = spawn(
    binary(),
    ["serve", "--listen", "127.0.0.1:0", "--database-url", databaseUrl, "--log-format", "json", "--last-used-interval-secs", "1", ...extra],
    { stdio: ["ignore", "ignore", "pipe"], env: { ...process.env, RUST_LOG: "info" } },
  );
  const addr = await new Promise<string>((ok, fail) => {
    const lines = createInterface({ input: proc.stderr! });
    const timer = setTimeout(() => fail(new Error("the server did not say it was serving within 60 s")), 60_000);
    lines.on("line", (line) => {
      try {
        // The server's JSON log: fields flattened beside the message.
        const entry = JSON.parse(line) as { message?: string; addr?: string };
        if (entry.message === "serving" && entry.addr) {
          clearTimeout(timer);
          ok(entry.addr);
        }
      } catch {
        // not JSON: ignore
      }
    });
    proc.on("exit", (code) => fail(new Error(`the server exited with ${code} before serving`)));
  });
  return {
    url: `http://${addr}`,
    databaseUrl,
    adminSecret: made.secret,
    adminTokenId: made.token_id,
    stop: async () => {
      const exited = new Promise((ok) => proc.on("exit", ok));
      proc.kill("SIGTERM");
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Runs an operator command of the binary on the test database (issue-token, ...). */
export function operator(server: Server, args: string[]): string {
  return execFileSync(binary(), [...args, "--database-url", server.databaseUrl], { encoding: "utf8" });
}

export interface Api {
  tokens: Client<typeof TokenService>;
  accounts: Client<typeof AccountService>;
  authorize: Client<typeof AuthorizeService>;
}

/** The services over gRPC-Web from Node, as `secret` with application `app`. */
export function api(server: Server, secret: string, app = "browser-test-suite"): Api {
  const credentials: Interceptor = (next) => (req) => {
    req.header.set("x-circonus-auth-token", secret);
    req.header.set("x-circonus-app-name", app);
    return next(req);
  };
  const transport = createGrpcWebTransport({ baseUrl: server.url, interceptors: [credentials] });
  return {
    tokens: createClient(TokenService, transport),
    accounts: createClient(AccountService, transport),
    authorize: createClient(AuthorizeService, transport),
  };
}

/** Debian's Chromium, headless, with the flags this machine needs (no network beyond loopback). */
export async function launch(): Promise<Browser> {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}

export async function newPage(browser: Browser, options: { bypassCSP?: boolean } = {}): Promise<{ context: BrowserContext; page: Page }> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, deviceScaleFactor: 1, ...options });
  const page = await context.newPage();
  // Any dialog (alert, confirm) would mean script ran that the console never calls.
  page.on("dialog", (d) => {
    throw new Error(`unexpected ${d.type()} dialog: ${d.message()}`);
  });
  return { context, page };
}

export async function signIn(page: Page, server: Server, secret: string): Promise<void> {
  await page.goto(server.url + "/");
  await page.locator("#token-input").fill(secret);
  await page.getByRole("button", { name: "Sign in" }).click();
}

export async function screenshot(page: Page, name: string): Promise<void> {
  mkdirSync(screenshots, { recursive: true });
  await page.screenshot({ path: join(screenshots, `${name}.png`), fullPage: true, animations: "disabled", caret: "hide" });
}

/** Presses Tab until `target` has the keyboard focus (at most `limit` times), as a keyboard user would. */
export async function tabTo(page: Page, target: Locator, limit = 200): Promise<void> {
  for (let i = 0; i < limit; i++) {
    if (await target.evaluate((el) => el === document.activeElement).catch(() => false)) return;
    await page.keyboard.press("Tab");
  }
  throw new Error(`Tab never reached ${target.toString()}`);
}
