// Two matrix-js-sdk clients with the Rust crypto stack, in an encrypted room on a real server:
// Alice sends, Bob decrypts; Bob has set up cross-signing and recovery (secret storage and a
// key backup), so the room key goes to the backup; a new login of Bob, given the recovery
// key, takes the backup key from secret storage, restores the room key and decrypts history.
//
// Input (stdin, JSON): {baseUrl, alice: {user_id, access_token, device_id},
//                       bob: {user_id, access_token, device_id}, bobPassword, body}
// Output (stdout, one JSON line): what each step observed, or {error, stage, log}; the test
// asserts on it. The SDK's own logging goes to stderr.

import { api, decryption, readInput, run, startClient, STEP_TIMEOUT_MS, until } from "./clients.mjs";

const { decodeRecoveryKey } = await import("matrix-js-sdk/lib/crypto-api/recovery-key.js");

let stage = "start";
// the secret storage key a client has at hand: Bob's first device made it, his new login
// gets it only when he types his recovery key in
let secretStorageKey = null;
const cryptoCallbacks = {
    getSecretStorageKey: async ({ keys }) => {
        const keyId = Object.keys(keys)[0];
        return secretStorageKey && keyId ? [keyId, secretStorageKey] : null;
    },
};

async function main() {
    const input = await readInput();
    const { baseUrl } = input;
    const result = {};

    stage = "start clients";
    const alice = await startClient(baseUrl, input.alice, cryptoCallbacks);
    const bob = await startClient(baseUrl, input.bob, cryptoCallbacks);

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
    const bob2 = await startClient(baseUrl, login, cryptoCallbacks);
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

await run(main, () => stage, 90000);
