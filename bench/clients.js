"use strict";
// The Socket.IO clients of one bench cluster, all in this one process, speaking the
// Engine.IO v4 / Socket.IO v5 wire protocol over raw websockets (no socket.io-client
// decoding: the clients must cost as little CPU as possible on a 2-core machine, since
// they share it with the servers being measured). The websockets are raw-ws.js's frame
// readers, or the `ws` package's with `wsClients` (bench --ws-clients, as before). Counts the
// "m" events per node, reads the send timestamp at the start of each event for latency, and
// acks "a" events.
//
// argv[2]: JSON { nodes: [{ port, count, room }], wsClients?: boolean }

const WebSocket = require("ws");
const { RawWebSocket } = require("./raw-ws");
const { runChild, send } = require("./child-common");
const { Reservoir, nowUs } = require("./stats");

const cfg = JSON.parse(process.argv[2]);
const nodeCount = cfg.nodes.length;
const totals = new Array(nodeCount).fill(0); // "m" events received by all clients of a node
const probes = new Array(nodeCount).fill(0); // "m" events received by the first client of a node
const latency = new Reservoir(1 << 17); // milliseconds
let acks = 0;
let progressDirty = false;

const CH_0 = 0x30;
const CH_2 = 0x32;
const CH_4 = 0x34;
const CH_5 = 0x35;
const CH_BRACKET = 0x5b;

// Reads the integer that starts at `from` (the send timestamp, microseconds), up to `end`.
function readInt(buf, from, end) {
  let v = 0;
  for (let i = from; i < end; i++) {
    const c = buf[i];
    if (c < CH_0 || c > CH_0 + 9) break;
    v = v * 10 + (c - CH_0);
  }
  return v;
}

function onEvent(client, buf, offset, end) {
  // buf[offset] is '[': ["m",<t>,...] or ["a",<t>]
  const name = buf[offset + 2];
  const t = readInt(buf, offset + 5, end);
  if (t > 0) latency.add((nowUs() - t) / 1000);
  return name;
}

function count(client) {
  totals[client.node]++;
  if (client.probe) {
    probes[client.node]++;
    progressDirty = true;
  }
}

/** A websocket to the server at `port` calling `handlers` (see raw-ws.js) per message. */
function openWebSocket(port, handlers) {
  const path = "/socket.io/?EIO=4&transport=websocket";
  if (!cfg.wsClients) return new RawWebSocket(port, path, handlers);
  const ws = new WebSocket(`ws://127.0.0.1:${port}${path}`, { perMessageDeflate: false });
  ws.on("error", (e) => handlers.onError(e));
  ws.on("message", (data, isBinary) =>
    (isBinary ? handlers.onBinary : handlers.onText)(data, 0, data.length),
  );
  return ws;
}

function connect(node, index, port, room) {
  return new Promise((resolve, reject) => {
    const client = { ws: null, node, probe: index === 0, pendingBinary: 0 };
    const timer = setTimeout(
      () => reject(new Error(`client ${node}/${index} did not connect`)),
      15000,
    );
    const ws = openWebSocket(port, {
      onError: (e) => reject(e),
      onBinary() {
        if (client.pendingBinary > 0 && --client.pendingBinary === 0) count(client);
      },
      onText(data, start, end) {
        const c0 = data[start];
        if (c0 === CH_4) {
          const c1 = data[start + 1];
          if (c1 === CH_2) {
            // EVENT, with an ack id when digits follow: 42["m",...] or 42<id>["a",...]
            if (data[start + 2] === CH_BRACKET) {
              onEvent(client, data, start + 2, end);
              count(client);
            } else {
              const open = data.indexOf(CH_BRACKET, start + 2);
              if (open < 0 || open >= end) throw new Error("malformed event with ack id");
              const id = data.latin1Slice(start + 2, open);
              onEvent(client, data, open, end);
              acks++;
              ws.send(`43${id}[1]`);
            }
          } else if (c1 === CH_5) {
            // BINARY_EVENT: 45<n>-["m",<t>,...,{"_placeholder":true,"num":0}]
            const dash = data.indexOf(0x2d, start + 2);
            if (dash < 0 || dash >= end) throw new Error("malformed binary event");
            client.pendingBinary = Number(data.latin1Slice(start + 2, dash));
            onEvent(client, data, dash + 1, end);
          } else if (c1 === CH_0) {
            clearTimeout(timer);
            resolve(client);
          }
        } else if (c0 === CH_2) {
          ws.send("3"); // ping -> pong
        } else if (c0 === CH_0) {
          ws.send(room ? `40${JSON.stringify({ room })}` : "40");
        }
      },
    });
    client.ws = ws;
  });
}

async function main() {
  const clients = [];
  for (let n = 0; n < nodeCount; n++) {
    const { port, count: k, room } = cfg.nodes[n];
    // Connect a node's clients a few at a time.
    for (let i = 0; i < k; i += 25) {
      const batch = [];
      for (let j = i; j < Math.min(k, i + 25); j++) batch.push(connect(n, j, port, room));
      clients.push(...(await Promise.all(batch)));
    }
  }

  setInterval(() => {
    if (!progressDirty) return;
    progressDirty = false;
    send({ type: "progress", probes });
  }, 2);

  runChild({
    counters: () => ({ totals: [...totals], probes: [...probes], acks }),
    onMark: (reset) => {
      const out = { latency: latency.summary() };
      if (reset) latency.reset();
      return out;
    },
    onMessage(msg) {
      if (msg.type === "reset") {
        totals.fill(0);
        probes.fill(0);
        latency.reset();
        send({ type: "ok", id: msg.id });
        return;
      }
      if (msg.type === "close") {
        for (const c of clients) c.ws.terminate();
        send({ type: "ok", id: msg.id });
        setTimeout(() => process.exit(0), 20);
        return;
      }
      throw new Error(`unknown message ${msg.type}`);
    },
  });
  send({ type: "ready", clients: clients.length });
}

main().catch((e) => {
  console.error("[bench clients]", e);
  process.exit(1);
});
