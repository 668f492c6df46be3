// Typings of socket.io-redis-native: the same exported names and shapes as
// @socket.io/redis-adapter 8.3, plus what this package adds (metrics, error classes).
import {
  Adapter,
  BroadcastOptions,
  ClusterAdapter,
  ClusterMessage,
  ClusterResponse,
  Offset,
  Room,
} from "socket.io-adapter";

export interface Parser {
  decode: (msg: any) => any;
  encode: (msg: any) => any;
}

export interface RedisAdapterOptions {
  /**
   * The prefix of the Redis channels.
   * @default "socket.io"
   */
  key: string;
  /**
   * Milliseconds to wait for the other nodes' answers (fetchSockets, allRooms, serverSideEmit with ack).
   * @default 5000
   */
  requestsTimeout: number;
  /**
   * Answer requests on the requester's own channel rather than the common one.
   * @default false
   */
  publishOnSpecificResponseChannel: boolean;
  /**
   * Encoder/decoder of broadcast envelopes.
   * @default notepack.io
   */
  parser: Parser;
}

/**
 * What Redis to reach: a node-redis v4/v5 client or cluster, an ioredis client or cluster
 * (standalone, sentinel), a `redis://` / `rediss://` URL, or a plain options object. Only the
 * connection settings are read; the native core opens its own connections.
 */
export type RedisClientLike = any;

/** Counters of the native node shared by the adapters of one createAdapter() call. */
export interface AdapterMetrics {
  received: number;
  receivedBytes: number;
  delivered: number;
  skippedNoLocalRoom: number;
  skippedOwn: number;
  skippedForeign: number;
  decodeErrors: number;
  responsesMatched: number;
  reconnects: number;
  pendingRequests: number;
}

export declare function createAdapter(
  pubClient: RedisClientLike,
  subClient?: RedisClientLike,
  opts?: Partial<RedisAdapterOptions>,
): (nsp: any) => RedisAdapter;

export declare class RedisAdapter extends Adapter {
  readonly pubClient: any;
  readonly subClient: any;
  readonly uid: any;
  readonly requestsTimeout: number;
  readonly publishOnSpecificResponseChannel: boolean;
  readonly parser: Parser;
  constructor(
    nsp: any,
    pubClient: any,
    subClient: any,
    opts?: Partial<RedisAdapterOptions>,
  );
  broadcast(packet: any, opts: BroadcastOptions): void;
  broadcastWithAck(
    packet: any,
    opts: BroadcastOptions,
    clientCountCallback: (clientCount: number) => void,
    ack: (...args: any[]) => void,
  ): void;
  allRooms(): Promise<Set<Room>>;
  fetchSockets(opts: BroadcastOptions): Promise<any[]>;
  addSockets(opts: BroadcastOptions, rooms: Room[]): void;
  delSockets(opts: BroadcastOptions, rooms: Room[]): void;
  disconnectSockets(opts: BroadcastOptions, close: boolean): void;
  serverSideEmit(packet: any[]): void;
  serverCount(): Promise<number>;
  /** Counters of the native core (not in the official package). */
  metrics(): AdapterMetrics;
  close(): Promise<void> | void;
}

export interface ShardedRedisAdapterOptions {
  /**
   * The prefix for the Redis Pub/Sub channels.
   *
   * @default "socket.io"
   */
  channelPrefix?: string;
  /**
   * The subscription mode impacts the number of Redis Pub/Sub channels:
   *
   * - "static": 2 channels per namespace. Useful when used with dynamic namespaces.
   * - "dynamic": (2 + 1 per public room) channels per namespace. Useful when some rooms have a
   *   low number of clients (so only a few Socket.IO servers are notified).
   * - "dynamic-private": like "dynamic" but creates separate channels for private rooms as well.
   *   Useful when there is lots of 1:1 communication via socket.emit() calls.
   *
   * @default "dynamic"
   */
  subscriptionMode?: "static" | "dynamic" | "dynamic-private";
}

/** Counters of the native node shared by the adapters of one createShardedAdapter() call. */
export interface ShardedAdapterMetrics {
  received: number;
  receivedBytes: number;
  delivered: number;
  skippedOwn: number;
  skippedForeign: number;
  decodeErrors: number;
  reconnects: number;
}

/**
 * Create a new Adapter based on Redis sharded Pub/Sub introduced in Redis 7.0. Accepts the same
 * clients as createAdapter, ioredis `Cluster` included.
 */
export declare function createShardedAdapter(
  pubClient: RedisClientLike,
  subClient?: RedisClientLike,
  opts?: ShardedRedisAdapterOptions,
): (nsp: any) => ShardedRedisAdapter;

export declare class ShardedRedisAdapter extends ClusterAdapter {
  readonly pubClient: any;
  readonly subClient: any;
  constructor(nsp: any, pubClient: any, subClient: any, opts?: ShardedRedisAdapterOptions);
  doPublish(message: ClusterMessage): Promise<Offset>;
  doPublishResponse(requesterUid: string, response: ClusterResponse): Promise<void>;
  serverCount(): Promise<number>;
  /** Counters of the native core (not in the official package). */
  metrics(): ShardedAdapterMetrics;
  close(): Promise<void> | void;
}

/** Thrown at creation for invalid options. */
export declare class InvalidOptionError extends TypeError {}
/** Thrown at creation when the Redis client or URL cannot be used. */
export declare class InvalidRedisClientError extends TypeError {}

export default createAdapter;
