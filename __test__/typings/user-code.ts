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
