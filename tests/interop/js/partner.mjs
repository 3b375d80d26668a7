// A matrix-js-sdk client (Rust crypto) as the partner of a client of another make: it joins an
// encrypted room, says when its device keys are on the server, reads the first message the
// other sends there, and answers it, encrypted.
//
// Input (stdin, JSON): {baseUrl, session: {user_id, access_token, device_id}, roomId, reply}
// Output (stdout, JSON lines): {ready: true} once it can be written to; then {seen, reply_event_id}
// or {error, stage}. The SDK's own logging goes to stderr.

const writeLine = (line) => process.stdout.write(JSON.stringify(line) + "\n");
for (const method of ["log", "info"]) console[method] = console.error;
for (const method of ["debug", "trace"]) console[method] = () => {};

const sdk = await import("matrix-js-sdk");
const { logger } = await import("matrix-js-sdk/lib/logger.js");
logger.setLevel(process.env.INTEROP_JS_LOG ?? "warn");

const STEP_TIMEOUT_MS = 20000;
let stage = "start";
let client = null;

async function readInput() {
    const chunks = [];
    for await (const chunk of process.stdin) chunks.push(chunk);
    return JSON.parse(Buffer.concat(chunks).toString("utf8"));
}

async function until(what, probe, timeoutMs = STEP_TIMEOUT_MS) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
        const value = await probe();
        if (value !== undefined) return value;
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
        await new Promise((resolve) => setTimeout(resolve, 100));
    }
}

async function main() {
    const { baseUrl, session, roomId, reply } = await readInput();
    stage = "start the client";
    client = sdk.createClient({
        baseUrl,
        userId: session.user_id,
        accessToken: session.access_token,
        deviceId: session.device_id,
    });
    await client.initRustCrypto({ useIndexedDB: false });
    await client.startClient({ initialSyncLimit: 20 });
    await until("the first sync", () => (client.isInitialSyncComplete() ? true : undefined));

    stage = "join and publish keys";
    await client.joinRoom(roomId);
    await until("the device keys on the server", async () => {
        const response = await fetch(`${baseUrl}/_matrix/client/v3/keys/query`, {
            method: "POST",
            headers: {
                "Content-Type": "application/json",
                Authorization: `Bearer ${session.access_token}`,
            },
            body: JSON.stringify({ device_keys: { [session.user_id]: [session.device_id] } }),
        });
        const found = await response.json();
        return found.device_keys?.[session.user_id]?.[session.device_id] ? true : undefined;
    });
    writeLine({ ready: true });

    stage = "read the other's message";
    const seen = await until("a message from the other", () => {
        const events = client.getRoom(roomId)?.getLiveTimeline().getEvents() ?? [];
        const event = events.find(
            (e) => e.getSender() !== session.user_id && e.getWireType() === "m.room.encrypted",
        );
        if (event === undefined || event.isBeingDecrypted() || event.isDecryptionFailure()) {
            return undefined;
        }
        return { type: event.getWireType(), sender: event.getSender(), body: event.getContent().body };
    });

    stage = "answer";
    await until("the room known to be encrypted", async () =>
        (await client.getCrypto().isEncryptionEnabledInRoom(roomId)) ? true : undefined,
    );
    const { event_id: replyEventId } = await client.sendMessage(roomId, {
        msgtype: "m.text",
        body: reply,
    });
    return { seen, reply_event_id: replyEventId };
}

const deadline = setTimeout(() => {
    writeLine({ error: "overall timeout", stage });
    process.exit(2);
}, 60000);

try {
    writeLine(await main());
    process.exitCode = 0;
} catch (error) {
    writeLine({ error: String(error?.stack ?? error), stage });
    process.exitCode = 1;
} finally {
    clearTimeout(deadline);
    client?.stopClient();
    setTimeout(() => process.exit(), 100);
}
