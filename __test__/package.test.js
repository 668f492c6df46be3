"use strict";
// A new user's path: install the package into a clean Node project next to socket.io and a
// Redis client, change nothing but the import, and broadcasts and fetchSockets() cross nodes.
//  1. `npm pack` of the repository: one tarball carrying this machine's binary.
//  2. the release set (`npm run pack:release`, the napi-rs layout): the main tarball without any
//     binary, plus the linux-x64-gnu platform package it lists as an optional dependency; the
//     binary must then come from the platform package.
const { execFileSync, execFile } = require("child_process");
const fs = require("fs");
const os = require("os");
const path = require("path");
const { startRedis } = require("./helpers/redis");
const { platformPackage, platformTriple } = require("../lib/platform");

const root = path.join(__dirname, "..");
let redis;
let dir;

beforeAll(async () => {
  redis = await startRedis();
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "sio-native-pack-"));
});

afterAll(async () => {
  if (redis) await redis.stop();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

// node app.js REDIS_URL KIND_A KIND_B: two Socket.IO nodes, each with the given Redis client
// ("node-redis" or "ioredis"); prints what crossed and which binary was loaded.
const USER_SCRIPT = `
const http = require("http");
const { Server } = require("socket.io");
const { io: connect } = require("socket.io-client");
const { createAdapter } = require("socket.io-redis-native");

async function redisClient(kind, url) {
  if (kind === "ioredis") {
    const { Redis } = require("ioredis");
    const client = new Redis(url);
    await new Promise((resolve, reject) => { client.once("ready", resolve); client.once("error", reject); });
    return client;
  }
  const client = require("redis").createClient({ url });
  await client.connect();
  return client;
}

async function node(kind, url) {
  const pubClient = await redisClient(kind, url);
  const subClient = await redisClient(kind, url);
  const server = http.createServer();
  const io = new Server(server, { adapter: createAdapter(pubClient, subClient) });
  await new Promise((r) => server.listen(0, r));
  await io.of("/").adapter.init();
  const client = connect("http://127.0.0.1:" + server.address().port, { transports: ["websocket"] });
  await new Promise((r) => client.on("connect", r));
  return { io, client, pubClient, subClient };
}

(async () => {
  const [url, kindA, kindB] = process.argv.slice(2);
  const a = await node(kindA, url);
  const b = await node(kindB, url);
  const timer = setTimeout(() => { console.log("TIMEOUT"); process.exit(1); }, 10000);
  const atB = new Promise((r) => b.client.on("hello", r));
  a.io.emit("hello", "from a (" + kindA + ")");
  console.log("received:" + (await atB));
  const atA = new Promise((r) => a.client.on("hello", r));
  b.io.emit("hello", "from b (" + kindB + ")");
  console.log("received:" + (await atA));
  console.log("sockets:" + (await a.io.fetchSockets()).length);
  for (const file of Object.keys(require.cache).filter((f) => f.endsWith(".node"))) {
    console.log("binary:" + file);
  }
  clearTimeout(timer);
  for (const n of [a, b]) { n.client.close(); n.io.close(); await n.pubClient.quit(); await n.subClient.quit(); }
})();
`;

const versionOf = (name) => require(path.join(root, "node_modules", name, "package.json")).version;

/** A clean project in `dir`/name with `specs` installed (tarballs and registry packages). */
function cleanProject(name, specs) {
  const project = path.join(dir, name);
  fs.mkdirSync(project);
  fs.writeFileSync(path.join(project, "package.json"), `{"name":"${name}","private":true}`);
  execFileSync("npm", ["install", "--no-audit", "--no-fund", "--prefer-offline", ...specs], {
    cwd: project,
    stdio: "pipe",
  });
  fs.writeFileSync(path.join(project, "app.js"), USER_SCRIPT);
  return project;
}

function runApp(project, kinds) {
  return new Promise((resolve, reject) =>
    execFile(
      "node",
      ["app.js", redis.url, ...kinds],
      { cwd: project, timeout: 30000 },
      (err, stdout, stderr) =>
        err ? reject(new Error(`${err.message}\n${stdout}\n${stderr}`)) : resolve(stdout),
    ),
  );
}

const tarList = (tarball) => execFileSync("tar", ["-tzf", tarball], { encoding: "utf8" });
const tarJson = (tarball, file) =>
  JSON.parse(execFileSync("tar", ["-xzOf", tarball, file], { encoding: "utf8" }));

test("npm pack output installs into a clean project and works there", async () => {
  const packed = execFileSync("npm", ["pack", "--silent", "--pack-destination", dir], {
    cwd: root,
    encoding: "utf8",
  })
    .trim()
    .split("\n")
    .pop();
  const tarball = path.join(dir, packed);
  const contents = tarList(tarball);
  expect(contents).toMatch(/package\/socket-io-redis-native\.linux-x64-gnu\.node/);
  expect(contents).toMatch(/package\/index\.d\.ts/);
  expect(contents).not.toMatch(/package\/src\//);
  expect(contents).not.toMatch(/package\/npm\//);

  const project = cleanProject("app", [
    tarball,
    `socket.io@${versionOf("socket.io")}`,
    `socket.io-client@${versionOf("socket.io-client")}`,
    `redis@${versionOf("redis")}`,
  ]);
  const started = Date.now();
  const out = await runApp(project, ["node-redis", "node-redis"]);
  expect(out).toContain("received:from a (node-redis)");
  expect(out).toContain("received:from b (node-redis)");
  expect(out).toContain("sockets:2");
  expect(out).toContain(
    `binary:${path.join(project, "node_modules", "socket.io-redis-native")}${path.sep}`,
  );
  // the process ended by itself once the servers and user clients were closed
  expect(Date.now() - started).toBeLessThan(30000);
}, 240000);

test("release tarballs: the binary comes from the platform package; node-redis and ioredis", async () => {
  const triple = platformTriple();
  const { version } = require("../package.json");
  const targets = fs.readdirSync(path.join(root, "npm"));
  const out = path.join(dir, "release");
  const result = JSON.parse(
    execFileSync("node", [path.join(root, "scripts", "pack.js"), "--out", out, "--json"], {
      encoding: "utf8",
    }),
  );

  // main: no binary, every platform package as an optional dependency at this exact version
  expect(tarList(result.main)).not.toMatch(/\.node$/m);
  const mainPkg = tarJson(result.main, "package/package.json");
  expect(mainPkg.optionalDependencies).toEqual(
    Object.fromEntries(targets.map((t) => [platformPackage(t), version])),
  );
  expect(mainPkg.scripts).toBeUndefined();
  expect(mainPkg.devDependencies).toBeUndefined();

  // the platform package built here: its binary, and the fields npm selects it by
  expect(Object.keys(result.platforms)).toEqual([triple]);
  expect(result.notBuilt.sort()).toEqual(targets.filter((t) => t !== triple).sort());
  const platformTarball = result.platforms[triple];
  expect(tarList(platformTarball)).toContain(`package/socket-io-redis-native.${triple}.node`);
  const platformPkg = tarJson(platformTarball, "package/package.json");
  expect(platformPkg).toMatchObject({
    name: platformPackage(triple),
    version,
    os: [process.platform],
    cpu: [process.arch],
  });

  const project = cleanProject("release-app", [
    result.main,
    platformTarball,
    `socket.io@${versionOf("socket.io")}`,
    `socket.io-client@${versionOf("socket.io-client")}`,
    `redis@${versionOf("redis")}`,
    `ioredis@${versionOf("ioredis")}`,
  ]);
  const installed = path.join(project, "node_modules", "socket.io-redis-native");
  expect(fs.readdirSync(installed).filter((f) => f.endsWith(".node"))).toEqual([]);

  const run = await runApp(project, ["node-redis", "ioredis"]);
  expect(run).toContain("received:from a (node-redis)");
  expect(run).toContain("received:from b (ioredis)");
  expect(run).toContain("sockets:2");
  const binaries = run.split("\n").filter((l) => l.startsWith("binary:"));
  expect(binaries).toEqual([
    `binary:${path.join(project, "node_modules", platformPackage(triple), `socket-io-redis-native.${triple}.node`)}`,
  ]);
}, 300000);
