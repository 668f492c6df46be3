// Typings of socket.io-redis-native/streams: the shapes of @socket.io/redis-streams-adapter 0.3.
import { ClusterAdapter, ClusterMessage, ClusterResponse, Offset } from "socket.io-adapter";
import { DeliveryMetrics, LatencyHistogram, PublisherMetrics, SubscriberMetrics } from "./index";

export interface RedisStreamsAdapterOptions {
  /** @default "socket.io" */
  streamName: string;
  /** @default 1 */
  streamCount: number;
  /** @default "socket.io" */
  channelPrefix: string;
  /** Not supported yet by the native adapter (throws). @default false */
  useShardedPubSub: boolean;
  /** @default 10000 */
  maxLen: number;
  /** @default 100 */
  readCount: number;
  /** @default 5000 */
  blockTimeInMs: number;
  /** @default "sio:session:" */
  sessionKeyPrefix: string;
  /** Unused since 0.3 (kept for compatibility). @default 5000 */
  heartbeatInterval: number;
  /** Unused since 0.3 (kept for compatibility). @default 10000 */
  heartbeatTimeout: number;
  /** @default false */
  onlyPlaintext: boolean;
  /**
   * Self-ping period of the pub/sub connection used for requests (ms, 0 = off). Not in the
   * official package. @default 5000
   */
  healthCheckInterval: number;
}

/** Counters of the native node shared by the adapters of one createAdapter() call. */
export interface StreamsAdapterMetrics {
  written: number;
  writeRetries: number;
  writeFailures: number;
  readers: { entries: number; errors: number; reconnects: number; losses: number }[];
  /** The pub/sub connection of requests and responses. */
  subscriber: SubscriberMetrics;
  /** Pub/sub messages (requests and responses). */
  published: PublisherMetrics;
  /** Stream entries and pub/sub messages skipped because they could not be decoded. */
  decodeErrors: number;
  /** Age of each stream entry when read: entry id time (set by Redis at XADD) to read time. */
  streamLagMs: LatencyHistogram;
  /** What waits for the JS thread (no bound for the streams adapter yet). */
  delivery: DeliveryMetrics;
}

export declare function createAdapter(
  redisClient: any,
  opts?: Partial<RedisStreamsAdapterOptions>,
): (nsp: any) => RedisStreamsAdapter;

export declare const createStreamsAdapter: typeof createAdapter;

export declare class RedisStreamsAdapter extends ClusterAdapter {
  doPublish(message: ClusterMessage): Promise<Offset>;
  doPublishResponse(requesterUid: string, response: ClusterResponse): Promise<void>;
  serverCount(): Promise<number>;
  metrics(): StreamsAdapterMetrics;
}
