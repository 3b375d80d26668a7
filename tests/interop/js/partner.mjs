// A matrix-js-sdk client (Rust crypto) as the partner of a client of another make: it joins an
// encrypted room, says when its device keys are on the server, reads the first message the
// other sends there, and answers it, encrypted.
//
// Input (stdin, JSON): {baseUrl, session: {user_id, access_token, device_id}, roomId, reply}
// Output (stdout, JSON lines): {ready: true} once it can be written to; then {seen, reply_event_id}
// or {error, stage}. The SDK's own logging goes to stderr.

import { readInput, run, startClient, until, writeLine } from "./clients.mjs";

let stage = "start";

async function main() {
    const { baseUrl, session, roomId, reply } = await readInput();
    stage = "start the client";
    const client = await startClient(baseUrl, session);

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

await run(main, () => stage, 60000);
