// Signs in to cordon's console through the provider as a browser would: from the console's
// "sign in with the identity provider" link, through the provider's sign-in page, back to
// the console's callback, then opens the console with the session cookie it set. Cookies are
// kept per origin. Prints JSON: the callback's status, the console's status and page.
//
// With `--reveal CUSTOMER TICKET FIELD` it then opens the customer's card in the console and
// submits its reveal form for that field, and prints the answer's status and page too.
//
//   node console-sign-in.mjs CORDON_URL[,CORDON_URL...] LOGIN PASSWORD [--tamper-state | --reveal CUSTOMER TICKET FIELD]
const [gateways, login, password, option, ...rest] = process.argv.slice(2);
// Several gateways, comma-separated, are one site behind a load balancer: one cookie jar for
// them all, the sign-in begun (and the console opened) at the first.
const cordons = gateways.split(',');
const cordon = cordons[0];
const tamper = option;
const jars = new Map();
const jar = (url) => {
  let origin = new URL(url).origin;
  if (cordons.some((gateway) => new URL(gateway).origin === origin)) origin = cordon;
  if (!jars.has(origin)) jars.set(origin, new Map());
  return jars.get(origin);
};
const go = async (url, init = {}) => {
  const cookies = [...jar(url)].map(([name, value]) => `${name}=${value}`).join('; ');
  const response = await fetch(url, { ...init, redirect: 'manual', headers: { ...(init.headers || {}), cookie: cookies } });
  for (const cookie of response.headers.getSetCookie()) {
    const [pair] = cookie.split(';');
    const at = pair.indexOf('=');
    jar(url).set(pair.slice(0, at), pair.slice(at + 1));
  }
  return response;
};
let url = `${cordon}/console/oidc/start`;
let response = await go(url);
const steps = [];
for (let hop = 0; hop < 20 && response.status >= 300 && response.status < 400; hop += 1) {
  url = new URL(response.headers.get('location'), url).href;
  if (url.includes('/interaction/') && !url.endsWith('/login')) {
    response = await go(`${url}/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ login, password }).toString(),
    });
    continue;
  }
  if (tamper === '--tamper-state' && url.startsWith(`${cordon}/console/oidc/callback`)) {
    const changed = new URL(url);
    changed.searchParams.set('state', 'not-the-one-this-browser-began');
    url = changed.href;
  }
  steps.push(new URL(url).pathname);
  response = await go(url);
}
const callbackStatus = response.status;
const callbackPage = await response.text();
// The same callback again, as a replayed link would be: its state is used.
const callbackUrl = url;
const replayed = await go(callbackUrl);
const replayStatus = replayed.status;
let consoleUrl = `${cordon}/console/`;
let consoleResponse = await go(consoleUrl);
for (let hop = 0; hop < 5 && consoleResponse.status >= 300 && consoleResponse.status < 400; hop += 1) {
  consoleUrl = new URL(consoleResponse.headers.get('location'), consoleUrl).href;
  steps.push(new URL(consoleUrl).pathname);
  consoleResponse = await go(consoleUrl);
}
let reveal = null;
if (option === '--reveal') {
  const [customer, ticket, field] = rest;
  const card = await go(`${cordon}/console/customers/${customer}?ticket=${ticket}`);
  const html = await card.text();
  const csrf = (html.match(/class="reveal">[\s\S]*?name="csrf" value="([^"]+)"/) || [])[1] || '';
  const answer = await go(`${cordon}/console/customers/${customer}/reveal`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ csrf, ticket, field, reason: 'caller verified' }).toString(),
  });
  reveal = { card_status: card.status, status: answer.status, page: (await answer.text()).slice(0, 6000) };
}
console.log(JSON.stringify({
  reveal,
  steps,
  callback_status: callbackStatus,
  replay_status: replayStatus,
  callback_page: callbackPage.slice(0, 2000),
  console_status: consoleResponse.status,
  console_page: (await consoleResponse.text()).slice(0, 4000),
}));
