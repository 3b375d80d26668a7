// What the matrix-js-sdk scripts of the interop tests share: the console kept off stdout, the
// SDK, reading the test's input, polling, starting a client with Rust crypto, plain requests,
// and running a script's main so that stdout ends with one JSON line either way.
//
// Importing this module first (a static import) sets the console up before the SDK loads.

export const writeLine = (line) => process.stdout.write(JSON.stringify(line) + "\n");

// the SDK logs through console; keep stdout for the result lines, and drop the Rust crypto
// stack's debug tracing unless INTEROP_JS_LOG=debug asks for it
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

export const sdk = await import("matrix-js-sdk");
const { logger } = await import("matrix-js-sdk/lib/logger.js");
logger.setLevel(process.env.INTEROP_JS_LOG ?? "warn");

export const STEP_TIMEOUT_MS = 20000;
// every client started, so that `run` stops them all however main ends
const clients = [];

export async function readInput() {
    const chunks = [];
    for await (const chunk of process.stdin) chunks.push(chunk);
    return JSON.parse(Buffer.concat(chunks).toString("utf8"));
}

// poll `probe` until it returns something other than undefined
export async function until(what, probe, timeoutMs = STEP_TIMEOUT_MS, intervalMs = 100) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
        const value = await probe();
        if (value !== undefined) return value;
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
        await new Promise((resolve) => setTimeout(resolve, intervalMs));
    }
}

// a logged-in session's client with Rust crypto, once its first sync is done
export async function startClient(baseUrl, session, cryptoCallbacks = undefined) {
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

export async function api(baseUrl, method, path, token, body) {
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
export function decryption(client, roomId, eventId) {
    const event = client.getRoom(roomId)?.findEventById(eventId);
    if (event === undefined || event.isBeingDecrypted()) return undefined;
    if (event.isDecryptionFailure()) return { failure: event.decryptionFailureReason };
    if (event.getType() !== "m.room.message") return undefined;
    return { type: event.getWireType(), body: event.getContent().body };
}

// main's result, or {error, stage} with the stage it had reached, as the last line of stdout;
// then the process ends, as the SDK keeps timers alive after stopClient
export async function run(main, stage, timeoutMs) {
    const deadline = setTimeout(() => {
        writeLine({ error: "overall timeout", stage: stage() });
        process.exit(2);
    }, timeoutMs);
    try {
        writeLine(await main());
        process.exitCode = 0;
    } catch (error) {
        writeLine({ error: String(error?.stack ?? error), stage: stage() });
        process.exitCode = 1;
    } finally {
        clearTimeout(deadline);
        for (const client of clients) client.stopClient();
        setTimeout(() => process.exit(), 100);
    }
}
