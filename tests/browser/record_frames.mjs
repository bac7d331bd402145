// Preloaded into every Node run of the client's live tests (tests/jsnode.py):
// every text frame a WebSocket receives is appended to TRIPSAGE_FRAME_LOG as one JSON line
// ({url, data}), so that the Python test checks each against protocol.server's schemas.
import { appendFileSync } from "node:fs";

const log = process.env.TRIPSAGE_FRAME_LOG;
const Base = globalThis.WebSocket;

if (log && Base) {
  globalThis.WebSocket = class RecordingWebSocket extends Base {
    constructor(url, protocols) {
      super(url, protocols);
      this.addEventListener("message", (event) => {
        if (typeof event.data === "string") {
          appendFileSync(log, `${JSON.stringify({ url: String(url), data: event.data })}\n`);
        }
      });
    }
  };
}
