"use strict";

// TLS to Redis: a CA, a server certificate (SAN 127.0.0.1/localhost) and a client certificate
// made with openssl for the test, a redis-server with a TLS port that requires client
// certificates. The adapters (classic, sharded, streams) and the emitter connect through
// node-redis and ioredis clients configured for TLS (their `ca`/`cert`/`key` reach the Rust
// core), and two nodes see each other's broadcasts and answer each other's requests over it.
// A wrong CA fails without leaking key material; `rejectUnauthorized: false` connects.

jest.retryTimes(1, { logErrorsBeforeRetry: true });

const fs = require("fs");
const os = require("os");
const path = require("path");
const { execFileSync } = require("child_process");
const { startRedis, getFreePort, waitUntil } = require("./helpers/redis");
const { startNode } = require("./helpers/single-node");
const { Emitter } = require("..");

const noop = () => {};

function makeCertificates(dir) {
  const ssl = (...args) => execFileSync("openssl", args, { cwd: dir, stdio: "pipe" });
  const ca = (name) => {
    ssl(
      "req",
      "-x509",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-days",
      "1",
      "-subj",
      `/CN=${name}`,
      "-keyout",
      `${name}.key`,
      "-out",
      `${name}.crt`,
    );
  };
  const signed = (name, cn, ext) => {
    ssl(
      "req",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-subj",
      `/CN=${cn}`,
      "-keyout",
      `${name}.key`,
      "-out",
      `${name}.csr`,
    );
    fs.writeFileSync(path.join(dir, `${name}.ext`), ext);
    ssl(
      "x509",
      "-req",
      "-in",
      `${name}.csr`,
      "-CA",
      "ca.crt",
      "-CAkey",
      "ca.key",
      "-CAcreateserial",
      "-days",
      "1",
      "-out",
      `${name}.crt`,
      "-extfile",
      `${name}.ext`,
    );
  };
  ca("ca");
  ca("other-ca");
  signed(
    "server",
    "localhost",
    "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
  );
  signed("client", "socket.io-node", "extendedKeyUsage=clientAuth\n");
  const read = (f) => fs.readFileSync(path.join(dir, f), "utf8");
  return {
    ca: read("ca.crt"),
    otherCa: read("other-ca.crt"),
    cert: read("client.crt"),
    key: read("client.key"),
    files: (f) => path.join(dir, f),
  };
}

describe("TLS connections to Redis", () => {
  let dir;
  let certs;
  let redis;
  let tlsPort;
  let url;
  const cleanups = [];

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "sio-tls-"));
    certs = makeCertificates(dir);
    tlsPort = await getFreePort();
    url = `rediss://127.0.0.1:${tlsPort}`;
    redis = await startRedis({
      args: [
        "--tls-port",
        String(tlsPort),
        "--tls-cert-file",
        certs.files("server.crt"),
        "--tls-key-file",
        certs.files("server.key"),
        "--tls-ca-cert-file",
        certs.files("ca.crt"),
        "--tls-auth-clients",
        "yes",
      ],
    });
  }, 60000);

  afterAll(async () => {
    for (const c of cleanups.reverse()) await c().catch(noop);
    if (redis) await redis.stop();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c().catch(noop);
  });

  async function nodeRedisTls(extra = {}) {
    const { createClient } = require("redis");
    const client = createClient({
      url,
      socket: { tls: true, ca: certs.ca, cert: certs.cert, key: certs.key, ...extra },
    });
    client.on("error", noop);
    await client.connect(); // the client itself works over TLS with these settings
    cleanups.push(() => client.quit());
    return client;
  }

  async function ioredisTls() {
    const { Redis } = require("ioredis");
    const client = new Redis({
      host: "127.0.0.1",
      port: tlsPort,
      tls: { ca: certs.ca, cert: certs.cert, key: certs.key },
      maxRetriesPerRequest: 1,
    });
    client.on("error", noop);
    await new Promise((resolve, reject) => {
      client.once("ready", resolve);
      client.once("end", () => reject(new Error("ioredis TLS client did not connect")));
    });
    cleanups.push(async () => client.disconnect());
    return client;
  }

  /** Two nodes over TLS: broadcasts both ways and a request answered by the other node. */
  async function twoNodesWork(kind, client) {
    const a = await startNode(kind, client, { requestsTimeout: 2000 });
    cleanups.push(() => a.close());
    const b = await startNode(kind, client, { requestsTimeout: 2000 });
    cleanups.push(() => b.close());
    for (const [from, to] of [
      [a, b],
      [b, a],
    ]) {
      let got = 0;
      to.client.on("over-tls", () => got++);
      await waitUntil(
        () => {
          from.io.emit("over-tls");
          return got > 0;
        },
        { timeout: 15000, interval: 100, what: `${kind} broadcast over TLS` },
      );
    }
    await waitUntil(async () => (await a.io.fetchSockets().catch(() => [])).length === 2, {
      timeout: 10000,
      what: `${kind} fetchSockets over TLS`,
    });
    return { a, b };
  }

  it.each(["classic", "sharded"])(
    "%s adapter with a node-redis TLS client (ca, cert, key)",
    async (kind) => {
      await twoNodesWork(kind, await nodeRedisTls());
    },
    60000,
  );

  it.each(["classic", "streams"])(
    "%s adapter with an ioredis TLS client (tls: { ca, cert, key })",
    async (kind) => {
      await twoNodesWork(kind, await ioredisTls());
    },
    60000,
  );

  it("a rediss:// URL in an options object with the CA and client certificate", async () => {
    await twoNodesWork("classic", {
      url,
      socket: { tls: true, ca: certs.ca, cert: certs.cert, key: certs.key },
    });
  }, 60000);

  it("the emitter over TLS reaches a TLS adapter node", async () => {
    const client = await nodeRedisTls();
    const node = await startNode("classic", client, {});
    cleanups.push(() => node.close());
    const emitter = new Emitter(client);
    cleanups.push(() => emitter.close());
    let got = 0;
    node.client.on("from-emitter", () => got++);
    await waitUntil(
      async () => {
        await emitter.emit("from-emitter");
        return got > 0;
      },
      { timeout: 15000, interval: 100, what: "emitter broadcast over TLS" },
    );
  }, 60000);

  it("a wrong CA fails (the emitter rejects) and no key material appears in the error", async () => {
    const emitter = new Emitter({
      url,
      socket: {
        tls: true,
        ca: certs.otherCa,
        cert: certs.cert,
        key: certs.key,
        connectTimeout: 2000,
      },
    });
    const err = await emitter.emit("never").then(
      () => null,
      (e) => e,
    );
    // (an Error of the addon's realm, not jest's: checked by shape)
    expect(err && typeof err.message).toBe("string");
    console.log(`wrong CA: ${err.message}`);
    expect(err.message).toMatch(/certificate/i);
    const keyBody = certs.key.split("\n")[1];
    for (const secret of [keyBody, "PRIVATE KEY", "BEGIN CERTIFICATE"]) {
      expect(err.message).not.toContain(secret);
      expect(String(err.stack)).not.toContain(secret);
    }
  }, 60000);

  it("rejectUnauthorized: false connects without the CA (client certificate still sent)", async () => {
    await twoNodesWork("classic", {
      url,
      socket: { tls: true, rejectUnauthorized: false, cert: certs.cert, key: certs.key },
    });
  }, 60000);
});
