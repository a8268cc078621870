import { launch, newPage, signIn, startServer } from "./_harness";
const server = await startServer();
const browser = await launch();
try {
  const { page } = await newPage(browser);
  page.on("console", (m) => console.log("console:", m.type(), m.text()));
  page.on("pageerror", (e) => console.log("pageerror:", e.message));
  await signIn(page, server, server.adminSecret);
  await page.getByRole("heading", { name: "API Tokens", level: 1 }).waitFor();
  await page.getByRole("button", { name: "New token" }).click();
  await page.getByRole("button", { name: "User token" }).click();
  await page.waitForTimeout(1500);
  console.log(await page.locator("#new-secret").evaluate((e) => e.outerHTML));
  console.log(await page.locator("#status").evaluate((e) => e.outerHTML));
  await page.screenshot({ path: "/tmp/dbg.png", fullPage: true });
} finally { await browser.close(); await server.stop(); }
