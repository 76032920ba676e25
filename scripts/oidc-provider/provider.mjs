// A real OpenID provider for cordon's single sign-on tests: oidc-provider (pinned in
// package-lock.json) with one confidential client, cordon's console, which must use PKCE;
// JWT access tokens (RFC 9068) for cordon's API as a resource; and a sign-in page of its own
// where the password says which methods were used (`amr`): "pw" signs in with a password
// only, "pw+otp" with a password and a one-time code.
//
//   OIDC_PROVIDER_TOOLS=DIR node provider.mjs PORT CLIENT_SECRET REDIRECT_URI API_AUDIENCE
//
// Accounts: `sam` (sam@exchange.example), `lee` (lee@exchange.example), `ghost` (an email no
// directory agent has), `mallory` (lee's address, not verified by the provider), `olga`
// (olga@exchange.example, whose tokens say she signed in two hours ago). It prints `oidc-provider listening on http://127.0.0.1:PORT` once it
// answers.
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import http from 'node:http';
import { join } from 'node:path';
import { URLSearchParams, pathToFileURL } from 'node:url';

// Installed by `run` under target/tools (OIDC_PROVIDER_TOOLS), from npm, pinned.
const { default: Provider } = await import(
  pathToFileURL(join(process.env.OIDC_PROVIDER_TOOLS, 'node_modules/oidc-provider/lib/index.js')).href
);

const [port, clientSecret, redirectUri, audience] = process.argv.slice(2);
if (!port || !clientSecret || !redirectUri || !audience) {
  console.error('usage: node provider.mjs PORT CLIENT_SECRET REDIRECT_URI API_AUDIENCE');
  process.exit(2);
}
const issuer = `http://127.0.0.1:${port}`;
const accounts = {
  sam: { email: 'sam@exchange.example' },
  lee: { email: 'lee@exchange.example' },
  ghost: { email: 'ghost@elsewhere.example' },
  // Claims lee's address without the provider having verified it.
  mallory: { email: 'lee@exchange.example', verified: false },
  // Her tokens say she signed in two hours ago (a long-lived session at the provider).
  olga: { email: 'olga@exchange.example', signedInLongAgo: true },
};
// How each account last signed in, for its access tokens' `amr` and `acr`.
const lastLogin = new Map();

// Signing keys made at each start, as a provider rotates them: RS256 for ID tokens, ES256
// for access tokens.
const signingKey = (type, options, alg) => ({
  ...generateKeyPairSync(type, options).privateKey.export({ format: 'jwk' }),
  kid: `${alg.toLowerCase()}-${randomBytes(4).toString('hex')}`,
  alg,
  use: 'sig',
});
const jwks = {
  keys: [
    signingKey('rsa', { modulusLength: 2048 }, 'RS256'),
    signingKey('ec', { namedCurve: 'P-256' }, 'ES256'),
  ],
};

const provider = new Provider(issuer, {
  jwks,
  clients: [{
    client_id: 'cordon-console',
    client_secret: clientSecret,
    redirect_uris: [redirectUri],
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  pkce: { required: () => true },
  claims: { openid: ['sub'], email: ['email'], acr: null, amr: null },
  acrValues: ['urn:exchange:loa:1', 'urn:exchange:loa:2'],
  cookies: { keys: ['cordon-test-provider-cookie-key'] },
  features: {
    devInteractions: { enabled: false },
    resourceIndicators: {
      enabled: true,
      defaultResource: async () => audience,
      useGrantedResource: async () => true,
      getResourceServerInfo: async (_ctx, resource) => {
        if (resource !== audience) throw new Error(`unknown resource ${resource}`);
        return { scope: 'openid email', audience, accessTokenFormat: 'jwt', accessTokenTTL: 600, jwt: { sign: { alg: 'ES256' } } };
      },
    },
  },
  extraTokenClaims: async (_ctx, token) => {
    const login = lastLogin.get(token.accountId);
    const account = accounts[token.accountId];
    const authTime = login && (account?.signedInLongAgo ? login.at - 7200 : login.at);
    return { email: account?.email, email_verified: account?.verified ?? true, amr: login?.amr, acr: login?.acr, auth_time: authTime };
  },
  findAccount: async (_ctx, id) => (accounts[id] ? {
    accountId: id,
    claims: async () => ({ sub: id, email: accounts[id].email }),
  } : undefined),
  interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
  ttl: { AccessToken: 600, AuthorizationCode: 60, IdToken: 600, Interaction: 600, Session: 3600, Grant: 3600 },
});

function page(res, status, body) {
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8' });
  res.end(`<!doctype html><title>Exchange sign-in</title>${body}`);
}

async function form(req) {
  let body = '';
  for await (const chunk of req) body += chunk;
  return new URLSearchParams(body);
}

const callback = provider.callback();
const server = http.createServer(async (req, res) => {
  const match = req.url.match(/^\/interaction\/([\w-]+)(\/login)?$/);
  if (!match) return callback(req, res);
  try {
    const details = await provider.interactionDetails(req, res);
    if (req.method === 'GET') {
      return page(res, 200, `<form method="post" action="/interaction/${details.uid}/login">
        <input name="login"><input name="password" type="password"><button>Sign in</button></form>`);
    }
    const fields = await form(req);
    const accountId = fields.get('login');
    const password = fields.get('password');
    if (!accounts[accountId] || !['pw', 'pw+otp'].includes(password)) {
      return page(res, 401, '<p>Wrong login or password.</p>');
    }
    const amr = password === 'pw+otp' ? ['pwd', 'otp'] : ['pwd'];
    const acr = password === 'pw+otp' ? 'urn:exchange:loa:2' : 'urn:exchange:loa:1';
    lastLogin.set(accountId, { amr, acr, at: Math.floor(Date.now() / 1000) });
    const grant = new provider.Grant({ accountId, clientId: details.params.client_id });
    grant.addOIDCScope('openid email');
    grant.addResourceScope(audience, 'openid email');
    const grantId = await grant.save();
    return provider.interactionFinished(req, res, { login: { accountId, amr, acr }, consent: { grantId } }, { mergeWithLastSubmission: false });
  } catch (error) {
    console.error(error);
    return page(res, 400, '<p>The sign-in failed.</p>');
  }
});
server.listen(Number(port), '127.0.0.1', () => console.log(`oidc-provider listening on ${issuer}`));
for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => server.close(() => process.exit(0)));
