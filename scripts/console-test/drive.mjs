// Drives cordon's console in Debian's Chromium, as a support agent would, and checks what a
// person sees: the watermark drawn over every region of customer data (not only present in
// the page), refusals in words, forms refused without the session's CSRF token, and a
// signed-out session that opens nothing. Screenshots of each view go to OUT.
//   CONSOLE_TEST_TOOLS=DIR node drive.mjs URL AGENT_TOKEN CUSTOMER TICKET FIELD VALUE OUT \
//     ADMIN_TOKEN ANALYST_TOKEN OTHER_AGENT_TOKEN CUSTOMER_TOKEN
// (DIR holds node_modules/playwright-core, installed by `run`.) Then another agent touches a
// canary through the API, an analyst works the alert in the console, reinstates the agent,
// scopes an incident and downloads its report, and the customer lists who viewed their data
// and verifies a receipt in the browser.
import { createRequire } from 'node:module';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { inflateSync } from 'node:zlib';

const { chromium } = createRequire(join(process.env.CONSOLE_TEST_TOOLS, 'package.json'))('playwright-core');
const [url, token, customer, ticket, field, value, out, admin, analyst, other, customerToken] = process.argv.slice(2);
mkdirSync(out, { recursive: true });
let failures = 0;
function check(condition, what) {
  console.log(`${condition ? 'ok  ' : 'FAIL'} ${what}`);
  if (!condition) failures += 1;
}

// A PNG's pixels, decoded here (8-bit RGB or RGBA, as Chromium writes them), to compare two
// screenshots pixel by pixel.
function pixels(png) {
  let at = 8;
  let width = 0, height = 0, channels = 4;
  const data = [];
  while (at < png.length) {
    const length = png.readUInt32BE(at);
    const type = png.toString('ascii', at + 4, at + 8);
    const body = png.subarray(at + 8, at + 8 + length);
    if (type === 'IHDR') {
      width = body.readUInt32BE(0);
      height = body.readUInt32BE(4);
      channels = body[9] === 6 ? 4 : 3;
    } else if (type === 'IDAT') {
      data.push(body);
    }
    at += 12 + length;
  }
  const raw = inflateSync(Buffer.concat(data));
  const stride = width * channels;
  const image = Buffer.alloc(height * stride);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)];
    for (let x = 0; x < stride; x++) {
      const byte = raw[y * (stride + 1) + 1 + x];
      const left = x >= channels ? image[y * stride + x - channels] : 0;
      const up = y > 0 ? image[(y - 1) * stride + x] : 0;
      const corner = x >= channels && y > 0 ? image[(y - 1) * stride + x - channels] : 0;
      let predicted = 0;
      if (filter === 1) predicted = left;
      else if (filter === 2) predicted = up;
      else if (filter === 3) predicted = (left + up) >> 1;
      else if (filter === 4) {
        const p = left + up - corner;
        const [pa, pb, pc] = [Math.abs(p - left), Math.abs(p - up), Math.abs(p - corner)];
        predicted = pa <= pb && pa <= pc ? left : pb <= pc ? up : corner;
      }
      image[y * stride + x] = (byte + predicted) & 0xff;
    }
  }
  return { width, height, channels, image };
}

// The share of a region's 24-pixel tiles in which the watermark changed pixels: drawn over
// the whole region, it changes most of them.
function coverage(withMark, withoutMark) {
  const a = pixels(withMark), b = pixels(withoutMark);
  if (a.width !== b.width || a.height !== b.height) return 0;
  const tile = 24;
  let tiles = 0, marked = 0;
  for (let ty = 0; ty + tile <= a.height; ty += tile) {
    for (let tx = 0; tx + tile <= a.width; tx += tile) {
      tiles += 1;
      let changed = 0;
      for (let y = ty; y < ty + tile; y++) {
        for (let x = tx; x < tx + tile; x++) {
          const at = (y * a.width + x) * a.channels;
          if (Math.abs(a.image[at] - b.image[at]) + Math.abs(a.image[at + 1] - b.image[at + 1]) + Math.abs(a.image[at + 2] - b.image[at + 2]) > 6) changed += 1;
        }
      }
      if (changed > 0) marked += 1;
    }
  }
  return tiles === 0 ? 0 : marked / tiles;
}

// Every `data-watermark` region on the page must be drawn over: screenshot it as shown and
// with its watermark layer hidden (through the DOM; the page's policy allows no injected
// style), and find the watermark in most of its tiles.
async function checkWatermarks(page, view, agent, code) {
  const regions = await page.locator('[data-watermark]').all();
  check(regions.length > 0, `${view}: has watermarked regions`);
  for (const [number, region] of regions.entries()) {
    const mark = await region.getAttribute('data-watermark');
    check(mark === `${agent} ${code}`, `${view} region ${number}: data-watermark names ${agent} and the session (${mark})`);
    const shown = await region.screenshot();
    await region.evaluate((element) => element.querySelector('.watermark').style.visibility = 'hidden');
    const hidden = await region.screenshot();
    await region.evaluate((element) => element.querySelector('.watermark').style.visibility = '');
    const share = coverage(shown, hidden);
    check(share >= 0.5, `${view} region ${number}: the watermark is drawn over ${(share * 100).toFixed(0)}% of its tiles`);
    const text = await region.locator('.watermark span').first().textContent();
    check(text.startsWith(`${agent} · ${code} · `) && text.endsWith(' UTC'), `${view} region ${number}: the watermark reads "${text}"`);
  }
}

// A fresh profile each run: playwright launches Chromium with a new temporary user data folder.
const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
    '--disable-sync', '--no-first-run'],
});
try {
  const context = await browser.newContext({ viewport: { width: 1200, height: 900 } });
  const page = await context.newPage();
  const blocked = [];
  page.on('console', (message) => { if (/Content Security Policy/.test(message.text())) blocked.push(message.text()); });

  await page.goto(`${url}/console/`);
  check(page.url().endsWith('/console/login'), 'signed out, the console asks for a sign-in');
  await page.screenshot({ path: join(out, 'login.png'), fullPage: true });
  await page.fill('input[name=token]', token);
  await page.click('button[type=submit]');
  await page.waitForURL(`${url}/console/`);
  const code = await page.locator('[data-session-code]').getAttribute('data-session-code');
  check(/^[34679ACDEFGHJKMNPQRTUVWXY]{8}$/.test(code), `the session's code is shown (${code})`);
  const agent = (await page.locator('.who').textContent()).trim().split(/\s+/)[0];
  await page.screenshot({ path: join(out, 'queue.png'), fullPage: true });
  check(await page.locator(`a[href*="/console/customers/${customer}"]`).count() > 0, `the queue lists ${customer}`);

  await page.click(`a[href*="/console/customers/${customer}"]`);
  await page.waitForSelector('section.card');
  check(!(await page.content()).includes(value), 'the card is masked');
  await checkWatermarks(page, 'card', agent, code);
  await page.screenshot({ path: join(out, 'card.png'), fullPage: true });

  await page.check(`form.reveal input[value=${field}]`);
  await page.fill('form.reveal input[name=reason]', `${ticket}: customer asked on chat`);
  await page.click('form.reveal button[type=submit]');
  await page.waitForSelector('section.revealed');
  check((await page.locator('section.revealed').textContent()).includes(value), `the revealed ${field} is shown`);
  check(!page.url().includes(encodeURIComponent(value)) && !page.url().includes(value), 'no revealed value in the URL');
  await checkWatermarks(page, 'reveal', agent, code);
  await page.screenshot({ path: join(out, 'revealed.png'), fullPage: true });

  // The form offers only what the ticket needs; a field it does not need, posted anyway with
  // the session's token (an insider editing the form), is refused in words.
  check(await page.locator('form.reveal input[value=tax_id]').count() === 0, 'the reveal form does not offer the tax id');
  const csrf = await page.locator('form.reveal input[name=csrf]').getAttribute('value');
  const beyond = await context.request.post(`${url}/console/customers/${customer}/reveal`, {
    form: { csrf, ticket, field: 'tax_id', reason: 'curious' },
  });
  const refusalPage = await beyond.text();
  const refusal = (refusalPage.match(/class="refusal"[^>]*>([^<]*)</) || [])[1] || '';
  check(refusal.startsWith('Refused:'), `a reveal beyond the ticket is refused in words: "${refusal}"`);
  // The refusal as the agent sees it (its stylesheet from the server).
  await page.setContent(refusalPage.replaceAll('href="/console/', `href="${url}/console/`));
  await page.screenshot({ path: join(out, 'refused.png'), fullPage: true });

  // A post without the session's CSRF token (what another site's form would send) is refused.
  const forged = await context.request.post(`${url}/console/customers/${customer}/reveal`, {
    form: { ticket, field, reason: 'forged' }, maxRedirects: 0,
  });
  check(forged.status() === 403 && !(await forged.text()).includes(value), `a post without the CSRF token is refused (${forged.status()})`);
  const headers = (await page.goto(`${url}/console/customers/${customer}?ticket=${ticket}`)).headers();
  check(headers['cache-control'] === 'no-store', 'pages of customer data are not cached');
  check((headers['content-security-policy'] || '').includes("frame-ancestors 'none'"), 'no other site may frame the console');
  check(blocked.length === 0, `the pages break none of their own policy (${blocked.length} reports)`);

  // Signing out ends the session: the same cookie, kept by a thief, opens nothing.
  const cookies = await context.cookies();
  await page.click('form.logout button');
  await page.waitForURL(`${url}/console/login`);
  const thief = await browser.newContext();
  await thief.addCookies(cookies);
  const stolen = await thief.newPage();
  await stolen.goto(`${url}/console/customers/${customer}?ticket=${ticket}`);
  check(await stolen.locator('[data-watermark]').count() === 0 && await stolen.locator('input[name=token]').count() === 1,
    'a signed-out session\'s cookie opens nothing');
  writeFileSync(join(out, 'session-code.txt'), `${code}\n`);

  // Another agent opens a canary through the API: refused, contained, an alert.
  const canary = await context.request.put(`${url}/v1/customers/cus-canary`, {
    headers: { authorization: `Bearer ${admin}` },
    data: { canary: true, fields: { full_name: 'Cora Nary', email: 'cora@example.org', balance_usd: 250000 } },
  });
  check(canary.ok(), `a canary customer is planted (${canary.status()})`);
  const touched = await context.request.get(`${url}/v1/customers/cus-canary`, { headers: { authorization: `Bearer ${other}` } });
  check(touched.status() === 403, `the canary touch is refused (${touched.status()})`);

  // The analyst: the board, the alert explained, dismissed with a reason.
  const analystContext = await browser.newContext({ viewport: { width: 1200, height: 900 } });
  const board = await analystContext.newPage();
  await board.goto(`${url}/console/login`);
  await board.fill('input[name=token]', analyst);
  await board.click('button[type=submit]');
  await board.waitForURL(`${url}/console/`);
  const alertRow = board.locator('tr[data-alert]').first();
  check(await alertRow.count() === 1, 'the board lists the open alert');
  await board.screenshot({ path: join(out, 'analyst-board.png'), fullPage: true });

  // The analyst reinstates the agent the canary contained, from the board.
  const otherAgent = 'agt-lena'; // whose token `run` passes as OTHER_AGENT_TOKEN
  const reinstate = board.locator(`tr[data-agent="${otherAgent}"] form[action$="/reinstate"] button`);
  check(await reinstate.count() === 1, `the board offers to reinstate ${otherAgent}`);
  await reinstate.click();
  await board.waitForLoadState();
  const back = await context.request.get(`${url}/v1/customers/${customer}`, { headers: { authorization: `Bearer ${other}` } });
  check(back.status() !== 401 && await board.locator(`tr[data-agent="${otherAgent}"] form[action$="/reinstate"]`).count() === 0,
    `${otherAgent} is reinstated (${back.status()})`);

  await alertRow.locator('a').click();
  await board.waitForSelector('svg.chart');
  const observed = await board.locator('svg.chart rect[data-observed]').count();
  const explained = await board.locator('table.signals tr[data-signal]').count();
  check(observed > 0 && observed === explained, `the alert's signals are drawn against their baselines (${observed} bars, ${explained} rows)`);
  await board.screenshot({ path: join(out, 'analyst-alert.png'), fullPage: true });
  await board.fill('#dismiss-reason', 'planted by the console test');
  await board.click('form.decide[action$="/dismiss"] button');
  await board.waitForSelector('text=planted by the console test');
  check((await board.locator('h1').textContent()).includes('dismissed'), 'the alert is dismissed, with its reason');
  await board.screenshot({ path: join(out, 'analyst-dismissed.png'), fullPage: true });

  // The incident responder (the same analyst): open an incident on the agent, scope it, and
  // find the affected list under the watermark.
  const analystCode = await board.locator('[data-session-code]').getAttribute('data-session-code');
  await board.click('nav a[href="/console/incidents"]');
  await board.fill('#title', 'extortion email');
  await board.fill('#agents', agent);
  await board.click('form.open-incident button');
  await board.waitForSelector('form.scope');
  await board.click('form.scope button');
  await board.waitForSelector('section.affected');
  check(await board.locator(`section.affected tr[data-customer="${customer}"]`).count() === 1, `the scope lists ${customer}`);
  check(await board.locator('svg.chart rect[data-day]').count() > 0, 'the scope draws its days');
  await checkWatermarks(board, 'scope', 'ana-mira', analystCode);
  await board.screenshot({ path: join(out, 'incident-scope.png'), fullPage: true });
  const download = await board.context().request.get(board.url().replace(/\/scope$/, '') + '/affected.csv');
  check(download.ok() && (await download.text()).includes(`${customer},`), 'the affected list downloads as CSV');
  const incidentUrl = board.url().replace(/\/scope$/, '');
  // Protection applied from the page, and how it stands; a leaked sample chosen as a file.
  await board.click('form.protect-apply button');
  await board.waitForSelector('p.step');
  check((await board.locator('p.step').textContent()).startsWith('Protection applied for'), 'protection is applied from the incident page');
  check(await board.locator('section.protection tr[data-action]').count() > 0, 'the page lists the protective actions recorded');
  await board.setInputFiles('#sample-file', { name: 'leaked.csv', mimeType: 'text/csv', buffer: Buffer.from(`account_id\n${customer}\n`) });
  await board.waitForFunction(() => document.getElementById('sample').value.includes('account_id'));
  await board.click('form.attribute button');
  await board.waitForSelector('p.verdict');
  check(await board.locator(`tr[data-agent="${agent}"]`).count() === 1, `a sample file attributes: ${await board.locator('p.verdict').textContent()}`);
  await board.screenshot({ path: join(out, 'incident-attributed.png'), fullPage: true });
  const report = await board.context().request.get(`${incidentUrl}/report`);
  const reportText = await report.text();
  check(report.ok() && reportText.includes('extortion email') && (report.headers()['content-disposition'] || '').includes('attachment'),
    `the regulator report downloads (${report.status()})`);

  // The customer: who viewed my data, under a watermark naming them; a receipt verified in the
  // browser; a tampered receipt refused; a browser without Ed25519 gets the server's check.
  const customerContext = await browser.newContext({ viewport: { width: 1200, height: 900 }, acceptDownloads: true });
  const mine = await customerContext.newPage();
  const mineBlocked = [];
  mine.on('console', (message) => { if (/Content Security Policy/.test(message.text())) mineBlocked.push(message.text()); });
  await mine.goto(`${url}/console/login`);
  await mine.fill('input[name=token]', customerToken);
  await mine.click('button[type=submit]');
  await mine.waitForURL(`${url}/console/me`);
  const customerCode = await mine.locator('[data-session-code]').getAttribute('data-session-code');
  const revealRow = mine.locator('tr[data-entry]', { hasText: `Saw your ${field}` }).first();
  check(await revealRow.count() === 1, `the customer sees the reveal of their ${field}`);
  check((await revealRow.textContent()).includes('team'), 'the access names a team and a site');
  check(!(await mine.content()).includes(value), 'no value of theirs is on the page');
  await checkWatermarks(mine, 'customer', `customer:${customer}`, customerCode);
  const entryIndex = await revealRow.getAttribute('data-entry');
  await revealRow.locator('button.verify-receipt').click();
  const answer = revealRow.locator('output.receipt-answer');
  await mine.waitForFunction((index) => document.querySelector(`output.receipt-answer[data-index="${index}"]`).dataset.verified !== undefined, entryIndex);
  check(await answer.getAttribute('data-verified') === 'true' && await answer.getAttribute('data-checked-by') === 'browser',
    `the receipt verifies in the browser: "${await answer.textContent()}"`);
  await mine.screenshot({ path: join(out, 'customer.png'), fullPage: true });
  const file = await (await customerContext.request.get(`${url}/console/me/receipts/${entryIndex}`)).text();
  const tampered = JSON.parse(file);
  tampered.entry = Buffer.from(Buffer.from(tampered.entry, 'base64').toString('utf8').replace(`"${field}"`, '"phone"')).toString('base64');
  // The log grows past the kept receipt's checkpoint (a change, then the next checkpoint), so
  // checking it needs the consistency proof from its checkpoint to the public one.
  const grown = await context.request.put(`${url}/v1/customers/cus-later`, {
    headers: { authorization: `Bearer ${admin}` }, data: { fields: { full_name: 'Lee Later', email: 'lee@example.org' } },
  });
  check(grown.ok(), `the log grows (${grown.status()})`);
  await mine.waitForTimeout(1500);
  for (const [what, text, wanted] of [['a tampered receipt', JSON.stringify(tampered), 'false'], ['the kept receipt', file, 'true']]) {
    await mine.setInputFiles('#receipt-file', { name: `cordon-receipt-${entryIndex}.json`, mimeType: 'application/json', buffer: Buffer.from(text) });
    const fileAnswer = mine.locator('#receipt-file-answer');
    await mine.waitForFunction((want) => document.querySelector('#receipt-file-answer').dataset.verified === want, wanted);
    check(await fileAnswer.getAttribute('data-verified') === wanted, `${what} ${wanted === 'true' ? 'verifies' : 'does not verify'}: "${await fileAnswer.textContent()}"`);
  }
  const [, kept, now] = ((await mine.locator('#receipt-file-answer').textContent()).match(/checkpoint of (\d+) entries, consistent with today's public checkpoint of (\d+)/) || []);
  check(Number(now) > Number(kept), `the kept receipt's checkpoint (${kept}) is proven a prefix of the public one (${now})`);
  check(mineBlocked.length === 0, `the customer's page breaks none of its own policy (${mineBlocked.length} reports)`);

  // A browser whose WebCrypto has no Ed25519: the page asks the server, and says so.
  const oldBrowser = await browser.newContext();
  await oldBrowser.addInitScript(() => {
    const importKey = crypto.subtle.importKey.bind(crypto.subtle);
    crypto.subtle.importKey = (format, key, algorithm, ...rest) =>
      (algorithm?.name ?? algorithm) === 'Ed25519' ? Promise.reject(new DOMException('unsupported', 'NotSupportedError')) : importKey(format, key, algorithm, ...rest);
  });
  await oldBrowser.addCookies(await customerContext.cookies());
  const old = await oldBrowser.newPage();
  await old.goto(`${url}/console/me`);
  const oldRow = old.locator(`tr[data-entry="${entryIndex}"]`);
  await oldRow.locator('button.verify-receipt').click();
  await old.waitForFunction((index) => document.querySelector(`output.receipt-answer[data-index="${index}"]`).dataset.verified !== undefined, entryIndex);
  const oldAnswer = oldRow.locator('output.receipt-answer');
  check(await oldAnswer.getAttribute('data-verified') === 'true' && await oldAnswer.getAttribute('data-checked-by') === 'server',
    `without Ed25519 the server checks the receipt: "${await oldAnswer.textContent()}"`);
} finally {
  await browser.close();
}
if (failures > 0) {
  console.error(`${failures} console checks failed`);
  process.exit(1);
}
console.log('every console check passed; screenshots in ' + out);
