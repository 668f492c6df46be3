// Must NOT compile: the typings test asserts each of these errors is reported.
import { createAdapter } from "socket.io-redis-native";
import { createAdapter as createStreamsAdapter } from "socket.io-redis-native/streams";

const wrong: string = createAdapter("x")(null as any).serverCount();
createAdapter("x", undefined, { keyy: "a" });
createStreamsAdapter("x", { lazyRemoteHandshakes: "no" });
console.log(wrong);
