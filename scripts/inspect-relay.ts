// `npm run inspect`: a WebSocket relay on 127.0.0.1 between the plugin (AGENT_REGISTRY_INSPECT=ws://127.0.0.1:<port>)
// and the Stately inspector in your browser. Unlike @statelyai/inspect's own server it binds loopback only.
import { createServer } from "node:http";
import { WebSocket, WebSocketServer } from "ws";

const port = Number(process.env.PORT ?? process.argv[2] ?? 8787);
const buffer: string[] = [];
const page = `<!doctype html><title>agent-registry inspector</title>
<style>html,body,iframe{margin:0;height:100%;width:100%;border:0}</style>
<iframe id="i" src="https://stately.ai/inspect"></iframe>
<script>
const frame = document.getElementById("i"); const queue = []; let ready = false;
addEventListener("message", (e) => { if (e.data && e.data.type === "@statelyai.connected") { ready = true; queue.splice(0).forEach((m) => frame.contentWindow.postMessage(m, "*")); } });
const ws = new WebSocket("ws://127.0.0.1:${port}");
ws.onmessage = (e) => { const m = JSON.parse(e.data); ready ? frame.contentWindow.postMessage(m, "*") : queue.push(m); };
</script>`;

const http = createServer((_req, res) => {
  res.writeHead(200, { "content-type": "text/html" });
  res.end(page);
});
const wss = new WebSocketServer({ server: http });
wss.on("connection", (socket) => {
  for (const message of buffer) socket.send(message);
  socket.on("message", (data) => {
    const message = data.toString();
    buffer.push(message);
    if (buffer.length > 500) buffer.shift();
    for (const client of wss.clients) {
      if (client !== socket && client.readyState === WebSocket.OPEN) client.send(message);
    }
  });
});
http.listen(port, "127.0.0.1", () => {
  console.log(`inspector relay on ws://127.0.0.1:${port}`);
  console.log(`1. start the gateway with AGENT_REGISTRY_INSPECT=ws://127.0.0.1:${port}`);
  console.log(`2. open http://127.0.0.1:${port} in a browser`);
});
