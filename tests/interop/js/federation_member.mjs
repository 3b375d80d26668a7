// A matrix-js-sdk client (no crypto) driven step by step by a test, as one member of a room
// shared across servers: the test sends one command a line, and the script answers each with
// one line once the client has done it, or has seen it through its own /sync.
//
// Input (stdin, JSON lines): first {baseUrl, session: {user_id, access_token, device_id}};
// then commands {op, ...} (see `ops` below), ending with {op: "stop"}.
// Output (stdout, JSON lines): {ready: true} once the first sync is done; one answer per
// command; or {error, stage} and the process ends. The SDK's own logging goes to stderr.
//
// Trusting a test CA: run with NODE_EXTRA_CA_CERTS naming its PEM file.

import readline from "node:readline";

import { run, sdk, until, writeLine } from "./clients.mjs";

let stage = "start";

const lines = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]();

async function nextCommand() {
    const { value, done } = await lines.next();
    if (done) throw new Error("stdin closed before the stop command");
    return JSON.parse(value);
}

function timelineMessage(client, roomId, body) {
    const events = client.getRoom(roomId)?.getLiveTimeline().getEvents() ?? [];
    const event = events.find(
        (e) => e.getType() === "m.room.message" && e.getContent().body === body,
    );
    return event === undefined ? undefined : { sender: event.getSender(), event_id: event.getId() };
}

// each waits for what the client itself has synced, so the answer is the SDK's own view
const ops = {
    async create_room(client, { name }) {
        const { room_id: roomId } = await client.createRoom({ name, preset: "private_chat" });
        await until("the new room in sync", () => (client.getRoom(roomId) ? true : undefined));
        return { room_id: roomId };
    },
    async invite(client, { room_id: roomId, user_id: userId }) {
        await client.invite(roomId, userId);
        return {};
    },
    async invited(client, { room_id: roomId }) {
        const inviter = await until("the invite in sync", () => {
            const room = client.getRoom(roomId);
            if (room?.getMyMembership() !== "invite") return undefined;
            return room.getMember(client.getUserId())?.events.member?.getSender();
        });
        return { inviter };
    },
    async join(client, { room_id: roomId }) {
        await client.joinRoom(roomId);
        await until("the join in sync", () =>
            client.getRoom(roomId)?.getMyMembership() === "join" ? true : undefined,
        );
        return {};
    },
    async send(client, { room_id: roomId, body }) {
        const { event_id: eventId } = await client.sendMessage(roomId, { msgtype: "m.text", body });
        return { event_id: eventId };
    },
    async message(client, { room_id: roomId, body }) {
        return await until(`the message ${JSON.stringify(body)}`, () =>
            timelineMessage(client, roomId, body),
        );
    },
    async set_name(client, { room_id: roomId, name }) {
        await client.setRoomName(roomId, name);
        return {};
    },
    async name(client, { room_id: roomId, name }) {
        const event = await until(`the room name ${JSON.stringify(name)}`, () => {
            const state = client.getRoom(roomId)?.currentState.getStateEvents("m.room.name", "");
            return state?.getContent().name === name ? state : undefined;
        });
        return { sender: event.getSender() };
    },
    async membership(client, { room_id: roomId, user_id: userId, membership }) {
        await until(`${userId}'s membership ${membership}`, () =>
            client.getRoom(roomId)?.getMember(userId)?.membership === membership ? true : undefined,
        );
        return {};
    },
    async leave(client, { room_id: roomId }) {
        await client.leave(roomId);
        await until("the leave in sync", () =>
            client.getRoom(roomId)?.getMyMembership() === "leave" ? true : undefined,
        );
        return {};
    },
};

async function main() {
    const { baseUrl, session } = await nextCommand();
    stage = "first sync";
    const client = sdk.createClient({
        baseUrl,
        userId: session.user_id,
        accessToken: session.access_token,
        deviceId: session.device_id,
    });
    await client.startClient({ initialSyncLimit: 20 });
    await until("the first sync", () => (client.isInitialSyncComplete() ? true : undefined));
    writeLine({ ready: true });
    for (;;) {
        const command = await nextCommand();
        stage = JSON.stringify(command);
        if (command.op === "stop") return { stopped: true };
        const op = ops[command.op];
        if (op === undefined) throw new Error(`unknown op ${command.op}`);
        writeLine(await op(client, command));
    }
}

await run(main, () => stage, 180000);
