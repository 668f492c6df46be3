"use strict";

// A TCP proxy in front of Redis that can make one connection go silent: bytes are swallowed in
// both directions while both sockets stay open. That is what a half-open connection or a
// misbehaving middlebox looks like to a client: no error, no close, just nothing arriving.

const net = require("net");

/**
 * @param {number} targetPort Redis port on 127.0.0.1
 * @returns {Promise<{port, url, freezeUpstreamPort(localPort): boolean, close()}>}
 */
async function startProxy(targetPort) {
  const pairs = new Set(); // { client, upstream, frozen }
  const server = net.createServer((client) => {
    const upstream = net.connect({ port: targetPort, host: "127.0.0.1" });
    const pair = { client, upstream, frozen: false };
    pairs.add(pair);
    client.on("data", (d) => pair.frozen || upstream.write(d));
    upstream.on("data", (d) => pair.frozen || client.write(d));
    const end = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    for (const s of [client, upstream]) {
      s.on("error", end);
      s.on("close", end);
    }
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address();
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    /** Silences the connection whose Redis-side address ends in `localPort` (CLIENT LIST addr). */
    freezeUpstreamPort(localPort) {
      for (const pair of pairs) {
        if (pair.upstream.localPort === localPort) {
          pair.frozen = true;
          return true;
        }
      }
      return false;
    },
    /** Local ports of the proxy's sockets to Redis: their `addr` in CLIENT LIST. */
    upstreamPorts: () => [...pairs].map((p) => p.upstream.localPort),
    close() {
      for (const { client, upstream } of pairs) {
        client.destroy();
        upstream.destroy();
      }
      pairs.clear();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

module.exports = { startProxy };
