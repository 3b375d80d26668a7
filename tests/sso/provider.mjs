// An OpenID Provider for the single sign-on tests: the certified `oidc-provider` package,
// with clients whose redirect URI is the homeserver's callback and a scripted sign-in page
// (a form naming one of ACCOUNTS) in place of a real login.
//
// Settings come as JSON on the command line: {port, issuer, redirectUri, clients, modules}.
// It prints "listening" once it serves.

import { createServer } from 'node:http';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const settings = JSON.parse(process.argv[2]);
// the package lives in tests/interop/js/node_modules, which `npm ci` fills
const { default: Provider } = await import(
  pathToFileURL(join(settings.modules, 'oidc-provider', 'lib', 'index.js')).href
);

// subject -> claims; the tests sign in as these
const ACCOUNTS = {
  'alice-sub': { preferred_username: 'alice', name: 'Alice Liddell', team: 'blue' },
  'nameless-sub': { name: 'No Name', team: 'blue' },
  'bob-sub': { preferred_username: 'bob', name: 'Bob from SSO', team: 'blue' },
  'outsider-sub': { preferred_username: 'outsider', name: 'Out Sider', team: 'red' },
  'renamed-sub': { preferred_username: 'renamed', name: 'First Name', team: 'blue' },
  'poster-sub': { preferred_username: 'poster', name: 'Poster', team: 'blue' },
  'mailer-sub': { preferred_username: 'mailer', name: 'Mailer', team: 'blue', email: 'Mailer@Example.ORG' },
  'badmail-sub': { preferred_username: 'badmail', name: 'Bad Mail', team: 'blue', email: 'not an address' },
};

const provider = new Provider(settings.issuer, {
  clients: settings.clients.map((client) => ({
    client_id: client.id,
    client_secret: client.secret,
    token_endpoint_auth_method: client.authMethod,
    redirect_uris: [settings.redirectUri],
    ...(client.backchannelLogoutUri
      ? { backchannel_logout_uri: client.backchannelLogoutUri, backchannel_logout_session_required: true }
      : {}),
    response_types: ['code'],
    grant_types: ['authorization_code'],
  })),
  cookies: { keys: ['sso-test-cookie-key'] },
  claims: { openid: ['sub'], profile: ['preferred_username', 'name', 'team', 'email'] },
  // the claims of the granted scopes go in the ID token too, not only in userinfo
  conformIdTokenClaims: false,
  features: { devInteractions: { enabled: false }, backchannelLogout: { enabled: true } },
  pkce: { required: () => false },
  async findAccount(ctx, id) {
    if (!(id in ACCOUNTS)) return undefined;
    return { accountId: id, async claims() { return { sub: id, ...ACCOUNTS[id] }; } };
  },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
});

function readForm(req) {
  return new Promise((resolve, reject) => {
    let body = '';
    req.on('data', (chunk) => { body += chunk; });
    req.on('end', () => resolve(new URLSearchParams(body)));
    req.on('error', reject);
  });
}

// the sign-in page: GET shows a form, POST signs in as the account it names and grants
// the requested scopes, so the provider sends the browser back to the homeserver
provider.use(async (ctx, next) => {
  // the tests change an account's claims between sign-ins (POST JSON to merge in)
  const claims = ctx.path.match(/^\/test\/claims\/([^/]+)$/);
  if (claims && ctx.method === 'POST' && claims[1] in ACCOUNTS) {
    const body = await new Promise((resolve) => {
      let text = '';
      ctx.req.on('data', (chunk) => { text += chunk; });
      ctx.req.on('end', () => resolve(JSON.parse(text)));
    });
    Object.assign(ACCOUNTS[claims[1]], body);
    ctx.status = 204;
    return undefined;
  }
  const match = ctx.path.match(/^\/interaction\/([^/]+)(\/login)?$/);
  if (!match) return next();
  const details = await provider.interactionDetails(ctx.req, ctx.res);
  if (ctx.method === 'GET' && !match[2]) {
    ctx.type = 'html';
    ctx.body = `<!DOCTYPE html><form method="post" action="/interaction/${details.uid}/login">`
      + '<input name="account"><button>Sign in</button></form>';
    return undefined;
  }
  if (ctx.method === 'POST' && match[2]) {
    const account = (await readForm(ctx.req)).get('account');
    if (!(account in ACCOUNTS)) {
      ctx.status = 400;
      ctx.body = 'unknown account';
      return undefined;
    }
    const grant = new provider.Grant({ accountId: account, clientId: details.params.client_id });
    grant.addOIDCScope(details.params.scope);
    const grantId = await grant.save();
    await provider.interactionFinished(
      ctx.req,
      ctx.res,
      { login: { accountId: account }, consent: { grantId } },
      { mergeWithLastSubmission: false },
    );
    ctx.respond = false;
    return undefined;
  }
  return next();
});

createServer(provider.callback()).listen(settings.port, '127.0.0.1', () => {
  console.log('listening');
});
