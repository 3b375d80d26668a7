// Dehydrated devices (MSC3814) with matrix-js-sdk's Rust crypto against a real server: Bob
// sets up cross-signing and secret storage and dehydrates a device, then logs out; Alice
// sends in an encrypted room, so the room key goes to the dehydrated device only; a new login
// of Bob rehydrates it, reads its to-device messages and decrypts what Alice sent.
//
// Input (stdin, JSON): {baseUrl, alice: {user_id, access_token, device_id},
//                       bob: {user_id, access_token, device_id}, bobPassword, body}
// Output (stdout, one JSON line): what each step observed, or {error, stage}. The SDK's own
// logging goes to stderr.

import { api, decryption, readInput, run, startClient, until } from "./clients.mjs";

const { CryptoEvent } = await import("matrix-js-sdk/lib/crypto-api/index.js");

const DEHYDRATED = "/_matrix/client/unstable/org.matrix.msc3814.v1/dehydrated_device";
let stage = "start";
// what Bob would type in: the secret storage key, shared by his logins
const secretStorageKeys = new Map();
const cryptoCallbacks = {
    getSecretStorageKey: async ({ keys }) => {
        for (const keyId of Object.keys(keys)) {
            if (secretStorageKeys.has(keyId)) return [keyId, secretStorageKeys.get(keyId)];
        }
        return null;
    },
    cacheSecretStorageKey: (keyId, _keyInfo, key) => secretStorageKeys.set(keyId, key),
};

async function main() {
    const input = await readInput();
    const { baseUrl } = input;
    const bobId = input.bob.user_id;
    const result = {};

    stage = "start clients";
    const alice = await startClient(baseUrl, input.alice, cryptoCallbacks);
    const bob = await startClient(baseUrl, input.bob, cryptoCallbacks);

    stage = "Bob's cross-signing and secret storage";
    await bob.getCrypto().bootstrapCrossSigning({
        authUploadDeviceSigningKeys: async (makeRequest) => {
            await makeRequest({
                type: "m.login.password",
                identifier: { type: "m.id.user", user: bobId },
                password: input.bobPassword,
            });
        },
    });
    const recoveryKey = await bob.getCrypto().createRecoveryKeyFromPassphrase();
    await bob.getCrypto().bootstrapSecretStorage({
        createSecretStorageKey: async () => recoveryKey,
        setupNewSecretStorage: true,
    });
    result.dehydration_supported = await bob.getCrypto().isDehydrationSupported();

    stage = "Bob dehydrates a device";
    await bob.getCrypto().startDehydration({ createNewKey: true });
    const dehydrated = await api(baseUrl, "GET", DEHYDRATED, input.bob.access_token);
    result.dehydrated_device_id = dehydrated.device_id;

    stage = "encrypted room";
    const { room_id: roomId } = await alice.createRoom({
        invite: [bobId],
        initial_state: [
            { type: "m.room.encryption", state_key: "", content: { algorithm: "m.megolm.v1.aes-sha2" } },
        ],
    });
    result.room_id = roomId;
    await until("Bob's invite", () => (bob.getRoom(roomId) ? true : undefined));
    await bob.joinRoom(roomId);
    await until("Alice seeing Bob join", () =>
        alice.getRoom(roomId)?.getMember(bobId)?.membership === "join" ? true : undefined,
    );

    stage = "Bob logs out";
    bob.stopClient();
    await api(baseUrl, "POST", "/_matrix/client/v3/logout", input.bob.access_token, {});
    // Alice's client learns of it through /sync's device_lists and asks /keys/query again
    result.bob_devices_seen_by_alice = await until("Alice seeing only Bob's dehydrated device", async () => {
        const devices = (await alice.getCrypto().getUserDeviceInfo([bobId], true)).get(bobId);
        const ids = devices ? [...devices.keys()].sort() : [];
        return ids.length === 1 && ids[0] === dehydrated.device_id ? ids : undefined;
    });

    stage = "Alice sends";
    const { event_id: eventId } = await alice.sendMessage(roomId, { msgtype: "m.text", body: input.body });
    result.event_id = eventId;

    stage = "Bob's new login";
    const login = await api(baseUrl, "POST", "/_matrix/client/v3/login", undefined, {
        type: "m.login.password",
        identifier: { type: "m.id.user", user: bobId },
        password: input.bobPassword,
    });
    result.new_device_id = login.device_id;
    const bob2 = await startClient(baseUrl, login, cryptoCallbacks);
    await until("the new login seeing the room", () => (bob2.getRoom(roomId) ? true : undefined));
    result.before_rehydration = await until("the new login's first decryption attempt", () =>
        decryption(bob2, roomId, eventId),
    );

    stage = "rehydrate";
    // the new device takes the cross-signing keys from secret storage, once it knows their
    // public halves (its own user's keys, from /keys/query)
    await bob2.getCrypto().getUserDeviceInfo([bobId], true);
    await bob2.getCrypto().bootstrapCrossSigning({});
    let progress = { roomKeys: 0, toDevice: 0 };
    bob2.on(CryptoEvent.RehydrationProgress, (roomKeys, toDevice) => {
        progress = { roomKeys, toDevice };
    });
    // rehydrates the stored device, reads its messages, then dehydrates a fresh one
    await bob2.getCrypto().startDehydration();
    result.rehydration = progress;
    result.after_rehydration = await until("the new login decrypting history", () => {
        const seen = decryption(bob2, roomId, eventId);
        return seen?.failure ? undefined : seen;
    });
    result.next_dehydrated_device_id = (await api(baseUrl, "GET", DEHYDRATED, login.access_token)).device_id;
    return result;
}

await run(main, () => stage, 100000);
