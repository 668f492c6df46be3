"use strict";
// ClusterAdapter's requests (serverSideEmitWithAck, fetchSockets) with the server count and
// the publish in one round trip, for the sharded and the streams adapters.
//
// Upstream awaits serverCount() (PUBSUB NUMSUB / SHARDNUMSUB), then publishes. Here the
// request is stored with an unknown count, published together with the count (both commands
// in one write on a standalone server) by the adapter's own `countAndPublish(message)`, and
// completed when the count arrives; answers that come first are kept. Timeouts, error texts,
// results and the published messages are upstream's.
const crypto = require("crypto");
const { Adapter, ClusterAdapter, MessageType } = require("socket.io-adapter");

// socket.io-adapter's ClusterAdapter: default request timeout and request id format.
const DEFAULT_TIMEOUT = 5000;
const randomId = () => crypto.randomBytes(8).toString("hex");

/** ClusterAdapter's encodeOptions (module-private upstream). */
function encodeOptions(opts) {
  return { rooms: [...opts.rooms], except: [...opts.except], flags: opts.flags };
}

class CountedRequests {
  /** Sets the expected answer count of a stored request, completing it if they are all in. */
  settleRequest(requestId, expected) {
    const request = this.requests.get(requestId);
    if (!request) return;
    request.expected = Math.max(expected, 0);
    if (request.current < request.expected) return;
    clearTimeout(request.timeout);
    this.requests.delete(requestId);
    if (request.type === MessageType.FETCH_SOCKETS) request.resolve(request.responses);
    else request.resolve(null, request.responses);
  }

  async fetchSockets(opts) {
    if (opts.flags && opts.flags.local) return Adapter.prototype.fetchSockets.call(this, opts);
    // The request leaves first and the local sockets are found while it travels: in the same
    // tick, so they are the sockets upstream finds (before it publishes), and a request's
    // round trip no longer waits for the local walk.
    const remote = this.fetchRemoteSockets(opts);
    const [localSockets, remoteSockets] = await Promise.all([
      Adapter.prototype.fetchSockets.call(this, opts),
      remote,
    ]);
    return localSockets.concat(remoteSockets);
  }

  /** The other nodes' answers to a fetchSockets request for `opts`, published now. */
  fetchRemoteSockets(opts) {
    const requestId = randomId();
    return new Promise((resolve, reject) => {
      const timeout = setTimeout(() => {
        const stored = this.requests.get(requestId);
        if (stored) {
          reject(
            new Error(
              `timeout reached: only ${stored.current} responses received out of ${stored.expected}`,
            ),
          );
          this.requests.delete(requestId);
        }
      }, opts.flags.timeout || DEFAULT_TIMEOUT);
      this.requests.set(requestId, {
        type: MessageType.FETCH_SOCKETS,
        resolve,
        timeout,
        current: 0,
        expected: Infinity,
        responses: [],
      });
      const message = {
        type: MessageType.FETCH_SOCKETS,
        data: { opts: encodeOptions(opts), requestId },
      };
      this.countAndPublish(message).then(
        (count) => this.settleRequest(requestId, count - 1),
        (e) => {
          clearTimeout(timeout);
          this.requests.delete(requestId);
          reject(e);
        },
      );
    });
  }

  async serverSideEmit(packet) {
    if (typeof packet[packet.length - 1] !== "function") {
      return ClusterAdapter.prototype.serverSideEmit.call(this, packet);
    }
    const ack = packet.pop();
    const requestId = randomId();
    const timeout = setTimeout(() => {
      const stored = this.requests.get(requestId);
      if (stored) {
        ack(
          new Error(
            `timeout reached: only ${stored.current} responses received out of ${stored.expected}`,
          ),
          stored.responses,
        );
        this.requests.delete(requestId);
      }
    }, DEFAULT_TIMEOUT);
    this.requests.set(requestId, {
      type: MessageType.SERVER_SIDE_EMIT,
      resolve: ack,
      timeout,
      current: 0,
      expected: Infinity,
      responses: [],
    });
    let count;
    try {
      count = await this.countAndPublish({
        type: MessageType.SERVER_SIDE_EMIT,
        data: { requestId, packet },
      });
    } catch (e) {
      // Upstream's promise would reject unhandled; report the failure to the caller instead.
      clearTimeout(timeout);
      this.requests.delete(requestId);
      ack(e, []);
      return;
    }
    this.settleRequest(requestId, count - 1);
  }
}

/** Installs the methods above on a ClusterAdapter subclass that has `countAndPublish`. */
function withCountedRequests(AdapterClass) {
  for (const name of ["settleRequest", "fetchSockets", "fetchRemoteSockets", "serverSideEmit"]) {
    AdapterClass.prototype[name] = CountedRequests.prototype[name];
  }
}

module.exports = { withCountedRequests, encodeOptions };
