"use strict";
// The Socket.IO clients of one bench cluster, all in this one process, speaking the
// Engine.IO v4 / Socket.IO v5 wire protocol over raw `ws` websockets (no socket.io-client
// decoding: the clients must cost as little CPU as possible on a 2-core machine, since
// they share it with the servers being measured). Counts the "m" events per node, reads
// the send timestamp at the start of each event for latency, and acks "a" events.
//
// argv[2]: JSON { nodes: [{ port, count, room }] }

const WebSocket = require("ws");
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

// Reads the integer that starts at `from` (the send timestamp, microseconds).
function readInt(buf, from) {
  let v = 0;
  for (let i = from; i < buf.length; i++) {
    const c = buf[i];
    if (c < CH_0 || c > CH_0 + 9) break;
    v = v * 10 + (c - CH_0);
  }
  return v;
}

function onEvent(client, buf, offset) {
  // buf[offset] is '[': ["m",<t>,...] or ["a",<t>]
  const name = buf[offset + 2];
  const t = readInt(buf, offset + 5);
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

function connect(node, index, port, room) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/socket.io/?EIO=4&transport=websocket`, {
      perMessageDeflate: false,
    });
    const client = { ws, node, probe: index === 0, pendingBinary: 0 };
    const timer = setTimeout(
      () => reject(new Error(`client ${node}/${index} did not connect`)),
      15000,
    );
    ws.on("error", (e) => reject(e));
    ws.on("message", (data, isBinary) => {
      if (isBinary) {
        if (client.pendingBinary > 0 && --client.pendingBinary === 0) count(client);
        return;
      }
      const c0 = data[0];
      if (c0 === CH_4) {
        const c1 = data[1];
        if (c1 === CH_2) {
          // EVENT, with an ack id when digits follow: 42["m",...] or 42<id>["a",...]
          if (data[2] === CH_BRACKET) {
            onEvent(client, data, 2);
            count(client);
          } else {
            const open = data.indexOf(CH_BRACKET, 2);
            const id = data.latin1Slice(2, open);
            onEvent(client, data, open);
            acks++;
            ws.send(`43${id}[1]`);
          }
        } else if (c1 === CH_5) {
          // BINARY_EVENT: 45<n>-["m",<t>,...,{"_placeholder":true,"num":0}]
          const dash = data.indexOf(0x2d, 2);
          client.pendingBinary = Number(data.latin1Slice(2, dash));
          onEvent(client, data, dash + 1);
        } else if (c1 === CH_0) {
          clearTimeout(timer);
          resolve(client);
        }
      } else if (c0 === CH_2) {
        ws.send("3"); // ping -> pong
      } else if (c0 === CH_0) {
        ws.send(room ? `40${JSON.stringify({ room })}` : "40");
      }
    });
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
