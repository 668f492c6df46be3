"use strict";
// @socket.io/admin-ui 0.5 on a 3-node cluster: instrument() on every node, and an admin client
// connected to ONE node (as the admin UI connects: the /admin namespace, basic auth) sees the
// sockets of ALL nodes. The UI gets them from fetchSockets() across nodes ("all_sockets"), from
// every node's "server_stats" and "socket_connected" broadcasts in the admin namespace, and acts
// on remote sockets with socketsJoin() / broadcasts ("join", "emit").
const { io: ioc } = require("socket.io-client");
const { instrument } = require("@socket.io/admin-ui");
// bcryptjs is admin-ui's own dependency: it checks the configured password with it
const bcrypt = require("bcryptjs");
const { startRedis } = require("./helpers/redis");
const { createCluster, waitFor, waitUntil } = require("./helpers/cluster");

const USERNAME = "admin";
const PASSWORD = `pw-${Math.random().toString(36).slice(2)}`;
const PASSWORD_HASH = bcrypt.hashSync(PASSWORD, 4);

let redis;
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  if (redis) await redis.stop();
});

// instrument() starts a 2 s "server_stats" timer that nothing stops (unref'd, it outlives
// io.close()). Its emits on a closed official node reject unhandled ("The client is closed"),
// and would land in whichever test runs next: keep the handles to clear them at teardown.
const statsTimers = [];

function instrumentNode(io, i) {
  const realSetInterval = global.setInterval;
  global.setInterval = (...args) => {
    const timer = realSetInterval(...args);
    statsTimers.push(timer);
    return timer;
  };
  try {
    instrument(io, {
      auth: { type: "basic", username: USERNAME, password: PASSWORD_HASH },
      serverId: `node-${i}`,
      // jest sets NODE_ENV=test; "development" is the mode in which the UI lists every socket
      mode: "development",
    });
  } finally {
    global.setInterval = realSetInterval;
  }
}

/** An admin UI client on node `i`, recording what the UI would display. */
async function connectAdmin(c, i) {
  const client = ioc(`http://127.0.0.1:${c.ports[i]}/admin`, {
    forceNew: true,
    transports: ["websocket"],
    reconnection: false,
    auth: { username: USERNAME, password: PASSWORD },
  });
  c.allClients.push(client);
  const seen = { allSockets: null, stats: new Map(), connected: [], joined: [] };
  client.on("all_sockets", (sockets) => (seen.allSockets = sockets));
  client.on("server_stats", (stats) => seen.stats.set(stats.serverId, stats));
  client.on("socket_connected", (socket) => seen.connected.push(socket));
  client.on("room_joined", (nsp, room, id) => seen.joined.push({ nsp, room, id }));
  await waitFor(client, "connect", 10000);
  return { client, seen };
}

const TOPOLOGIES = [
  { name: "3 native nodes", nodes: ["native", "native", "native"], adminOn: [0] },
  // the admin client on a native node, then on the official node
  { name: "native + official + native", nodes: ["native", "official", "native"], adminOn: [0, 1] },
];

describe.each(TOPOLOGIES)("admin-ui with $name", ({ nodes, adminOn }) => {
  let c;
  beforeEach(async () => {
    c = await createCluster({
      redis: redis.url,
      redisHandle: redis,
      nodes,
      init: instrumentNode,
    });
    // a second user socket on node 2, so that the nodes hold different counts
    c.extra2 = await c.connect(2);
  });
  afterEach(async () => {
    for (const timer of statsTimers.splice(0)) clearInterval(timer);
    if (c) await c.closeAll();
  });

  test.each(adminOn)(
    "an admin client on node %i reports the sockets of all nodes",
    async (i) => {
      const userIds = [...c.clients.map((s) => s.id), c.extra2.client.id];
      const { client: admin, seen } = await connectAdmin(c, i);

      // "all_sockets": fetchSockets() of every namespace, answered by every node
      await waitUntil(() => seen.allSockets !== null, { timeout: 15000, what: "all_sockets" });
      const main = seen.allSockets.filter((s) => s.nsp === "/");
      expect(main.map((s) => s.id).sort()).toEqual([...userIds].sort());
      for (const s of main) {
        // what the UI shows per socket came from the node holding it (data._admin, handshake)
        expect(s.transport).toBe("websocket");
        expect(s.clientId).toEqual(expect.any(String));
        expect(s.handshake.address).toMatch(/127\.0\.0\.1/);
        expect(s.rooms).toContain(s.id);
      }
      expect(seen.allSockets.filter((s) => s.nsp === "/admin").map((s) => s.id)).toEqual([
        admin.id,
      ]);

      // "server_stats": every node broadcasts its own in the admin namespace every 2 s
      await waitUntil(() => seen.stats.size === nodes.length, {
        timeout: 15000,
        what: `server_stats of ${nodes.length} nodes (got ${[...seen.stats.keys()]})`,
      });
      const mainCount = (id) => seen.stats.get(id).namespaces.find((n) => n.name === "/");
      expect(mainCount("node-0").socketsCount).toBe(1);
      expect(mainCount("node-1").socketsCount).toBe(1);
      expect(mainCount("node-2").socketsCount).toBe(2);

      // "socket_connected" from the node a new socket connects to (not the admin's node)
      const other = (i + 1) % nodes.length;
      const { client: late } = await c.connect(other);
      await waitUntil(() => seen.connected.some((s) => s.id === late.id && s.nsp === "/"), {
        timeout: 10000,
        what: `socket_connected of ${late.id} from node ${other}`,
      });

      // the UI's actions reach remote sockets: "join" (socketsJoin) and "emit" (broadcast)
      const room = `admin-room-${i}`;
      admin.emit("join", "/", room);
      const everyone = [...userIds, late.id];
      await waitUntil(
        async () => (await c.servers[other].in(room).fetchSockets()).length === everyone.length,
        { timeout: 10000, what: `all ${everyone.length} sockets in ${room}` },
      );
      await waitUntil(
        () => everyone.every((id) => seen.joined.some((j) => j.room === room && j.id === id)),
        { timeout: 10000, what: "room_joined of every socket" },
      );
      const userClients = [...c.clients, c.extra2.client, late];
      const announced = userClients.map((u) => waitFor(u, "announcement", 10000));
      admin.emit("emit", "/", room, "announcement", `from admin on node ${i}`);
      for (const args of await Promise.all(announced)) {
        expect(args).toEqual([`from admin on node ${i}`]);
      }
    },
    90000,
  );

  test("a wrong password is refused", async () => {
    const client = ioc(`http://127.0.0.1:${c.ports[0]}/admin`, {
      forceNew: true,
      transports: ["websocket"],
      reconnection: false,
      auth: { username: USERNAME, password: "wrong" },
    });
    c.allClients.push(client);
    const [err] = await waitFor(client, "connect_error", 10000);
    expect(err.message).toBe("invalid credentials");
  }, 60000);
});
