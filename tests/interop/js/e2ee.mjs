// Two matrix-js-sdk clients with the Rust crypto stack, in an encrypted room on a real server:
// Alice sends, Bob decrypts; Bob has set up cross-signing and recovery (secret storage and a
// key backup), so the room key goes to the backup; a new login of Bob, given the recovery
// key, takes the backup key from secret storage, restores the room key and decrypts history.
//
// Input (stdin, JSON): {baseUrl, alice: {user_id, access_token, device_id},
//                       bob: {user_id, access_token, device_id}, bobPassword, body}
// Output (stdout, one JSON line): what each step observed, or {error, stage, log}; the test
// asserts on it. The SDK's own logging goes to stderr.

// the SDK logs through console; keep stdout for the one result line, and drop the Rust crypto
// stack's debug tracing unless INTEROP_JS_LOG=debug asks for it
const writeResult = (result) => process.stdout.write(JSON.stringify(result) + "\n");
const verbose = process.env.INTEROP_JS_LOG === "debug";
for (const method of ["log", "info"]) console[method] = console.error;
for (const method of ["debug", "trace"]) console[method] = verbose ? console.error : () => {};
if (verbose) {
    // show every request the clients make, with its body, and the answer's status
    const realFetch = globalThis.fetch;
    globalThis.fetch = async (url, init) => {
        const response = await realFetch(url, init);
        console.error(`HTTP ${init?.method ?? "GET"} ${url} ${init?.body ?? ""} -> ${response.status}`);
        return response;
    };
}

const sdk = await import("matrix-js-sdk");
const { logger } = await import("matrix-js-sdk/lib/logger.js");
const { decodeRecoveryKey } = await import("matrix-js-sdk/lib/crypto-api/recovery-key.js");
logger.setLevel(process.env.INTEROP_JS_LOG ?? "warn");

const STEP_TIMEOUT_MS = 20000;
let stage = "start";
const clients = [];
// the secret storage key a client has at hand: Bob's first device made it, his new login
// gets it only when he types his recovery key in
let secretStorageKey = null;
const cryptoCallbacks = {
    getSecretStorageKey: async ({ keys }) => {
        const keyId = Object.keys(keys)[0];
        return secretStorageKey && keyId ? [keyId, secretStorageKey] : null;
    },
};

async function readInput() {
    const chunks = [];
    for await (const chunk of process.stdin) chunks.push(chunk);
    return JSON.parse(Buffer.concat(chunks).toString("utf8"));
}

// poll `probe` until it returns something other than undefined
async function until(what, probe, timeoutMs = STEP_TIMEOUT_MS, intervalMs = 100) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
        const value = await probe();
        if (value !== undefined) return value;
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
        await new Promise((resolve) => setTimeout(resolve, intervalMs));
    }
}

async function startClient(baseUrl, session, password) {
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

// the event's plaintext once the client has decrypted it, "failure" once it has given up
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
    const result = {};

    stage = "start clients";
    const alice = await startClient(baseUrl, input.alice);
    const bob = await startClient(baseUrl, input.bob);

    stage = "Bob's cross-signing, secret storage and key backup";
    await bob.getCrypto().bootstrapCrossSigning({
        authUploadDeviceSigningKeys: async (makeRequest) => {
            await makeRequest({
                type: "m.login.password",
                identifier: { type: "m.id.user", user: input.bob.user_id },
                password: input.bobPassword,
            });
        },
    });
    result.bob_cross_signing_ready = await bob.getCrypto().isCrossSigningReady();
    // as Element's "set up recovery": a recovery key guards secret storage (in account data),
    // which keeps the cross-signing keys and the new backup's decryption key
    const recovery = await bob.getCrypto().createRecoveryKeyFromPassphrase();
    secretStorageKey = recovery.privateKey;
    await bob.getCrypto().bootstrapSecretStorage({
        createSecretStorageKey: async () => recovery,
        setupNewSecretStorage: true,
        setupNewKeyBackup: true,
    });
    result.bob_secret_storage_ready = await bob.getCrypto().isSecretStorageReady();
    // the backup engine starts once the client has checked the new version's trust
    const backupVersion = await until("Bob's backup to become active", async () =>
        (await bob.getCrypto().getActiveSessionBackupVersion()) ?? undefined,
    );
    result.backup_version = backupVersion;

    stage = "encrypted room";
    const { room_id: roomId } = await alice.createRoom({
        invite: [input.bob.user_id],
        initial_state: [
            {
                type: "m.room.encryption",
                state_key: "",
                content: { algorithm: "m.megolm.v1.aes-sha2" },
            },
        ],
    });
    result.room_id = roomId;
    await until("Bob's invite", () => (bob.getRoom(roomId) ? true : undefined));
    await bob.joinRoom(roomId);
    await until("Alice seeing Bob join", () =>
        alice.getRoom(roomId)?.getMember(input.bob.user_id)?.membership === "join" ? true : undefined,
    );
    await until("Alice knowing the room is encrypted", async () =>
        (await alice.getCrypto().isEncryptionEnabledInRoom(roomId)) ? true : undefined,
    );

    stage = "Alice sends";
    const { event_id: eventId } = await alice.sendMessage(roomId, {
        msgtype: "m.text",
        body: input.body,
    });
    result.event_id = eventId;

    stage = "Bob decrypts";
    result.bob_sees = await until("Bob decrypting", () => {
        const seen = decryption(bob, roomId, eventId);
        // a failure may be only that the room key has not arrived yet: keep waiting
        return seen?.failure ? undefined : seen;
    });

    stage = "Bob's key reaches the backup";
    // the SDK uploads to the backup after a random pause of up to 10 s
    result.backed_up = await until("the room key in Bob's backup", async () => {
        const keys = await api(
            baseUrl,
            "GET",
            `/_matrix/client/v3/room_keys/keys?version=${encodeURIComponent(backupVersion)}`,
            input.bob.access_token,
        );
        const sessions = Object.keys(keys.rooms?.[roomId]?.sessions ?? {});
        return sessions.length > 0 ? sessions.length : undefined;
    }, 2 * STEP_TIMEOUT_MS, 250);
    const backupKey = await bob.getCrypto().getSessionBackupPrivateKey();
    for (const client of [alice, bob]) client.stopClient();
    secretStorageKey = null;

    stage = "Bob's new login";
    const login = await api(baseUrl, "POST", "/_matrix/client/v3/login", undefined, {
        type: "m.login.password",
        identifier: { type: "m.id.user", user: input.bob.user_id },
        password: input.bobPassword,
        initial_device_display_name: "js-sdk bob, second login",
    });
    result.new_device_id = login.device_id;
    const bob2 = await startClient(baseUrl, login);
    await until("the new login seeing the room", () => (bob2.getRoom(roomId) ? true : undefined));
    result.new_login_before_restore = await until("the new login's first decryption attempt", () =>
        decryption(bob2, roomId, eventId),
    );

    stage = "restore from backup with the recovery key";
    secretStorageKey = decodeRecoveryKey(recovery.encodedPrivateKey);
    await bob2.getCrypto().loadSessionBackupPrivateKeyFromSecretStorage();
    const loadedKey = await bob2.getCrypto().getSessionBackupPrivateKey();
    result.new_login_got_the_backup_key =
        loadedKey !== null && Buffer.from(loadedKey).equals(Buffer.from(backupKey));
    const restored = await bob2.getCrypto().restoreKeyBackup();
    result.restored = { total: restored.total, imported: restored.imported };
    result.new_login_after_restore = await until("the new login decrypting history", () => {
        const seen = decryption(bob2, roomId, eventId);
        return seen?.failure ? undefined : seen;
    });
    return result;
}

const deadline = setTimeout(() => {
    writeResult({ error: "overall timeout", stage });
    process.exit(2);
}, 90000);

try {
    writeResult(await main());
    process.exitCode = 0;
} catch (error) {
    writeResult({ error: String(error?.stack ?? error), stage });
    process.exitCode = 1;
} finally {
    clearTimeout(deadline);
    for (const client of clients) client.stopClient();
    // the SDK keeps timers alive after stopClient
    setTimeout(() => process.exit(), 100);
}
