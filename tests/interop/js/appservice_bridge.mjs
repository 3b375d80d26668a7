// A bridge built on matrix-appservice-bridge, driven step by step by a test
// (tests/interop/appservice/test_appservice_bridge_js.py): the Bridge reads its registration
// file, listens for transactions on 127.0.0.1, and acts as its bot and its puppets through
// Intents. Every event onEvent is given is appended to a JSON-lines file, as a bridge would
// record it, so the test can tell what reached the bridge.
//
// Run as `node appservice_bridge.mjs CONFIG.json`, CONFIG holding {homeserver, domain,
// registration_path, port, events_path}. Output (stdout, JSON lines): {ready: true} once it
// listens; then one answer per command read from stdin ({op, ...}, see `ops`), or
// {error, errcode, status} when the homeserver refused; {stopped: true} after {op: "stop"}.

import fs from "node:fs";
import readline from "node:readline";

import { Bridge } from "matrix-appservice-bridge";

const config = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));

function say(answer) {
    process.stdout.write(JSON.stringify(answer) + "\n");
}

const bridge = new Bridge({
    homeserverUrl: config.homeserver,
    domain: config.domain,
    registration: config.registration_path,
    // the test needs no room or user mappings kept, nor their database
    disableStores: true,
    disableContext: true,
    controller: {
        onUserQuery: () => ({}),
        onEvent(request) {
            const event = request.getData();
            const line = {
                event_id: event.event_id,
                room_id: event.room_id,
                sender: event.sender,
                type: event.type,
                origin_server_ts: event.origin_server_ts,
            };
            if (event.type === "m.room.message") line.body = event.content?.body;
            fs.appendFileSync(config.events_path, JSON.stringify(line) + "\n");
        },
    },
});

const puppet = (localpart) => bridge.getIntent(`@${localpart}:${config.domain}`);
const actor = (localpart) => (localpart === undefined ? bridge.getIntent() : puppet(localpart));

const ops = {
    async create_room({ invite }) {
        const { room_id: roomId } = await bridge.getIntent().createRoom({
            createAsClient: true,
            options: { preset: "private_chat", invite },
        });
        return { room_id: roomId };
    },
    async register({ localpart }) {
        await puppet(localpart).ensureRegistered();
        return { registered: true };
    },
    async whoami({ localpart }) {
        const { user_id: userId } = await actor(localpart).matrixClient.getWhoAmI();
        return { user_id: userId };
    },
    async join({ localpart, room_id: roomId }) {
        // the Intent has the bot invite its puppet when the room is not public
        await puppet(localpart).join(roomId);
        return { joined: true };
    },
    async send({ localpart, room_id: roomId, body }) {
        const { event_id: eventId } = await actor(localpart).sendText(roomId, body);
        return { event_id: eventId };
    },
};

function refusal(error) {
    // matrix-bot-sdk's MatrixError carries the homeserver's answer
    const body = error.body ?? {};
    return {
        error: body.error ?? String(error),
        errcode: body.errcode ?? error.errcode ?? null,
        status: error.statusCode ?? null,
    };
}

await bridge.initialise();
await bridge.listen(config.port, "127.0.0.1");
say({ ready: true });

for await (const raw of readline.createInterface({ input: process.stdin })) {
    const { op, ...args } = JSON.parse(raw);
    if (op === "stop") break;
    try {
        say(await ops[op](args));
    } catch (error) {
        say(refusal(error));
    }
}
await bridge.close();
say({ stopped: true });
process.exit(0);
