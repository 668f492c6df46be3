"use strict";
// End to end: `npm run demo -- --serve` (demo/cluster-demo.js) on a private Redis, two chat
// pages in headless Chromium connected to two different nodes; a message typed on one page
// appears on the other, tagged with the sender's node. Saves screenshots of both pages to
// __test__/artifacts/. Uses the Debian chromium at /usr/bin/chromium (apt-get install chromium;
// .ci/run installs it): never downloads a browser, and fails when it is missing.
const { spawn } = require("child_process");
const fs = require("fs");
const os = require("os");
const path = require("path");
const { chromium } = require("playwright-core");
const { startRedis, waitUntil } = require("./helpers/redis");

const CHROMIUM = "/usr/bin/chromium";
const ARTIFACTS = path.join(__dirname, "artifacts");

let redis;
let demo;
let demoOutput = "";
let context;
let userDataDir;

/** Starts the demo in --serve mode; resolves {nodeName: url} once the 3 nodes listen. */
async function startDemo(redisUrl) {
  demo = spawn(
    process.execPath,
    [path.join(__dirname, "..", "demo", "cluster-demo.js"), "--serve"],
    {
      env: { ...process.env, REDIS_URL: redisUrl },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  demo.stdout.on("data", (d) => (demoOutput += d));
  demo.stderr.on("data", (d) => (demoOutput += d));
  const urls = () =>
    Object.fromEntries(
      [...demoOutput.matchAll(/node (\w+): chat page at (http:\/\/\S+)/g)].map((m) => [m[1], m[2]]),
    );
  await waitUntil(() => Object.keys(urls()).length === 3 || demo.exitCode !== null, {
    timeout: 60000,
    what: "the 3 demo nodes to print their URLs",
  });
  if (demo.exitCode !== null) throw new Error(`the demo exited early:\n${demoOutput}`);
  return urls();
}

beforeAll(async () => {
  if (!fs.existsSync(CHROMIUM)) {
    throw new Error(
      `${CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium; .ci/run ` +
        `does it). This test never downloads a browser.`,
    );
  }
  redis = await startRedis();
  userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), "sio-native-chromium-"));
  // launchPersistentContext: the way playwright takes a --user-data-dir (a fresh one here)
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true, // playwright adds --headless
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
    timeout: 60000,
  });
}, 120000);

afterAll(async () => {
  if (context) await context.close();
  if (demo && demo.exitCode === null) {
    const exited = new Promise((resolve) => demo.once("exit", resolve));
    demo.kill("SIGTERM");
    await exited;
  }
  if (redis) await redis.stop();
  if (userDataDir) fs.rmSync(userDataDir, { recursive: true, force: true });
}, 60000);

async function openChat(url, node) {
  const page = await context.newPage();
  await page.goto(url);
  await page.locator("#status", { hasText: "connected" }).waitFor({ timeout: 20000 });
  await page.locator("#node", { hasText: node }).waitFor({ timeout: 20000 });
  return page;
}

async function say(page, text) {
  await page.fill("#input", text);
  await page.press("#input", "Enter");
}

test("a message typed on a page of one node appears on a page of another node", async () => {
  const urls = await startDemo(redis.url);
  expect(Object.keys(urls).sort()).toEqual(["alpha", "beta", "gamma"]);
  expect(new Set(Object.values(urls)).size).toBe(3);

  const alpha = await openChat(urls.alpha, "alpha");
  const beta = await openChat(urls.beta, "beta");

  const fromAlpha = `hello from alpha ${Math.random().toString(36).slice(2, 8)}`;
  await say(alpha, fromAlpha);
  const onBeta = beta.locator("#messages li", { hasText: fromAlpha });
  await onBeta.waitFor({ timeout: 20000 });
  expect(await onBeta.getAttribute("data-node")).toBe("alpha");
  expect(await onBeta.locator(".via").textContent()).toBe("via alpha");

  const fromBeta = `and back from beta ${Math.random().toString(36).slice(2, 8)}`;
  await say(beta, fromBeta);
  const onAlpha = alpha.locator("#messages li", { hasText: fromBeta });
  await onAlpha.waitFor({ timeout: 20000 });
  expect(await onAlpha.getAttribute("data-node")).toBe("beta");
  // the sender sees its own message too, marked as its own
  await alpha.locator("#messages li.mine", { hasText: fromAlpha }).waitFor({ timeout: 20000 });
  // each message is shown once per page
  expect(await beta.locator("#messages li", { hasText: fromAlpha }).count()).toBe(1);
  expect(await alpha.locator("#messages li", { hasText: fromBeta }).count()).toBe(1);

  fs.mkdirSync(ARTIFACTS, { recursive: true });
  for (const [name, page] of [
    ["alpha", alpha],
    ["beta", beta],
  ]) {
    const file = path.join(ARTIFACTS, `demo-chat-${name}.png`);
    await page.screenshot({ path: file });
    expect(fs.statSync(file).size).toBeGreaterThan(1000);
    console.log(`screenshot of the ${name} page: ${file}`);
  }
}, 120000);
