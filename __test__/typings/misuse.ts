// Must NOT compile: the typings test asserts each of these errors is reported.
import { createAdapter } from "socket.io-redis-native";

const wrong: string = createAdapter("x")(null as any).serverCount();
createAdapter("x", undefined, { keyy: "a" });
console.log(wrong);
