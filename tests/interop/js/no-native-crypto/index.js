// matrix-appservice-bridge loads matrix-bot-sdk, which requires its native E2EE binding at
// load time but touches it only when a bridge turns encryption on. That binding's install
// step downloads a prebuilt library from outside the npm registry, so it cannot be had here;
// this stand-in lets the bridge load and fails loudly if anything reaches for encryption.
"use strict";

module.exports = new Proxy(
  {},
  {
    get(_target, name) {
      if (typeof name === "symbol" || name === "__esModule" || name === "then") {
        return undefined;
      }
      throw new Error(
        `matrix-sdk-crypto-nodejs.${name}: E2EE is not installed for the appservice interop tests`,
      );
    },
  },
);
