// A matrix-js-sdk client with the Rust crypto stack, driven step by step by a test, as one member
// of an encrypted room shared with a client on another server: the test sends one command a
// line, and the script answers each with one line once the client has done it, or has seen it.
//
// What the other client does to this one's sync (typing, receipts, device list changes) is
// read from the /sync answers the client itself received, so an answer is what the server
// sent this client, not what the SDK made of it.
//
// Input (stdin, JSON lines): first {baseUrl, session: {user_id, access_token, device_id}};
// then commands {op, ...} (see `ops` below), ending with {op: "stop"}.
// Output (stdout, JSON lines): {ready: true} once the first sync is done; one answer per
// command; or {error, stage} and the process ends. The SDK's own logging goes to stderr.
//
// Trusting a test CA: run with NODE_EXTRA_CA_CERTS naming its PEM file.

import { createCipheriv, createDecipheriv, createHash, randomBytes } from "node:crypto";
import readline from "node:readline";

import { decryption, run, sdk, until, writeLine } from "./clients.mjs";

let stage = "start";

const lines = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]();

async function nextCommand() {
    const { value, done } = await lines.next();
    if (done) throw new Error("stdin closed before the stop command");
    return JSON.parse(value);
}

// what this client's /sync answers carried: users in device_lists.changed, and the ephemeral
// events of each joined room
const synced = { changed: new Set(), ephemeral: [] };

async function recordingFetch(url, init) {
    const response = await fetch(url, init);
    if (response.ok && new URL(url).pathname.endsWith("/sync")) {
        const body = await response.clone().json();
        for (const userId of body.device_lists?.changed ?? []) synced.changed.add(userId);
        for (const [roomId, room] of Object.entries(body.rooms?.join ?? {})) {
            for (const event of room.ephemeral?.events ?? []) {
                synced.ephemeral.push({ roomId, ...event });
            }
        }
    }
    return response;
}

const unpadded = (bytes) => bytes.toString("base64").replace(/=+$/, "");

function ephemeral(roomId, type, matches) {
    return synced.ephemeral.find((e) => e.roomId === roomId && e.type === type && matches(e.content));
}

const ops = {
    async own_keys(client) {
        const keys = await client.getCrypto().getOwnDeviceKeys();
        return { ed25519: keys.ed25519, curve25519: keys.curve25519 };
    },
    async join(client, { room_id: roomId }) {
        await until("the invite in sync", () =>
            client.getRoom(roomId)?.getMyMembership() === "invite" ? true : undefined,
        );
        await client.joinRoom(roomId);
        await until("the join in sync", () =>
            client.getRoom(roomId)?.getMyMembership() === "join" ? true : undefined,
        );
        await until("the room known to be encrypted", async () =>
            (await client.getCrypto().isEncryptionEnabledInRoom(roomId)) ? true : undefined,
        );
        return {};
    },
    // the other's device as this client fetched it (through its own server), verified by
    // comparing its Ed25519 key with the one the other client reports for itself
    async verify_device(client, { user_id: userId, device_id: deviceId, ed25519 }) {
        const crypto = client.getCrypto();
        const device = await until(`${userId}'s device ${deviceId}`, async () => {
            const devices = await crypto.getUserDeviceInfo([userId], true);
            return devices.get(userId)?.get(deviceId);
        });
        const before = (await crypto.getDeviceVerificationStatus(userId, deviceId)).isVerified();
        if (device.getFingerprint() !== ed25519) {
            return { fingerprint: device.getFingerprint(), verified_before: before };
        }
        await crypto.setDeviceVerified(userId, deviceId, true);
        const after = await crypto.getDeviceVerificationStatus(userId, deviceId);
        return { fingerprint: device.getFingerprint(), verified_before: before, verified: after.isVerified() };
    },
    async send(client, { room_id: roomId, body }) {
        const { event_id: eventId } = await client.sendMessage(roomId, { msgtype: "m.text", body });
        return { event_id: eventId };
    },
    // the event's plaintext and the sender's device keys, once decrypted
    async decrypt(client, { room_id: roomId, event_id: eventId }) {
        const seen = await until(`${eventId} decrypted`, () => {
            const found = decryption(client, roomId, eventId);
            return found?.failure ? undefined : found;
        });
        const event = client.getRoom(roomId).findEventById(eventId);
        const content = event.getContent();
        return {
            ...seen,
            sender: event.getSender(),
            // the Olm identity the room key came from, to tie the message to a verified device
            sender_curve25519: event.getSenderKey(),
            claimed_ed25519: event.getClaimedEd25519Key(),
            content: { msgtype: content.msgtype, file: content.file ?? null },
        };
    },
    async typing(client, { room_id: roomId, typing }) {
        await client.sendTyping(roomId, typing, 30000);
        return {};
    },
    async sees_typing(client, { room_id: roomId, user_id: userId }) {
        const event = await until(`${userId} typing`, () =>
            ephemeral(roomId, "m.typing", (c) => c.user_ids?.includes(userId)),
        );
        return { user_ids: event.content.user_ids };
    },
    async read(client, { room_id: roomId, event_id: eventId }) {
        const event = await until(`${eventId} in the timeline`, () =>
            client.getRoom(roomId)?.findEventById(eventId),
        );
        await client.sendReadReceipt(event);
        return {};
    },
    async sees_receipt(client, { room_id: roomId, user_id: userId, event_id: eventId }) {
        const event = await until(`${userId}'s receipt on ${eventId}`, () =>
            ephemeral(roomId, "m.receipt", (c) => c[eventId]?.["m.read"]?.[userId] !== undefined),
        );
        return { ts: event.content[eventId]["m.read"][userId].ts ?? null };
    },
    async forget_device_changes() {
        synced.changed.clear();
        return {};
    },
    async sees_device_change(client, { user_id: userId }) {
        await until(`${userId} in device_lists.changed`, () =>
            synced.changed.has(userId) ? true : undefined,
        );
        return {};
    },
    // the user's devices once `deviceId` is among them: the SDK queries the keys of a user
    // in device_lists.changed in the background after the sync that named them
    async finds_device(client, { user_id: userId, device_id: deviceId }) {
        const ids = await until(`${userId}'s device ${deviceId}`, async () => {
            const devices = await client.getCrypto().getUserDeviceInfo([userId], true);
            const found = [...(devices.get(userId)?.keys() ?? [])];
            return found.includes(deviceId) ? found : undefined;
        });
        return { device_ids: ids.sort() };
    },
    // in an encrypted room an image goes as an encrypted attachment: AES-256-CTR under a
    // fresh key, the ciphertext uploaded, the key and the ciphertext's hash in the event
    async send_image(client, { room_id: roomId, png_base64: png }) {
        const plaintext = Buffer.from(png, "base64");
        const key = randomBytes(32);
        const iv = Buffer.concat([randomBytes(8), Buffer.alloc(8)]);
        const cipher = createCipheriv("aes-256-ctr", key, iv);
        const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()]);
        const { content_uri: uri } = await client.uploadContent(ciphertext, {
            type: "application/octet-stream",
        });
        const { event_id: eventId } = await client.sendMessage(roomId, {
            msgtype: "m.image",
            body: "looking-glass.png",
            file: {
                url: uri,
                key: {
                    kty: "oct",
                    key_ops: ["encrypt", "decrypt"],
                    alg: "A256CTR",
                    k: key.toString("base64url"),
                    ext: true,
                },
                iv: unpadded(iv),
                hashes: { sha256: unpadded(createHash("sha256").update(ciphertext).digest()) },
                v: "v2",
            },
            info: { mimetype: "image/png", size: plaintext.length },
        });
        return { event_id: eventId, content_uri: uri };
    },
    // an encrypted attachment through this client's own server, on the authenticated
    // endpoint: what the server answered, and the plaintext's digest if the hash matched
    async download(client, { file }) {
        const url = client.mxcUrlToHttp(file.url, undefined, undefined, undefined, false, true, true);
        const response = await fetch(url, {
            headers: { Authorization: `Bearer ${client.getAccessToken()}` },
        });
        const ciphertext = Buffer.from(await response.arrayBuffer());
        const hashMatches =
            unpadded(createHash("sha256").update(ciphertext).digest()) === file.hashes.sha256;
        const decipher = createDecipheriv(
            "aes-256-ctr",
            Buffer.from(file.key.k, "base64url"),
            Buffer.from(file.iv, "base64"),
        );
        const plaintext = Buffer.concat([decipher.update(ciphertext), decipher.final()]);
        return {
            url: new URL(url).pathname,
            status: response.status,
            content_type: response.headers.get("content-type"),
            hash_matches: hashMatches,
            sha256: createHash("sha256").update(plaintext).digest("hex"),
        };
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
        fetchFn: recordingFetch,
    });
    await client.initRustCrypto({ useIndexedDB: false });
    await client.startClient({ initialSyncLimit: 20 });
    await until("the first sync", () => (client.isInitialSyncComplete() ? true : undefined));
    writeLine({ ready: true });
    try {
        for (;;) {
            const command = await nextCommand();
            stage = JSON.stringify(command).slice(0, 200);
            if (command.op === "stop") return { stopped: true };
            const op = ops[command.op];
            if (op === undefined) throw new Error(`unknown op ${command.op}`);
            writeLine(await op(client, command));
        }
    } finally {
        client.stopClient();
    }
}

await run(main, () => stage, 180000);
