// User-style code: what people write with @socket.io/redis-adapter, with one import changed.
import { Server } from "socket.io";
import { createClient } from "redis";
import { Redis } from "ioredis";
import {
  createAdapter,
  RedisAdapter,
  RedisAdapterOptions,
  AdapterMetrics,
  InvalidOptionError,
} from "socket.io-redis-native";

async function main(): Promise<void> {
  const pubClient = createClient({ url: "redis://localhost:6379" });
  const subClient = pubClient.duplicate();
  const io = new Server({ adapter: createAdapter(pubClient, subClient) });

  const options: Partial<RedisAdapterOptions> = {
    key: "my-app",
    requestsTimeout: 3000,
    publishOnSpecificResponseChannel: true,
    parser: { encode: JSON.stringify, decode: JSON.parse },
  };
  const io2 = new Server({ adapter: createAdapter(new Redis(), new Redis(), options) });
  const io3 = new Server({ adapter: createAdapter("redis://localhost:6379") });

  const adapter = io.of("/").adapter as RedisAdapter;
  const count: number = await adapter.serverCount();
  const rooms: Set<string | number> = await adapter.allRooms();
  const metrics: AdapterMetrics = adapter.metrics();
  const uid: string = adapter.uid;
  console.log(count, rooms.size, metrics.received, uid, io2, io3);

  try {
    createAdapter("redis://localhost:6379", undefined, { requestsTimeout: -1 });
  } catch (e) {
    if (e instanceof InvalidOptionError) console.log(e.message);
  }
}

main();

// Emitter, as users of @socket.io/redis-emitter write it (plus the sharded and streams targets).
import {
  Emitter,
  BroadcastOperator,
  RESERVED_EVENTS,
  EmitterOptions,
} from "socket.io-redis-native";

interface EmitterEvents {
  basicEmit: (a: number, b: string, c: Buffer) => void;
  noArgs: () => void;
}
interface ServerSideEvents {
  ping: (at: number) => void;
}

async function emitterUsage(): Promise<void> {
  const redisClient = createClient({ url: "redis://localhost:6379" });
  await redisClient.connect();
  const emitter = new Emitter<EmitterEvents, ServerSideEvents>(redisClient);

  emitter.emit("basicEmit", 1, "2", Buffer.from([3])); // fire and forget: never an unhandled rejection
  const ok: true = await emitter
    .to("room1")
    .except(["room2"])
    .volatile.compress(false)
    .emit("noArgs");
  const op: BroadcastOperator<EmitterEvents> = emitter.of("admin").in(["a", "b"]);
  await op.emit("basicEmit", 4, "5", Buffer.alloc(0));
  await emitter.serverSideEmit("ping", Date.now());
  await emitter.to("room1").socketsJoin("room3");
  await emitter.socketsLeave(["room3"]);
  await emitter.disconnectSockets(true);
  console.log(ok, RESERVED_EVENTS.has("connect"));

  const sharded: EmitterOptions = { adapter: "sharded", subscriptionMode: "dynamic-private" };
  const streams: EmitterOptions = {
    adapter: "streams",
    streamName: "s",
    streamCount: 3,
    maxLen: 1000,
  };
  await new Emitter(new Redis(), sharded).emit("anything", { a: 1 });
  await new Emitter("redis://localhost:6379", streams).of("/chat").emit("anything");
  try {
    await emitter.emit("noArgs");
  } catch (e) {
    console.log((e as Error).message);
  }
  await emitter.close();
}

emitterUsage();

// The streams adapter, imported as from @socket.io/redis-streams-adapter.
import {
  createAdapter as createStreamsAdapter,
  RedisStreamsAdapter,
  RedisStreamsAdapterOptions,
  StreamLoss,
} from "socket.io-redis-native/streams";

async function streamsUser(): Promise<void> {
  const redisClient = createClient({ url: "redis://localhost:6379" });
  const options: Partial<RedisStreamsAdapterOptions> = {
    streamName: "app",
    streamCount: 3,
    useShardedPubSub: true,
    lazyRemoteHandshakes: false,
  };
  const io = new Server({
    adapter: createStreamsAdapter(redisClient, options),
    connectionStateRecovery: { maxDisconnectionDuration: 60_000 },
  });
  const adapter = io.of("/").adapter as RedisStreamsAdapter;
  const count: number = await adapter.serverCount();
  console.log(count, adapter.metrics().written, adapter.metrics().readers[0].lostEntries);
  adapter.on("stream-loss", (loss: StreamLoss) => {
    const lost: number | null = loss.lost;
    console.log(loss.stream, loss.after, loss.firstAvailable, lost);
  });
}
void streamsUser;
