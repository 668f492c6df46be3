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
  /** Requests and responses over SPUBLISH/SSUBSCRIBE/SHARDNUMSUB (Redis ≥ 7). @default false */
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
   * Not in the official package: one write per engine.io flush instead of one per packet
   * (see RedisAdapterOptions.coalesceWebSocketWrites in the main typings).
   * @default true
   */
  coalesceWebSocketWrites: boolean;
  /**
   * Self-ping period of the pub/sub connection used for requests (ms, 0 = off). Not in the
   * official package. @default 5000
   */
  healthCheckInterval: number;
  /**
   * Not in the official package. Past this many bytes of entries waiting for the JS thread,
   * the stream readers hold their next XREAD until JS caught up: memory stays bounded and
   * nothing is dropped (the entries wait in the stream). 0 = never hold. @default 67108864
   */
  maxPendingDeliveryBytes: number;
  /**
   * Not in the official package: fetchSockets() parses remote handshakes on first use (see
   * RedisAdapterOptions.lazyRemoteHandshakes in the main typings); `false` = plain objects at
   * once, as the official adapter. @default true
   */
  lazyRemoteHandshakes: boolean;
}

/** Counters of the native node shared by the adapters of one createAdapter() call. */
export interface StreamsAdapterMetrics {
  written: number;
  writeRetries: number;
  writeFailures: number;
  readers: {
    stream: string;
    entries: number;
    errors: number;
    reconnects: number;
    /** times entries were found trimmed before this node read them */
    losses: number;
    /** how many entries those were (Redis ≥ 7.0 tells; 0 when unknown) */
    lostEntries: number;
  }[];
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

/** Payload of the adapter's "stream-loss" event. */
export interface StreamLoss {
  stream: string;
  /** the last entry this node had read */
  after: string;
  /** the stream's first entry when the loss was found */
  firstAvailable: string;
  /** how many entries were trimmed unread; null before Redis 7.0 */
  lost: number | null;
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
  /** Entries of this namespace's stream were trimmed (MAXLEN ~) before this node read them. */
  on(event: "stream-loss", listener: (loss: StreamLoss) => void): this;
  on(event: string | symbol, listener: (...args: any[]) => void): this;
}
