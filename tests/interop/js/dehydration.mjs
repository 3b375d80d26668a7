// Dehydrated devices (MSC3814) with matrix-js-sdk's Rust crypto against a real server: Bob
// sets up cross-signing and secret storage and dehydrates a device, then logs out; Alice
// sends in an encrypted room, so the room key goes to the dehydrated device only; a new login
// of Bob rehydrates it, reads its to-device messages and decrypts what Alice sent.
//
// Input (stdin, JSON): {baseUrl, alice: {user_id, access_token, device_id},
//                       bob: {user_id, access_token, device_id}, bobPassword, body}
// Output (stdout, one JSON line): what each step observed, or {error, stage}. The SDK's own
// logging goes to stderr.

const writeResult = (result) => process.stdout.write(JSON.stringify(result) + "\n");
const verbose = process.env.INTEROP_JS_LOG === "debug";
for (const method of ["log", "info"]) console[method] = console.error;
for (const method of ["debug", "trace"]) console[method] = verbose ? console.error : () => {};
if (verbose) {
    // every request the clients make, with its body, and the answer's status
    const realFetch = globalThis.fetch;
    globalThis.fetch = async (url, init) => {
        const response = await realFetch(url, init);
        console.error(`HTTP ${init?.method ?? "GET"} ${url} ${init?.body ?? ""} -> ${response.status}`);
        return response;
    };
}

const sdk = await import("matrix-js-sdk");
const { CryptoEvent } = await import("matrix-js-sdk/lib/crypto-api/index.js");
const { logger } = await import("matrix-js-sdk/lib/logger.js");
logger.setLevel(process.env.INTEROP_JS_LOG ?? "warn");

const DEHYDRATED = "/_matrix/client/unstable/org.matrix.msc3814.v1/dehydrated_device";
const STEP_TIMEOUT_MS = 20000;
let stage = "start";
const clients = [];
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

async function readInput() {
    const chunks = [];
    for await (const chunk of process.stdin) chunks.push(chunk);
    return JSON.parse(Buffer.concat(chunks).toString("utf8"));
}

async function until(what, probe, timeoutMs = STEP_TIMEOUT_MS, intervalMs = 100) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
        const value = await probe();
        if (value !== undefined) return value;
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
        await new Promise((resolve) => setTimeout(resolve, intervalMs));
    }
}

async function startClient(baseUrl, session) {
    const client = sdk.createClient({
        baseUrl,
        userId: session.user_id,
        accessToken: session.access_token,
        deviceId: session.device_id,
        cryptoCallbacks,
    });
    clients.push(client);
    await client.initRustCrypto({ useIndexedDB: false });
    await client.startClient({ initialSyncLimit: 20 });
    await until(`${session.user_id}'s first sync`, () =>
        client.isInitialSyncComplete() ? true : undefined,
    );
    return client;
}

async function api(baseUrl, method, path, token, body) {
    const response = await fetch(baseUrl + path, {
        method,
        headers: {
            "Content-Type": "application/json",
            ...(token ? { Authorization: `Bearer ${token}` } : {}),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
    });
    const json = await response.json();
    if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${JSON.stringify(json)}`);
    return json;
}

function decryption(client, roomId, eventId) {
    const event = client.getRoom(roomId)?.findEventById(eventId);
    if (event === undefined || event.isBeingDecrypted()) return undefined;
    if (event.isDecryptionFailure()) return { failure: event.decryptionFailureReason };
    if (event.getType() !== "m.room.message") return undefined;
    return { type: event.getWireType(), body: event.getContent().body };
}

async function main() {
    const input = await readInput();
    const { baseUrl } = input;
    const bobId = input.bob.user_id;
    const result = {};

    stage = "start clients";
    const alice = await startClient(baseUrl, input.alice);
    const bob = await startClient(baseUrl, input.bob);

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
    const bob2 = await startClient(baseUrl, login);
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

const deadline = setTimeout(() => {
    writeResult({ error: "overall timeout", stage });
    process.exit(2);
}, 100000);

try {
    writeResult(await main());
    process.exitCode = 0;
} catch (error) {
    writeResult({ error: String(error?.stack ?? error), stage });
    process.exitCode = 1;
} finally {
    clearTimeout(deadline);
    for (const client of clients) client.stopClient();
    setTimeout(() => process.exit(), 100);
}
