// Measures the console against issue 16's targets (printed, never asserted: figures for
// docs/CONSOLE.md). Run from web/: `node scripts/build.mjs --tests && node .test-build/measure.mjs`.
//  1. first load: bytes over the wire, cold cache, compressed as served;
//  2. the tokens page with 1,000 tokens: from navigation to usable (first page of cards
//     rendered, live applications loaded), several reloads;
//  3. a new pending application: from the Authorize that records it to its row in the page.
import { AppState, Privilege, TokenType } from "../src/gen/apitokens/v1/resources_pb";
import { api, launch, newPage, signIn, startServer } from "./_harness";

const TOKENS = Number(process.env.TOKENS ?? 1000);
const RUNS = Number(process.env.RUNS ?? 7);

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const fmt = (xs: number[]) => `median ${median(xs).toFixed(0)} ms, min ${Math.min(...xs).toFixed(0)}, max ${Math.max(...xs).toFixed(0)} (n=${xs.length})`;

const server = await startServer();
const browser = await launch();
try {
  const admin = api(server, server.adminSecret);

  // 1. First load.
  {
    const { page, context } = await newPage(browser);
    const cdp = await context.newCDPSession(page);
    await cdp.send("Network.enable");
    await cdp.send("Network.setCacheDisabled", { cacheDisabled: true });
    const sizes = new Map<string, number>();
    const urls = new Map<string, string>();
    cdp.on("Network.responseReceived", (e: { requestId: string; response: { url: string } }) => urls.set(e.requestId, e.response.url));
    cdp.on("Network.loadingFinished", (e: { requestId: string; encodedDataLength: number }) => sizes.set(e.requestId, e.encodedDataLength));
    await page.goto(server.url + "/", { waitUntil: "networkidle" });
    let total = 0;
    for (const [id, bytes] of sizes) {
      total += bytes;
      console.log(`  ${urls.get(id)?.replace(server.url, "")}: ${bytes} B`);
    }
    console.log(`first load: ${total} B over the wire (headers included), ${sizes.size} responses`);
    await context.close();
  }

  // 2. 1,000 tokens, each with one application.
  const started = performance.now();
  const pool = 8;
  let next = 0;
  await Promise.all(
    Array.from({ length: pool }, async () => {
      while (next < TOKENS) {
        const n = next++;
        const made = await admin.tokens.createToken({ type: n % 10 === 0 ? TokenType.ACCOUNT : TokenType.USER, privilege: Privilege.READ_ONLY, defaultAppState: n % 50 === 0 ? AppState.PENDING : AppState.ALLOW, description: `service ${n}` });
        await admin.authorize.authorize({ token: made.secret, appName: `app-${n}`, requiredPrivilege: Privilege.READ_ONLY });
      }
    }),
  );
  console.log(`set-up: ${TOKENS} tokens with one application each in ${((performance.now() - started) / 1000).toFixed(1)} s`);

  const { page, context } = await newPage(browser);
  await signIn(page, server, server.adminSecret);
  await page.locator("article.token").first().waitFor();
  const usable: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    await page.reload();
    const at = await page.waitForFunction(
      () => {
        const cards = document.querySelectorAll("#token-list article.token").length;
        const pending = document.querySelector("#pending-heading")?.textContent ?? "…";
        return cards === 50 && !pending.includes("…") && !document.body.textContent?.includes("Loading applications") ? performance.now() : 0;
      },
      undefined,
      { polling: "raf", timeout: 30_000 },
    );
    usable.push((await at.jsonValue()) as number);
  }
  console.log(`tokens page with ${TOKENS} tokens, navigation to usable: ${fmt(usable)}`);

  // 3. Pending application latency, read by the page's own clock (same machine, same clock).
  const pendingToken = await admin.tokens.createToken({ type: TokenType.USER, defaultAppState: AppState.PENDING, description: "latency" });
  const latencies: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const name = `latency-probe-${i}`;
    await page.evaluate((n) => {
      const w = window as unknown as { seenAt?: number };
      w.seenAt = 0;
      const observer = new MutationObserver(() => {
        for (const el of document.querySelectorAll("#pending .app-name")) {
          if (el.textContent === n) {
            w.seenAt = performance.timeOrigin + performance.now();
            observer.disconnect();
          }
        }
      });
      observer.observe(document.body, { subtree: true, childList: true, characterData: true });
    }, name);
    const before = performance.timeOrigin + performance.now();
    await admin.authorize.authorize({ token: pendingToken.secret, appName: name, requiredPrivilege: Privilege.READ_ONLY });
    const seen = await page.waitForFunction(() => (window as unknown as { seenAt?: number }).seenAt || 0, undefined, { timeout: 30_000 });
    latencies.push(((await seen.jsonValue()) as number) - before);
  }
  console.log(`pending application shown after its Authorize: ${fmt(latencies)}`);
  await context.close();
} finally {
  await browser.close();
  await server.stop();
}
