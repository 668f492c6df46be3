"use strict";
// A new user's path: `npm pack`, install the tarball into a clean Node project next to
// socket.io and node-redis, change nothing but the import, and broadcasts cross nodes.
const { execFileSync, execFile } = require("child_process");
const fs = require("fs");
const os = require("os");
const path = require("path");
const { startRedis } = require("./helpers/redis");

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

const USER_SCRIPT = `
const http = require("http");
const { Server } = require("socket.io");
const { io: connect } = require("socket.io-client");
const { createClient } = require("redis");
const { createAdapter } = require("socket.io-redis-native");

async function node(url) {
  const pubClient = createClient({ url });
  const subClient = pubClient.duplicate();
  await Promise.all([pubClient.connect(), subClient.connect()]);
  const server = http.createServer();
  const io = new Server(server, { adapter: createAdapter(pubClient, subClient) });
  await new Promise((r) => server.listen(0, r));
  await io.of("/").adapter.init();
  const client = connect("http://127.0.0.1:" + server.address().port, { transports: ["websocket"] });
  await new Promise((r) => client.on("connect", r));
  return { io, client, pubClient, subClient };
}

(async () => {
  const url = process.argv[2];
  const a = await node(url);
  const b = await node(url);
  const received = new Promise((r) => b.client.on("hello", r));
  a.io.emit("hello", "from a");
  const timer = setTimeout(() => { console.log("TIMEOUT"); process.exit(1); }, 5000);
  console.log("received:" + (await received));
  console.log("sockets:" + (await a.io.fetchSockets()).length);
  clearTimeout(timer);
  for (const n of [a, b]) { n.client.close(); n.io.close(); await n.pubClient.quit(); await n.subClient.quit(); }
})();
`;

test("npm pack output installs into a clean project and works there", async () => {
  const packed = execFileSync("npm", ["pack", "--silent", "--pack-destination", dir], {
    cwd: root,
    encoding: "utf8",
  })
    .trim()
    .split("\n")
    .pop();
  const tarball = path.join(dir, packed);
  const contents = execFileSync("tar", ["-tzf", tarball], { encoding: "utf8" });
  expect(contents).toMatch(/package\/socket-io-redis-native\.linux-x64-gnu\.node/);
  expect(contents).toMatch(/package\/index\.d\.ts/);
  expect(contents).not.toMatch(/package\/src\//);

  const project = path.join(dir, "app");
  fs.mkdirSync(project);
  fs.writeFileSync(path.join(project, "package.json"), '{"name":"app","private":true}');
  const versions = (name) => require(path.join(root, "node_modules", name, "package.json")).version;
  execFileSync(
    "npm",
    [
      "install",
      "--no-audit",
      "--no-fund",
      "--prefer-offline",
      tarball,
      `socket.io@${versions("socket.io")}`,
      `socket.io-client@${versions("socket.io-client")}`,
      `redis@${versions("redis")}`,
    ],
    { cwd: project, stdio: "pipe" },
  );
  fs.writeFileSync(path.join(project, "app.js"), USER_SCRIPT);
  const started = Date.now();
  const out = await new Promise((resolve, reject) =>
    execFile("node", ["app.js", redis.url], { cwd: project, timeout: 20000 }, (err, stdout) =>
      err ? reject(new Error(`${err.message}\n${stdout}`)) : resolve(stdout),
    ),
  );
  expect(out).toContain("received:from a");
  expect(out).toContain("sockets:2");
  // the process ended by itself once the servers and user clients were closed
  expect(Date.now() - started).toBeLessThan(20000);
}, 240000);
