// User-style code for the sharded adapter: what people write with @socket.io/redis-adapter's
// createShardedAdapter, with one import changed, plus an ioredis Cluster (not accepted upstream).
import { Server } from "socket.io";
import { createClient } from "redis";
import { Cluster } from "ioredis";
import {
  createShardedAdapter,
  ShardedRedisAdapterOptions,
  ShardedAdapterMetrics,
} from "socket.io-redis-native";

export async function sharded(): Promise<void> {
  const pubClient = createClient({ url: "redis://localhost:6379" });
  const subClient = pubClient.duplicate();
  const options: ShardedRedisAdapterOptions = {
    channelPrefix: "my-app",
    subscriptionMode: "dynamic-private",
  };
  const io = new Server({ adapter: createShardedAdapter(pubClient, subClient, options) });
  const cluster = new Cluster([{ host: "localhost", port: 7000 }]);
  const io2 = new Server({ adapter: createShardedAdapter(cluster, cluster.duplicate()) });
  const count: number = await io.of("/").adapter.serverCount();
  const adapter = createShardedAdapter(pubClient, subClient)(io2.of("/"));
  const metrics: ShardedAdapterMetrics = adapter.metrics();
  console.log(count, metrics.received);
}
