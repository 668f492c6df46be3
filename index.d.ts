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
  /**
   * Not in the official package. Corks each client's TCP socket while engine.io flushes
   * several packets to it, so they leave in one write instead of one syscall each (same
   * bytes, same order). Installed once per Socket.IO server.
   * @default true
   */
  coalesceWebSocketWrites: boolean;
  /**
   * Not in the official package. fetchSockets() parses the handshakes of remote sockets when
   * one of them is first used (a Proxy that behaves as the parsed object); false parses them
   * at once into plain objects, as the official adapter does (e.g. for structuredClone).
   * @default true
   */
  lazyRemoteHandshakes: boolean;
  /**
   * Milliseconds between two self-pings of the subscription connection; a ping not seen back
   * within one more interval makes the subscriber reconnect and resubscribe. 0 disables it.
   * (Not in the official package.)
   * @default 5000
   */
  healthCheckInterval: number;
  /**
   * Bytes of incoming messages that may wait for a busy JS thread; past it new ones are dropped
   * and counted in `metrics().delivery`. 0: no limit. (Not in the official package.)
   * @default 67108864 (64 MiB)
   */
  maxPendingDeliveryBytes: number;
}

/** Cumulative counts per upper bound in ms ("0.5" ... "10000", "+Inf"), sum in ms, count. */
export interface LatencyHistogram {
  buckets: Record<string, number>;
  sum: number;
  count: number;
}

/** What the publisher of a native node sent, refused and retried. */
export interface PublisherMetrics {
  messages: number;
  bytes: number;
  failed: number;
  droppedOverflow: number;
  retries: number;
  bufferedBytes: number;
  /** Batches written to Redis by the publishing thread itself, the sender being idle. */
  directWrites: number;
}

/** Requests of one type (sockets, allRooms, fetchSockets, serverSideEmit, other). */
export interface RequestTypeMetrics {
  sent: number;
  timedOut: number;
  failed: number;
  answers: number;
  missingAnswers: number;
  roundTripMs: LatencyHistogram;
}

/** What waits for the JS thread (not in the official packages). */
export interface DeliveryMetrics {
  pendingBytes: number;
  peakPendingBytes: number;
  /** The bound (`maxPendingDeliveryBytes`), 0 when none. */
  maxPendingBytes: number;
  droppedMessages: number;
  droppedBytes: number;
}

/** The subscription connection of a native node (not in the official packages). */
export interface SubscriberMetrics {
  /** Times every subscription was made again on a new connection. */
  resubscribes: number;
  pingsSent: number;
  pingsReceived: number;
  /** Self-pings Redis accepted that never came back (each one triggered a resubscription). */
  pingFailures: number;
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
  /** Of `delivered`: broadcasts handed over as the text clients receive (no JS decode/encode). */
  deliveredAsText: number;
  skippedNoLocalRoom: number;
  skippedOwn: number;
  skippedForeign: number;
  decodeErrors: number;
  responsesMatched: number;
  reconnects: number;
  pendingRequests: number;
  subscriber: SubscriberMetrics;
  published: PublisherMetrics;
  requests: Record<string, RequestTypeMetrics>;
  delivery: DeliveryMetrics;
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
  constructor(nsp: any, pubClient: any, subClient: any, opts?: Partial<RedisAdapterOptions>);
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
  /** See {@link RedisAdapterOptions.healthCheckInterval}. @default 5000 */
  healthCheckInterval?: number;
  /** See {@link RedisAdapterOptions.maxPendingDeliveryBytes}. @default 67108864 */
  maxPendingDeliveryBytes?: number;
  /**
   * Not in the official package. Corks each client's TCP socket while engine.io flushes
   * several packets to it, so they leave in one write instead of one syscall each (same
   * bytes, same order). Installed once per Socket.IO server.
   * @default true
   */
  coalesceWebSocketWrites?: boolean;
  /** See {@link RedisAdapterOptions.lazyRemoteHandshakes}. @default true */
  lazyRemoteHandshakes?: boolean;
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
  subscriber: SubscriberMetrics;
  published: PublisherMetrics;
  delivery: DeliveryMetrics;
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

// ---------------------------------------------------------------------------- Emitter
// As @socket.io/redis-emitter 5.1 (typed events included), plus the sharded and streams
// targets; every write returns a Promise of `true` (truthy) rejected with the Redis error.

/** An events map: event names to listener signatures. */
export interface EventsMap {
  [event: string]: any;
}

/** Accepts every event name, with any arguments. */
export interface DefaultEventsMap {
  [event: string]: (...args: any[]) => void;
}

export type EventNames<Map extends EventsMap> = keyof Map & (string | symbol);
export type EventParams<Map extends EventsMap, Ev extends EventNames<Map>> = Parameters<Map[Ev]>;

export interface EmitterOptions {
  /**
   * The adapter the Socket.IO servers run: `"classic"` (`createAdapter` of
   * @socket.io/redis-adapter or of this package, PUBLISH), `"sharded"` (`createShardedAdapter`,
   * SPUBLISH, Redis >= 7) or `"streams"` (@socket.io/redis-streams-adapter 0.3, XADD).
   * @default "classic"
   */
  adapter?: "classic" | "sharded" | "streams";
  /**
   * classic: the prefix of the channels.
   * @default "socket.io"
   */
  key?: string;
  /**
   * classic: the encoder of broadcasts (only `encode` is used).
   * @default notepack.io
   */
  parser?: { encode: (msg: any) => any };
  /**
   * sharded and streams: the prefix of the pub/sub channels.
   * @default the value of `key`, so "socket.io"
   */
  channelPrefix?: string;
  /**
   * sharded: the servers' `subscriptionMode` (it decides the channel of a broadcast to one room).
   * @default "dynamic"
   */
  subscriptionMode?: "static" | "dynamic" | "dynamic-private";
  /**
   * streams: the stream name, or the prefix of the stream names when `streamCount > 1`.
   * @default "socket.io"
   */
  streamName?: string;
  /**
   * streams: the number of streams the namespaces are spread over.
   * @default 1
   */
  streamCount?: number;
  /**
   * streams: `XADD ... MAXLEN ~ maxLen`.
   * @default 10000
   */
  maxLen?: number;
  /**
   * streams: SPUBLISH instead of PUBLISH for serverSideEmit.
   * @default false
   */
  useShardedPubSub?: boolean;
  /**
   * streams: always JSON in the stream, even with binary arguments.
   * @default false
   */
  onlyPlaintext?: boolean;
}

interface EmitterBroadcastFlags {
  volatile?: boolean;
  compress?: boolean;
}

export declare class Emitter<
  EmitEvents extends EventsMap = DefaultEventsMap,
  ServerSideEvents extends EventsMap = DefaultEventsMap,
> {
  readonly redisClient: any;
  readonly nsp: string;
  /**
   * @param redisClient - a node-redis v4/v5 or ioredis client or cluster, a URL or an options
   *   object: only its settings are read, the emitter opens its own connection on first use
   */
  constructor(redisClient: RedisClientLike, opts?: EmitterOptions, nsp?: string);
  /** Return a new emitter for the given namespace (same connection). */
  of(nsp: string): Emitter<EmitEvents, ServerSideEvents>;
  /** Emits to all clients. Resolves with `true` once Redis accepted the message. */
  emit<Ev extends EventNames<EmitEvents>>(
    ev: Ev,
    ...args: EventParams<EmitEvents, Ev>
  ): Promise<true>;
  /** Targets a room when emitting. */
  to(room: string | string[]): BroadcastOperator<EmitEvents>;
  /** Targets a room when emitting. */
  in(room: string | string[]): BroadcastOperator<EmitEvents>;
  /** Excludes a room when emitting. */
  except(room: string | string[]): BroadcastOperator<EmitEvents>;
  /** The event data may be lost if the client is not ready to receive messages. */
  get volatile(): BroadcastOperator<EmitEvents>;
  /** Sets the compress flag. */
  compress(compress: boolean): BroadcastOperator<EmitEvents>;
  /** Makes the matching socket instances join the specified rooms. */
  socketsJoin(rooms: string | string[]): Promise<true>;
  /** Makes the matching socket instances leave the specified rooms. */
  socketsLeave(rooms: string | string[]): Promise<true>;
  /** Makes the matching socket instances disconnect. */
  disconnectSockets(close?: boolean): Promise<true>;
  /**
   * Send a packet to the Socket.IO servers in the cluster (no acknowledgement: a function as
   * last argument throws "Acknowledgements are not supported").
   */
  serverSideEmit<Ev extends EventNames<ServerSideEvents>>(
    ev: Ev,
    ...args: EventParams<ServerSideEvents, Ev>
  ): Promise<true>;
  /** Waits for the writes under way, then closes the connection. Optional. */
  close(): Promise<void>;
}

export declare const RESERVED_EVENTS: ReadonlySet<string | Symbol>;

export declare class BroadcastOperator<EmitEvents extends EventsMap> {
  private readonly connection;
  private readonly broadcastOptions;
  private readonly rooms;
  private readonly exceptRooms;
  private readonly flags;
  constructor(
    connection: any,
    broadcastOptions: any,
    rooms?: Set<string>,
    exceptRooms?: Set<string>,
    flags?: EmitterBroadcastFlags,
  );
  /** Targets a room when emitting; returns a new BroadcastOperator. */
  to(room: string | string[]): BroadcastOperator<EmitEvents>;
  /** Targets a room when emitting; returns a new BroadcastOperator. */
  in(room: string | string[]): BroadcastOperator<EmitEvents>;
  /** Excludes a room when emitting; returns a new BroadcastOperator. */
  except(room: string | string[]): BroadcastOperator<EmitEvents>;
  /** Sets the compress flag; returns a new BroadcastOperator. */
  compress(compress: boolean): BroadcastOperator<EmitEvents>;
  /** The event data may be lost if the client is not ready; returns a new BroadcastOperator. */
  get volatile(): BroadcastOperator<EmitEvents>;
  /** Emits to all matching clients. Resolves with `true` once Redis accepted the message. */
  emit<Ev extends EventNames<EmitEvents>>(
    ev: Ev,
    ...args: EventParams<EmitEvents, Ev>
  ): Promise<true>;
  /** Makes the matching socket instances join the specified rooms. */
  socketsJoin(rooms: string | string[]): Promise<true>;
  /** Makes the matching socket instances leave the specified rooms. */
  socketsLeave(rooms: string | string[]): Promise<true>;
  /** Makes the matching socket instances disconnect. */
  disconnectSockets(close?: boolean): Promise<true>;
}

/** Streams adapter, as `createAdapter` of @socket.io/redis-streams-adapter 0.3 (also exported by `socket.io-redis-native/streams`). */
export { createStreamsAdapter } from "./streams";

/**
 * `adapter.metrics()` in the Prometheus text exposition format: counters (`_total`), gauges,
 * histograms (`_bucket{le=...}`, `_sum`, `_count`); `requests.<type>` and `readers[i]` become
 * `type` and `reader` labels.
 */
export declare function toPrometheus(
  metrics: object,
  options?: { prefix?: string; labels?: Record<string, string> },
): string;

/** Content-Type of the text format: `text/plain; version=0.0.4; charset=utf-8`. */
export declare const PROMETHEUS_CONTENT_TYPE: string;
