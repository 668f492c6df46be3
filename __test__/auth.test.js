"use strict";
// Passwords and ACL users reach Redis; credentials never appear in errors or debug logs.
const http = require("http");
const { Server } = require("socket.io");
const { io: connect } = require("socket.io-client");
const { createClient } = require("redis");
const debugModule = require("debug");
const { createAdapter } = require("..");
const { startRedis } = require("./helpers/redis");

const PASSWORD = "s3cret-Pa55";
const ACL_PASSWORD = "acl-Pa55-word";
let redis;
const open = [];

beforeAll(async () => {
  // The password is set after start: the harness checks readiness without credentials.
  redis = await startRedis();
  const admin = createClient({ url: redis.url });
  await admin.connect();
  await admin.sendCommand(["CONFIG", "SET", "requirepass", PASSWORD]);
  await admin.sendCommand(["ACL", "SETUSER", "app", "on", `>${ACL_PASSWORD}`, "~*", "&*", "+@all"]);
  await admin.quit();
});

afterEach(async () => {
  for (const n of open.splice(0)) {
    n.client.close();
    await new Promise((r) => n.io.close(() => r()));
  }
});

afterAll(async () => {
  if (redis) await redis.stop();
});

async function node(pubClient) {
  const server = http.createServer();
  const io = new Server(server, { adapter: createAdapter(pubClient) });
  await new Promise((r) => server.listen(0, r));
  await io.of("/").adapter.init();
  const client = connect(`http://127.0.0.1:${server.address().port}`, {
    transports: ["websocket"],
  });
  await new Promise((r) => client.on("connect", r));
  const n = { io, client };
  open.push(n);
  return n;
}

async function expectBroadcastCrosses(a, b) {
  const received = new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error("broadcast did not cross")), 5000);
    b.client.once("hi", (v) => {
      clearTimeout(t);
      resolve(v);
    });
  });
  a.io.emit("hi", 42);
  expect(await received).toBe(42);
}

test("requirepass: URL with password and node-redis client with password", async () => {
  const a = await node(`redis://:${PASSWORD}@127.0.0.1:${redis.port}`);
  const b = await node(createClient({ url: redis.url, password: PASSWORD }));
  await expectBroadcastCrosses(a, b);
  expect(await a.io.of("/").adapter.serverCount()).toBe(2);
});

test("ACL user: URL with user and password, ioredis-style options object", async () => {
  const a = await node(`redis://app:${ACL_PASSWORD}@127.0.0.1:${redis.port}`);
  const b = await node({
    host: "127.0.0.1",
    port: redis.port,
    username: "app",
    password: ACL_PASSWORD,
  });
  await expectBroadcastCrosses(a, b);
});

test("a wrong password gives an error without the password, and logs never show it", async () => {
  const lines = [];
  const previousLog = debugModule.log;
  const previousNamespaces = debugModule.disable();
  debugModule.enable("socket.io-redis-native*");
  debugModule.log = (...args) => lines.push(args.join(" "));
  const wrong = "Wr0ng-Secret-Value";
  try {
    const server = http.createServer();
    const io = new Server(server, {
      adapter: createAdapter(`redis://app:${wrong}@127.0.0.1:${redis.port}`),
    });
    open.push({ io, client: { close() {} } });
    const error = await io
      .of("/")
      .adapter.serverCount()
      .then(
        () => null,
        (e) => e,
      );
    // (the native error comes from another realm than jest's, so no instanceof check)
    expect(error).not.toBeNull();
    expect(error.message).toMatch(/WRONGPASS|invalid username-password|auth/i);
    expect(error.message).not.toContain(wrong);
    // let the subscriber report its failed attempts
    await new Promise((r) => setTimeout(r, 500));
    expect(lines.some((l) => /disconnected|WRONGPASS|auth/i.test(l))).toBe(true);
    for (const line of lines) expect(line).not.toContain(wrong);
  } finally {
    debugModule.log = previousLog;
    debugModule.disable();
    if (previousNamespaces) debugModule.enable(previousNamespaces);
  }
});
