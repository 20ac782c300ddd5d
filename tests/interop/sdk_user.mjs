// One simulated user driven by the official JS SDK (npm wukongimjssdk 1.0.4, protocol v2).
//
// The SDK is a singleton, so run one Node process per user. This file is bundled with esbuild
// (see build_driver in tests/interop/harness.py) because the SDK ships ES modules with
// extensionless imports that plain Node refuses.
//
// Control protocol: JSON lines.
//   stdin  {"op":"connect","addr":"ws://127.0.0.1:5200","uid":"u1","token":"t"}
//          {"op":"send","channelId":"u2","channelType":1,"text":"hi","tag":"any"}
//          {"op":"disconnect"} | {"op":"exit"}
//   stdout {"ev":"ready"}                                once, at start
//          {"ev":"status","status":1,"name":"Connected","reasonCode":1}
//          {"ev":"sent","tag":..,"clientSeq":n,"clientMsgNo":".."}
//          {"ev":"sendack","clientSeq":n,"messageId":"..","messageSeq":n,"reasonCode":n}
//          {"ev":"recv","channelId":..,"channelType":..,"fromUid":..,"messageId":"..",
//           "messageSeq":n,"clientMsgNo":..,"timestamp":n,"contentType":n,"text":..,
//           "payload":{..},"header":{..}}
//          {"ev":"error","message":".."}
// The SDK's own console.log chatter goes to stderr so stdout stays machine-readable.

import { WebSocket as NodeWebSocket } from "ws";
import { WKSDK, MessageText, Channel } from "wukongimjssdk/lib/sdk";
import readline from "node:readline";

globalThis.WebSocket = NodeWebSocket;

const toStderr = (...args) => {
  process.stderr.write(args.map((a) => (typeof a === "string" ? a : safeJson(a))).join(" ") + "\n");
};
console.log = toStderr;
console.info = toStderr;
console.warn = toStderr;
console.error = toStderr;

function safeJson(value) {
  try {
    return JSON.stringify(value);
  } catch {
    return String(value);
  }
}

function emit(event) {
  process.stdout.write(JSON.stringify(event) + "\n");
}

const STATUS_NAMES = ["Disconnect", "Connected", "Connecting", "ConnectFail", "ConnectKick"];

const sdk = WKSDK.shared();

sdk.connectManager.addConnectStatusListener((status, reasonCode) => {
  emit({ ev: "status", status, name: STATUS_NAMES[status] ?? String(status), reasonCode });
});

sdk.chatManager.addMessageStatusListener((ack) => {
  emit({
    ev: "sendack",
    clientSeq: ack.clientSeq,
    messageId: String(ack.messageID),
    messageSeq: ack.messageSeq,
    reasonCode: ack.reasonCode,
  });
});

sdk.chatManager.addMessageListener((message) => {
  // ChatManager.send() also notifies listeners with the local copy of an outgoing message;
  // only messages built from a RECV carry a messageSeq.
  if (message.messageSeq === undefined) {
    return;
  }
  const content = message.content ?? {};
  emit({
    ev: "recv",
    channelId: message.channel.channelID,
    channelType: message.channel.channelType,
    fromUid: message.fromUID,
    messageId: String(message.messageID),
    messageSeq: message.messageSeq,
    clientMsgNo: message.clientMsgNo,
    timestamp: message.timestamp,
    contentType: message.contentType,
    text: content.text ?? null,
    payload: content.contentObj ?? null, // the decrypted payload as JSON
    header: {
      redDot: Boolean(message.header.reddot),
      noPersist: Boolean(message.header.noPersist),
      syncOnce: Boolean(message.header.syncOnce),
    },
  });
});

async function handle(cmd) {
  switch (cmd.op) {
    case "connect":
      sdk.config.addr = cmd.addr;
      sdk.config.uid = cmd.uid;
      sdk.config.token = cmd.token ?? "";
      if (cmd.deviceFlag !== undefined) {
        sdk.config.deviceFlag = cmd.deviceFlag;
      }
      sdk.connectManager.connect();
      return;
    case "send": {
      const channel = new Channel(cmd.channelId, cmd.channelType);
      const message = await sdk.chatManager.send(new MessageText(cmd.text), channel);
      emit({
        ev: "sent",
        tag: cmd.tag ?? null,
        clientSeq: message.clientSeq,
        clientMsgNo: message.clientMsgNo,
      });
      return;
    }
    case "disconnect":
      sdk.connectManager.disconnect();
      return;
    case "exit":
      sdk.connectManager.disconnect();
      process.exit(0);
      return;
    default:
      emit({ ev: "error", message: `unknown op ${cmd.op}` });
  }
}

const lines = readline.createInterface({ input: process.stdin });
lines.on("line", (line) => {
  if (line.trim() === "") {
    return;
  }
  let cmd;
  try {
    cmd = JSON.parse(line);
  } catch (err) {
    emit({ ev: "error", message: `bad command: ${err}` });
    return;
  }
  handle(cmd).catch((err) => emit({ ev: "error", message: String(err && err.stack ? err.stack : err) }));
});
lines.on("close", () => {
  sdk.connectManager.disconnect();
  process.exit(0);
});

process.on("uncaughtException", (err) => {
  emit({ ev: "error", message: `uncaught: ${err && err.stack ? err.stack : err}` });
});

emit({ ev: "ready" });
