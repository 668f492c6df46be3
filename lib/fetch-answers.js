"use strict";
// Socket details of fetchSockets() answers (classic adapter) with the handshakes parsed on
// first use. The handshakes are about seven eighths of an answer's JSON, and parsing them was
// half of a requesting node's CPU time in fetchSockets() across 3 nodes x 100 sockets, while
// most callers only read `id`, `rooms` or `data` of the remote sockets. The Rust core splits
// each answer as it arrives (codec::fetch_sockets, on a Tokio thread); here everything but the
// handshakes is parsed at once, and the handshakes of an answer all together (one JSON.parse
// of an array is far cheaper than one per handshake) when the first of them is used.
const util = require("util");

/** First byte of what the Rust core hands over per answer (codec::fetch_sockets). */
const SPLIT_MARK = 0;
const WHOLE_MARK = 1;

/**
 * The target of a lazy object's Proxy: holds the JSON text, then the parsed object, in private
 * fields (no properties of its own, so every Proxy invariant holds while the traps answer for
 * the parsed object). `util.inspect` bypasses proxies and looks at the target: the inspect hook
 * on this class's prototype prints the parsed object instead.
 */
class LazyTarget {
  #source;
  #index;
  #value = null;

  /** `source.parse()` returns an array of objects; this one is at `index`. */
  constructor(source, index) {
    this.#source = source;
    this.#index = index;
  }

  static valueOf(target) {
    if (target.#value === null) {
      target.#value = target.#source.parse()[target.#index];
      target.#source = null;
    }
    return target.#value;
  }

  /**
   * Freezing, sealing or a non-configurable property need the target itself to hold the
   * properties (Proxy invariants): copy them over, once, and answer from the target after.
   */
  static pin(target) {
    const value = LazyTarget.valueOf(target);
    if (value === target) return;
    Object.defineProperties(target, Object.getOwnPropertyDescriptors(value));
    Object.setPrototypeOf(target, Object.getPrototypeOf(value));
    target.#value = target;
  }

  [util.inspect.custom](depth, options, inspect) {
    // `this` is the proxy: spreading it parses and copies the own properties.
    return inspect({ ...this }, { ...options, depth });
  }
}

const { valueOf, pin } = LazyTarget;
const LAZY_HANDLER = {
  get: (t, key) => Reflect.get(valueOf(t), key),
  set: (t, key, value) => Reflect.set(valueOf(t), key, value),
  has: (t, key) => Reflect.has(valueOf(t), key),
  deleteProperty: (t, key) => Reflect.deleteProperty(valueOf(t), key),
  ownKeys: (t) => Reflect.ownKeys(valueOf(t)),
  getOwnPropertyDescriptor: (t, key) => Reflect.getOwnPropertyDescriptor(valueOf(t), key),
  defineProperty(t, key, descriptor) {
    if (descriptor.configurable === false) pin(t);
    return Reflect.defineProperty(valueOf(t), key, descriptor);
  },
  getPrototypeOf: (t) => Reflect.getPrototypeOf(valueOf(t)),
  setPrototypeOf: (t, proto) => Reflect.setPrototypeOf(valueOf(t), proto),
  isExtensible: (t) => Reflect.isExtensible(t),
  preventExtensions(t) {
    pin(t);
    return Reflect.preventExtensions(t);
  },
};

/**
 * An object parsed from the JSON object text `text` when it is first used: any property read,
 * write, key listing or prototype check parses it, and the proxy then behaves as the object
 * `JSON.parse(text)` would have returned (console.log prints it as such). Only structured
 * cloning sees the difference: a Proxy cannot be cloned.
 */
function lazyObject(text) {
  return lazyElement(new LazyArray(`[${text}]`), 0);
}

/** The object at `index` of the LazyArray `source`, parsed (with the whole array) on use. */
function lazyElement(source, index) {
  return new Proxy(new LazyTarget(source, index), LAZY_HANDLER);
}

/**
 * The JSON text of an array, parsed once, when first needed: a string, or UTF-8 bytes (a
 * Buffer view) that are not even decoded into a string until then.
 */
class LazyArray {
  #text;
  #values = null;

  constructor(text) {
    this.#text = text;
  }

  parse() {
    if (this.#values === null) {
      const text = this.#text;
      this.#values = JSON.parse(typeof text === "string" ? text : text.toString("utf8"));
      this.#text = null;
    }
    return this.#values;
  }
}

/** Where the sockets array is in the answers of each adapter (codec::fetch_sockets). */
const CLASSIC_SOCKETS = ["sockets"];
const CLUSTER_SOCKETS = ["data", "sockets"];

/**
 * One answer as the Rust core hands it over: `{ message }`, the answer with its sockets'
 * details and lazy handshakes, when it could split it, else `{ whole }`, the answer as
 * published (WHOLE_MARK: classic only), for the caller to decode. Split: `SPLIT_MARK,
 * head_len: u32 LE, head, handshakes`, head being the answer in JSON with the sockets array
 * (at `path`) written `[[id, rooms, data], ..]`, and handshakes `[handshake, ..]` in JSON.
 * `lazy` false: the handshakes are parsed at once (plain objects).
 */
function readFetchAnswer(answer, path = CLASSIC_SOCKETS, lazy = true) {
  if (answer[0] === WHOLE_MARK) return { whole: answer.subarray(1) };
  if (answer.length < 5 || answer[0] !== SPLIT_MARK) throw new Error("not a fetch answer");
  const headEnd = 5 + answer.readUInt32LE(1);
  const message = JSON.parse(answer.toString("utf8", 5, headEnd));
  let holder = message;
  for (let i = 0; i < path.length - 1; i++) holder = holder[path[i]];
  const head = holder[path[path.length - 1]];
  // Most callers never read a remote handshake: its ~0.5 KB each stay bytes until one does.
  const handshakes = new LazyArray(answer.subarray(headEnd));
  const plain = lazy ? null : handshakes.parse();
  const sockets = new Array(head.length);
  for (let i = 0; i < head.length; i++) {
    const [id, rooms, data] = head[i];
    sockets[i] = {
      id,
      handshake: plain === null ? lazyElement(handshakes, i) : plain[i],
      rooms,
      data,
    };
  }
  holder[path[path.length - 1]] = sockets;
  return { message };
}

module.exports = { lazyObject, readFetchAnswer, SPLIT_MARK, CLASSIC_SOCKETS, CLUSTER_SOCKETS };
