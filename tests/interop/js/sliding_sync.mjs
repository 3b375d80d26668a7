// matrix-js-sdk's SlidingSync (simplified sliding sync, MSC4186, at
// /_matrix/client/unstable/org.matrix.simplified_msc3575/sync) against a real server, as a
// room list uses it: Alice is in three rooms, her client asks for the two most recent; then
// Bob writes in the oldest one, which must come to the top of her list.
//
// Input (stdin, JSON): {baseUrl, alice: {user_id, access_token, device_id},
//                       bob: {user_id, access_token, device_id}, body}
// Output (stdout, one JSON line): what Alice's client showed after each step, or
// {error, stage}. The SDK's own logging goes to stderr.

import { api, readInput, run, sdk, until } from "./clients.mjs";

const { SlidingSync, SlidingSyncEvent, SlidingSyncState } = await import(
    "matrix-js-sdk/lib/sliding-sync.js"
);

const CLIENT = "/_matrix/client/v3";
const LIST = "rooms";
const NAMES = ["Oldest", "Middle", "Newest"];
let stage = "start";

async function createRoom(input, name, invite) {
    const { room_id } = await api(input.baseUrl, "POST", `${CLIENT}/createRoom`, input.alice.access_token, {
        preset: "private_chat",
        name,
        invite,
    });
    return room_id;
}

async function send(baseUrl, session, roomId, body) {
    const txn = `${Date.now()}-${Math.random()}`;
    const path = `${CLIENT}/rooms/${encodeURIComponent(roomId)}/send/m.room.message/${txn}`;
    const { event_id } = await api(baseUrl, "PUT", path, session.access_token, { msgtype: "m.text", body });
    return event_id;
}

// the rooms the client knows, most recent first by the server's bump_stamp, each as a room
// list draws it: its name and the body of its newest event
function roomList(client) {
    return client
        .getRooms()
        .sort((a, b) => (b.getBumpStamp() ?? 0) - (a.getBumpStamp() ?? 0))
        .map((room) => ({
            name: room.name,
            last: room.getLiveTimeline().getEvents().at(-1)?.getContent()?.body ?? null,
        }));
}

async function main() {
    const input = await readInput();
    const { baseUrl } = input;
    const result = {};

    stage = "Alice's rooms";
    const rooms = {};
    for (const name of NAMES) {
        // Bob is in the oldest room, joined before any message so his join is not the news
        rooms[name] = await createRoom(input, name, name === "Oldest" ? [input.bob.user_id] : []);
        if (name === "Oldest") {
            await api(baseUrl, "POST", `${CLIENT}/join/${encodeURIComponent(rooms[name])}`, input.bob.access_token, {});
        }
    }
    // one message each, in order, so the recency order is Newest, Middle, Oldest
    for (const name of NAMES) await send(baseUrl, input.alice, rooms[name], `hello ${name}`);
    result.room_ids = rooms;

    stage = "Alice's client starts sliding sync";
    const client = sdk.createClient({
        baseUrl,
        userId: input.alice.user_id,
        accessToken: input.alice.access_token,
        deviceId: input.alice.device_id,
    });
    const list = {
        ranges: [[0, 1]],
        timeline_limit: 1,
        required_state: [
            ["m.room.name", ""],
            ["m.room.avatar", ""],
        ],
    };
    const slidingSync = new SlidingSync(baseUrl, new Map([[LIST, list]]), { timeline_limit: 1 }, client, 10000);
    // the rooms of each response, as the server sent them
    const responses = [];
    let current = [];
    slidingSync.on(SlidingSyncEvent.Lifecycle, (state, resp, err) => {
        if (state === SlidingSyncState.RequestFinished && resp) current = Object.keys(resp.rooms);
        if (state === SlidingSyncState.Complete && resp) responses.push(current);
        if (err) console.error("sliding sync error", err);
    });
    await client.startClient({ slidingSync });
    await until("the first sliding sync response", () => (responses.length > 0 ? true : undefined));
    result.first = {
        count: slidingSync.getListData(LIST).joinedCount,
        sent: responses[0].map((id) => NAMES.find((name) => rooms[name] === id) ?? id).sort(),
        list: roomList(client),
        sync_state: client.getSyncState(),
    };

    stage = "Bob writes in the oldest room";
    await send(baseUrl, input.bob, rooms.Oldest, input.body);
    await until("the oldest room's new message", () =>
        client.getRoom(rooms.Oldest)?.getLiveTimeline().getEvents().at(-1)?.getContent()?.body === input.body
            ? true
            : undefined,
    );
    result.after = {
        count: slidingSync.getListData(LIST).joinedCount,
        list: roomList(client),
        sender: client.getRoom(rooms.Oldest).getLiveTimeline().getEvents().at(-1).getSender(),
    };
    slidingSync.stop();
    return result;
}

run(main, () => stage, 60000);
