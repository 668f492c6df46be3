// The chat page's script: sends what is typed, shows every message of the cluster tagged with
// the node its sender is connected to. `io` is the client served by socket.io itself.
/* global io */
const socket = io();
const messages = document.getElementById("messages");
const input = document.getElementById("input");
const status = document.getElementById("status");
const COLORS = ["#2563eb", "#16a34a", "#d97706", "#9333ea", "#db2777"];

function colorOf(node) {
  let hash = 0;
  for (const c of node) hash = (hash * 31 + c.charCodeAt(0)) >>> 0;
  return COLORS[hash % COLORS.length];
}

function setStatus(text) {
  status.textContent = text;
  status.className = text;
}

socket.on("connect", () => setStatus("connected"));
socket.on("disconnect", () => setStatus("disconnected"));
socket.on("welcome", ({ node }) => {
  document.getElementById("node").textContent = node;
  document.title = `chat on ${node}`;
});

socket.on("chat", ({ node, sender, text }) => {
  const item = document.createElement("li");
  item.className = sender === socket.id ? "message mine" : "message";
  item.dataset.node = node;
  const via = document.createElement("span");
  via.className = "via";
  via.style.background = colorOf(node);
  via.textContent = `via ${node}`;
  const body = document.createElement("span");
  body.className = "text";
  // textContent, never innerHTML: messages are typed by other people
  body.textContent = text;
  item.append(via, body);
  messages.append(item);
  messages.scrollTop = messages.scrollHeight;
});

document.getElementById("form").addEventListener("submit", (event) => {
  event.preventDefault();
  const text = input.value.trim();
  if (!text) return;
  socket.emit("chat", text);
  input.value = "";
});
