//! The console through its routes, as a browser would use them: sign-in with a token and the
//! form's nonce, a session cookie, the agent's queue, card, reveal and verify, each region of
//! customer data under a watermark naming the agent and the session, forms refused without
//! the session's CSRF token, and the headers every page carries.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use cordon_server::app;
use http_body_util::BodyExt as _;
use tower::ServiceExt as _;

use crate::support::Harness;

/// One browser: its cookies, kept between requests.
struct Browser {
    cookies: Vec<(String, String)>,
}

struct Page {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: String,
}

impl Page {
    fn location(&self) -> &str {
        self.headers.get(header::LOCATION).and_then(|value| value.to_str().ok()).unwrap_or("")
    }

    /// The value of hidden field `name` in the page's first form that has it.
    fn hidden(&self, name: &str) -> String {
        let marker = format!("name=\"{name}\" value=\"");
        let start = self.body.find(&marker).map(|at| at + marker.len()).unwrap_or_else(|| panic!("no {name}"));
        self.body[start..].split('"').next().unwrap().to_string()
    }
}

impl Browser {
    fn new() -> Browser {
        Browser { cookies: Vec::new() }
    }

    async fn send(&mut self, harness: &Harness, method: Method, path: &str, form: Option<&str>) -> Page {
        let mut request = Request::builder().method(method).uri(path);
        if !self.cookies.is_empty() {
            let cookies: Vec<String> = self.cookies.iter().map(|(name, value)| format!("{name}={value}")).collect();
            request = request.header(header::COOKIE, cookies.join("; "));
        }
        if form.is_some() {
            request = request.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        }
        let request = request.body(form.map(|form| Body::from(form.to_string())).unwrap_or_else(Body::empty)).unwrap();
        let response = app(Arc::clone(&harness.state)).oneshot(request).await.unwrap();
        for set in response.headers().get_all(header::SET_COOKIE) {
            let set = set.to_str().unwrap();
            let (pair, attributes) = set.split_once(';').unwrap_or((set, ""));
            let (name, value) = pair.split_once('=').unwrap();
            self.cookies.retain(|(known, _)| known != name);
            if !attributes.contains("Max-Age=0") {
                self.cookies.push((name.to_string(), value.to_string()));
            }
        }
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        Page { status, headers, body: String::from_utf8_lossy(&bytes).into_owned() }
    }

    async fn get(&mut self, harness: &Harness, path: &str) -> Page {
        self.send(harness, Method::GET, path, None).await
    }

    async fn post(&mut self, harness: &Harness, path: &str, form: &str) -> Page {
        self.send(harness, Method::POST, path, Some(form)).await
    }
}

fn encoded(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => char::from(byte).to_string(),
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

/// The text inside every `data-watermark` region of a page.
fn watermarked_regions(body: &str) -> Vec<&str> {
    body.match_indices("data-watermark=")
        .map(|(at, _)| {
            let rest = &body[at..];
            &rest[..rest.find("</section>").unwrap()]
        })
        .collect()
}

#[tokio::test]
async fn an_agent_signs_in_reveals_under_a_watermark_and_signs_out() {
    let harness = Harness::new();
    harness.put_assigned_ticket().await;
    let token = harness.agent_token("agt-1");
    let mut browser = Browser::new();

    // Not signed in: sent to the sign-in page, whose form has a `token` field.
    let page = browser.get(&harness, "/console/").await;
    assert_eq!((page.status, page.location()), (StatusCode::SEE_OTHER, "/console/login"));
    let login = browser.get(&harness, "/console/login").await;
    assert_eq!(login.status, StatusCode::OK);
    assert!(login.body.contains("name=\"token\""), "{}", login.body);
    for (name, value) in [
        ("content-security-policy", "default-src 'self'; frame-ancestors 'none'"),
        ("referrer-policy", "no-referrer"),
        ("cache-control", "no-store"),
    ] {
        let header = login.headers.get(name).and_then(|value| value.to_str().ok()).unwrap_or("");
        assert!(header.contains(value), "{name}: {header}");
    }

    // A sign-in posted from elsewhere (no nonce cookie) is refused; a wrong token says why.
    let nonce = login.hidden("nonce");
    let mut stranger = Browser::new();
    let page = stranger.post(&harness, "/console/login", &format!("token={}&nonce={nonce}", encoded(&token))).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN, "{}", page.body);
    let page = browser.post(&harness, "/console/login", &format!("token=nonsense&nonce={nonce}")).await;
    assert_eq!(page.status, StatusCode::UNAUTHORIZED, "{}", page.body);
    assert!(page.body.contains("malformed"), "{}", page.body);
    let nonce = page.hidden("nonce");
    let size = harness.state.gateway.audit().size();
    let page = browser.post(&harness, "/console/login", &format!("token={}&nonce={nonce}", encoded(&token))).await;
    assert_eq!((page.status, page.location()), (StatusCode::SEE_OTHER, "/console/"), "{}", page.body);
    let cookie = page.headers.get(header::SET_COOKIE).unwrap().to_str().unwrap().to_string();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    assert_eq!(harness.state.gateway.audit().size(), size + 1, "the sign-in is one ledger entry");

    // The queue, then the masked card under the watermark.
    let queue = browser.get(&harness, "/console/").await;
    assert_eq!(queue.status, StatusCode::OK, "{}", queue.body);
    assert!(queue.body.contains("/console/customers/cus-1?ticket=t-1"), "{}", queue.body);
    let code = queue.body.split("data-session-code=\"").nth(1).unwrap().split('"').next().unwrap().to_string();
    assert!(cordon_gateway::is_session_code(&code), "{code}");
    let card = browser.get(&harness, "/console/customers/cus-1?ticket=t-1").await;
    assert_eq!(card.status, StatusCode::OK, "{}", card.body);
    assert_eq!(card.headers.get("cache-control").unwrap(), "no-store");
    let regions = watermarked_regions(&card.body);
    assert_eq!(regions.len(), 1, "{}", card.body);
    assert!(regions[0].starts_with(&format!("data-watermark=\"agt-1 {code}\"")), "{}", regions[0]);
    assert!(regions[0].contains("class=\"watermark\"") && regions[0].contains(&format!("agt-1 · {code} · ")));
    assert!(!card.body.contains("nina@example.org"), "the card is masked");

    // A reveal without the session's CSRF token is refused, and reveals nothing.
    let size = harness.state.gateway.audit().size();
    let forged = browser.post(&harness, "/console/customers/cus-1/reveal", "ticket=t-1&field=email&reason=x").await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert!(!forged.body.contains("nina@example.org"));
    assert_eq!(harness.state.gateway.audit().size(), size, "a forged form reaches no gateway call");

    // With it: the email, under the watermark, recorded with the session's code.
    let csrf = card.hidden("csrf");
    let revealed = browser
        .post(
            &harness,
            "/console/customers/cus-1/reveal",
            &format!("csrf={csrf}&ticket=t-1&field=email&reason=callback"),
        )
        .await;
    assert_eq!(revealed.status, StatusCode::OK, "{}", revealed.body);
    let regions = watermarked_regions(&revealed.body);
    let shown: Vec<&&str> = regions.iter().filter(|region| region.contains("nina@example.org")).collect();
    assert_eq!(shown.len(), 1, "the value is inside a watermarked region: {}", revealed.body);
    let body_outside: String = {
        let mut rest = revealed.body.clone();
        for region in &regions {
            rest = rest.replace(region, "");
        }
        rest
    };
    assert!(!body_outside.contains("nina@example.org"), "no value outside the watermark");
    let (_, report) = harness
        .call(
            Method::GET,
            &format!("/v1/sessions/{code}"),
            Some(&harness.state.gateway.issue_role_token(cordon_gateway::TokenRole::Analyst).unwrap()),
            None,
        )
        .await;
    assert_eq!(report["subject"], "agt-1", "{report}");
    assert!(report["accesses"].as_u64().unwrap() >= 3, "card, reveal, card: {report}");

    // A field the ticket does not need is refused in words, on the card.
    let refused = browser
        .post(
            &harness,
            "/console/customers/cus-1/reveal",
            &format!("csrf={csrf}&ticket=t-1&field=tax_id&reason=curious"),
        )
        .await;
    assert_eq!(refused.status, StatusCode::OK, "{}", refused.body);
    assert!(refused.body.contains("class=\"refusal\""), "{}", refused.body);
    assert!(!refused.body.contains("IE9876543Q"));

    // Verify without reveal says match or not, under the watermark.
    let verified = browser
        .post(
            &harness,
            "/console/customers/cus-1/verify",
            &format!("csrf={csrf}&ticket=t-1&field=email&value=nina%40example.org"),
        )
        .await;
    assert_eq!(verified.status, StatusCode::OK, "{}", verified.body);
    assert!(
        watermarked_regions(&verified.body).iter().any(|region| region.contains("<b>matches</b>")),
        "{}",
        verified.body
    );

    // Sign-out ends the session; its cookie, copied before, no longer opens anything.
    let mut thief = Browser { cookies: browser.cookies.clone() };
    let page = browser.post(&harness, "/console/logout", &format!("csrf={csrf}")).await;
    assert_eq!((page.status, page.location()), (StatusCode::SEE_OTHER, "/console/login"));
    let page = browser.get(&harness, "/console/customers/cus-1?ticket=t-1").await;
    assert_eq!((page.status, page.location()), (StatusCode::SEE_OTHER, "/console/login"));
    let size = harness.state.gateway.audit().size();
    let page = thief.get(&harness, "/console/customers/cus-1?ticket=t-1").await;
    assert!(page.body.contains("name=\"token\"") && !page.body.contains("data-watermark"), "{}", page.body);
    assert_eq!(harness.state.gateway.audit().size(), size, "an ended session reaches no customer");
}

/// Signs `token` in through the console's form; the browser then holds the session.
async fn sign_in(harness: &Harness, browser: &mut Browser, token: &str) -> Page {
    let login = browser.get(harness, "/console/login").await;
    let nonce = login.hidden("nonce");
    let page = browser.post(harness, "/console/login", &format!("token={}&nonce={nonce}", encoded(token))).await;
    assert_eq!((page.status, page.location()), (StatusCode::SEE_OTHER, "/console/"), "{}", page.body);
    browser.get(harness, "/console/").await
}

#[tokio::test]
async fn an_analyst_sees_the_alert_explained_dismisses_it_and_reinstates_the_agent() {
    let harness = Harness::new();
    harness.put_assigned_ticket().await;
    harness.put_canary("cus-999", crate::support::customer_fields("Cora Nary", "cora@example.org", 250_000.0)).await;
    harness
        .put_agent(
            "ana-1",
            serde_json::json!({"name": "Q", "team": "security", "site": "us-sf", "employer": "staff", "role": "analyst"}),
        )
        .await;
    // A peer (same team and site) works two tickets' customers today.
    harness
        .put_agent("agt-2", serde_json::json!({"name": "B", "team": "l1-chat", "site": "us-sf", "employer": "staff"}))
        .await;
    for (customer, ticket) in [("cus-2", "t-2"), ("cus-3", "t-3")] {
        harness.put_customer(customer, crate::support::customer_fields("Peer Work", "peer@example.org", 5.0)).await;
        harness
            .admin(
                Method::PUT,
                &format!("/v1/tickets/{ticket}"),
                serde_json::json!({"requester": customer, "category": "general_inquiry", "assignee": "agt-2"}),
            )
            .await;
        let (status, _) = harness
            .call(
                Method::GET,
                &format!("/v1/customers/{customer}?ticket={ticket}"),
                Some(&harness.agent_token("agt-2")),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    // The agent opens its ticket's customer, then touches the canary: refused, an alert,
    // suspended.
    let agent = harness.agent_token("agt-1");
    let (status, _) = harness.call(Method::GET, "/v1/customers/cus-1?ticket=t-1", Some(&agent), None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = harness.call(Method::GET, "/v1/customers/cus-999", Some(&agent), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let mut analyst = Browser::new();
    let board = sign_in(&harness, &mut analyst, &harness.agent_token("ana-1")).await;
    assert_eq!(board.status, StatusCode::OK, "{}", board.body);
    let id: u64 = board.body.split("data-alert=\"").nth(1).unwrap().split('"').next().unwrap().parse().unwrap();
    assert!(
        board.body.contains("data-agent=\"agt-1\"") && board.body.contains("/console/agents/agt-1/reinstate"),
        "{}",
        board.body
    );
    assert!(!board.body.contains("data-watermark"), "the board shows no customer's data");

    // The alert, explained: each signal against its baseline, as bars and as a table.
    let shown = analyst.get(&harness, &format!("/console/alerts/{id}")).await;
    assert_eq!(shown.status, StatusCode::OK, "{}", shown.body);
    assert!(shown.body.contains("data-signal=\"canary\"") && shown.body.contains("data-observed=\""), "{}", shown.body);
    // Beside it, fourteen days of the agent's distinct customers against its peers' median:
    // today it was shown one (the ticket's customer; the canary was refused, so not shown),
    // its one peer two.
    assert_eq!(shown.body.matches("data-customers=\"").count(), 14, "{}", shown.body);
    assert!(shown.body.contains("data-customers=\"1\" data-peer-median=\"2.0\""), "{}", shown.body);
    assert!(shown.body.contains("its 1 peer (l1-chat at us-sf)"), "{}", shown.body);
    let csrf = shown.hidden("csrf");

    // The suspended agent, with the token it held before, gets no console session.
    let mut insider = Browser::new();
    let login = insider.get(&harness, "/console/login").await;
    let refused = insider
        .post(&harness, "/console/login", &format!("token={}&nonce={}", encoded(&agent), login.hidden("nonce")))
        .await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{}", refused.body);
    assert!(refused.body.contains("suspended"), "{}", refused.body);

    // Without the CSRF token, nothing; with it, dismissed, and the page says so.
    let size = harness.state.gateway.audit().size();
    let forged = analyst.post(&harness, &format!("/console/alerts/{id}/dismiss"), "reason=fine").await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert_eq!(harness.state.gateway.audit().size(), size);
    let dismissed = analyst
        .post(&harness, &format!("/console/alerts/{id}/dismiss"), &format!("csrf={csrf}&reason=drill%20canary"))
        .await;
    assert_eq!(
        (dismissed.status, dismissed.location()),
        (StatusCode::SEE_OTHER, format!("/console/alerts/{id}").as_str())
    );
    let after = analyst.get(&harness, &format!("/console/alerts/{id}")).await;
    assert!(after.body.contains("dismissed") && after.body.contains("drill canary"), "{}", after.body);
    assert!(!after.body.contains("/dismiss\""), "a decided alert offers no decision: {}", after.body);

    // Reinstating from the board: the agent works again.
    let reinstated = analyst.post(&harness, "/console/agents/agt-1/reinstate", &format!("csrf={csrf}")).await;
    assert_eq!((reinstated.status, reinstated.location()), (StatusCode::SEE_OTHER, "/console/"), "{}", reinstated.body);
    assert_eq!(harness.state.gateway.agent("agt-1").unwrap().unwrap().status.name(), "active");
}

/// One-click sign-in exists only on a demo's server, for the identities the demo named.
#[tokio::test]
async fn one_click_sign_in_is_only_on_a_demo_server() {
    let harness = Harness::new();
    let mut browser = Browser::new();
    let page = browser.get(&harness, "/console/demo/analyst").await;
    assert_eq!(page.status, StatusCode::NOT_FOUND, "{}", page.body);
    assert!(browser.cookies.iter().all(|(name, _)| name != "cordon_session"));

    let dir = tempfile::tempdir().unwrap();
    let data = cordon_gateway::DataDir::new(&dir.path().join("data"));
    data.init(None, Arc::new(cordon_gateway::SystemClock)).unwrap();
    let gateway = data.open(Arc::new(cordon_gateway::SystemClock)).unwrap();
    let link = |identity, landing: &str| cordon_server::DemoSignIn { identity, landing: landing.to_string() };
    let links = [
        (
            "analyst".to_string(),
            link(cordon_server::DemoIdentity::Role(cordon_gateway::TokenRole::Analyst), "/console/"),
        ),
        (
            "responder".to_string(),
            link(cordon_server::DemoIdentity::Role(cordon_gateway::TokenRole::Analyst), "/console/incidents"),
        ),
        ("customer".to_string(), link(cordon_server::DemoIdentity::Customer("cus-7".into()), "/console/me")),
    ];
    let state = Arc::new(cordon_server::AppState::new(gateway).with_demo_sign_in(links.into_iter().collect()));
    let demo = Harness { state, ..harness };
    let page = browser.get(&demo, "/console/demo/analyst").await;
    assert_eq!((page.status, page.location()), (StatusCode::SEE_OTHER, "/console/"), "{}", page.body);
    let board = browser.get(&demo, "/console/").await;
    assert!(board.status == StatusCode::OK && board.body.contains("Risk"), "{}", board.body);
    let page = Browser::new().get(&demo, "/console/demo/responder").await;
    assert_eq!((page.status, page.location()), (StatusCode::SEE_OTHER, "/console/incidents"), "{}", page.body);
    // A customer link for a customer not on file signs no one in.
    let page = Browser::new().get(&demo, "/console/demo/customer").await;
    assert_eq!(page.status, StatusCode::NOT_FOUND, "{}", page.body);
    let page = Browser::new().get(&demo, "/console/demo/agent").await;
    assert_eq!(page.status, StatusCode::NOT_FOUND, "no identity the demo did not name");
}

#[tokio::test]
async fn a_responder_opens_an_incident_scopes_it_attributes_a_sample_and_downloads_the_report() {
    let harness = Harness::new();
    harness.put_assigned_ticket().await;
    let agent = harness.agent_token("agt-1");
    let (status, answer) = harness
        .call(
            Method::POST,
            "/v1/customers/cus-1/reveal",
            Some(&agent),
            Some(serde_json::json!({"fields": ["email"], "ticket": "t-1", "reason": "callback"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let analyst = harness.state.gateway.issue_role_token(cordon_gateway::TokenRole::Analyst).unwrap();
    let mut browser = Browser::new();
    sign_in(&harness, &mut browser, &analyst).await;
    let list = browser.get(&harness, "/console/incidents").await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.body);
    let csrf = list.hidden("csrf");

    // Opening: a form post, then the incident's page.
    let size = harness.state.gateway.audit().size();
    let opened = browser
        .post(
            &harness,
            "/console/incidents",
            &format!("csrf={csrf}&title=extortion%20email&agents=agt-1&since=&until="),
        )
        .await;
    assert_eq!(opened.status, StatusCode::SEE_OTHER, "{}", opened.body);
    let path = opened.location().to_string();
    assert!(path.starts_with("/console/incidents/inc-"), "{path}");
    assert_eq!(harness.state.gateway.audit().size(), size + 1, "the opening is one ledger entry");
    let shown = browser.get(&harness, &path).await;
    assert!(shown.body.contains("extortion email") && shown.body.contains("agt-1"), "{}", shown.body);

    // Scope: figures, the per-day chart, and the affected list under the watermark.
    let scoped = browser.post(&harness, &format!("{path}/scope"), &format!("csrf={csrf}")).await;
    assert_eq!(scoped.status, StatusCode::OK, "{}", scoped.body);
    assert!(scoped.body.contains("data-day=\"") && scoped.body.contains("data-new-customers=\"1\""), "{}", scoped.body);
    let regions = watermarked_regions(&scoped.body);
    assert!(regions.iter().any(|region| region.contains("data-customer=\"cus-1\"")), "{}", scoped.body);
    assert!(!scoped.body.contains("nina@example.org"), "identifiers and field names only");
    let forged = browser.post(&harness, &format!("{path}/scope"), "csrf=wrong").await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    let csv = browser.get(&harness, &format!("{path}/affected.csv")).await;
    assert_eq!(csv.headers.get(header::CONTENT_TYPE).unwrap(), "text/csv; charset=utf-8");
    assert!(csv.body.lines().nth(1).is_some_and(|line| line.starts_with("cus-1,")), "{}", csv.body);

    // Attribution of a pasted sample: the verdict and the agents, as the API gives them.
    let attributed = browser
        .post(&harness, &format!("{path}/attribute"), &format!("csrf={csrf}&sample=account_id%0Acus-1%0A"))
        .await;
    assert_eq!(attributed.status, StatusCode::OK, "{}", attributed.body);
    assert!(
        attributed.body.contains("class=\"verdict\"") && attributed.body.contains("data-agent=\"agt-1\""),
        "{}",
        attributed.body
    );
    let bad = browser.post(&harness, &format!("{path}/attribute"), &format!("csrf={csrf}&sample=")).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.body);

    // Protection: proposed records nothing; applied records each action for the customer and
    // queues it for the exchange's systems; the page says how they stand.
    assert!(shown.body.contains("No protective action is recorded yet."), "{}", shown.body);
    let size = harness.state.gateway.audit().size();
    let proposed = browser.post(&harness, &format!("{path}/protect"), &format!("csrf={csrf}&apply=no")).await;
    assert!(
        proposed.body.contains("Proposed, nothing recorded yet") && proposed.body.contains("for 1 customers"),
        "{}",
        proposed.body
    );
    assert!(proposed.body.contains("No protective action is recorded yet."), "{}", proposed.body);
    let applied = browser.post(&harness, &format!("{path}/protect"), &format!("csrf={csrf}&apply=yes")).await;
    assert!(applied.body.contains("Protection applied for 1 customers"), "{}", applied.body);
    for action in ["hold new address withdrawals", "step up high risk withdrawals", "scam warning banner"] {
        let row = format!("<tr data-action=\"{action}\"><td>{action}</td><td>1</td></tr>");
        assert!(applied.body.contains(&row), "a revealed email gets {action}: {}", applied.body);
    }
    assert!(applied.body.contains("data-queued=\"") && !applied.body.contains("data-queued=\"0\""), "{}", applied.body);
    assert!(harness.state.gateway.audit().size() > size, "applying is on record");
    let unknown = browser.post(&harness, &format!("{path}/protect"), &format!("csrf={csrf}&apply=maybe")).await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST);
    // Notices need a contact point: refused in words without one, and the button says why.
    assert!(applied.body.contains("Notices need a contact point"), "{}", applied.body);
    let refused = browser.post(&harness, &format!("{path}/notify"), &format!("csrf={csrf}")).await;
    assert!(refused.status.is_client_error() && refused.body.contains("contact"), "{}", refused.body);

    // The report, a download (and a ledger entry); without a contact point it is a draft.
    let size = harness.state.gateway.audit().size();
    let report = browser.get(&harness, &format!("{path}/report")).await;
    assert_eq!(report.status, StatusCode::OK, "{}", report.body);
    assert!(report.headers.get(header::CONTENT_DISPOSITION).unwrap().to_str().unwrap().starts_with("attachment"));
    assert!(report.body.contains("DRAFT"), "{}", report.body);
    assert_eq!(harness.state.gateway.audit().size(), size + 1);
}

/// With a contact point set, the responder writes the customers' notices from the incident's
/// page and the page counts them.
#[tokio::test]
async fn a_responder_writes_the_notices_and_the_page_counts_them() {
    let harness = Harness::with_config(|config| config.incident.contact = "dpo@exchange.example".into());
    harness.put_assigned_ticket().await;
    let (status, _) = harness
        .call(
            Method::POST,
            "/v1/customers/cus-1/reveal",
            Some(&harness.agent_token("agt-1")),
            Some(serde_json::json!({"fields": ["email"], "ticket": "t-1", "reason": "callback"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let analyst = harness.state.gateway.issue_role_token(cordon_gateway::TokenRole::Analyst).unwrap();
    let mut browser = Browser::new();
    sign_in(&harness, &mut browser, &analyst).await;
    let csrf = browser.get(&harness, "/console/incidents").await.hidden("csrf");
    let opened = browser
        .post(&harness, "/console/incidents", &format!("csrf={csrf}&title=leak&agents=agt-1&since=&until="))
        .await;
    let path = opened.location().to_string();
    let shown = browser.get(&harness, &path).await;
    assert!(
        shown.body.contains("No customer notices written yet.") && !shown.body.contains("Notices need"),
        "{}",
        shown.body
    );
    let written = browser.post(&harness, &format!("{path}/notify"), &format!("csrf={csrf}")).await;
    assert_eq!(written.status, StatusCode::OK, "{}", written.body);
    assert!(
        written.body.contains("1 customer notices written") && written.body.contains("Customer notices written: 1."),
        "{}",
        written.body
    );
    assert!(!written.body.contains("nina@example.org"), "no value on the page");
}

#[tokio::test]
async fn an_agent_asks_for_break_glass_and_an_analyst_approves_it_from_the_queue() {
    let harness = Harness::new();
    harness.put_assigned_ticket().await;
    harness.put_customer("cus-2", crate::support::customer_fields("Ada Byron", "ada@example.org", 20.0)).await;
    harness
        .put_agent(
            "ana-1",
            serde_json::json!({"name": "Q", "team": "security", "site": "us-sf", "employer": "staff", "role": "analyst"}),
        )
        .await;
    let mut agent = Browser::new();
    let queue = sign_in(&harness, &mut agent, &harness.agent_token("agt-1")).await;
    let agent_csrf = queue.hidden("csrf");
    let refused = agent.get(&harness, "/console/customers/cus-2").await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "no ticket, no card: {}", refused.body);
    let asked = agent
        .post(&harness, "/console/customers/cus-2/approval", &format!("csrf={agent_csrf}&kind=break_glass&ticket="))
        .await;
    assert_eq!(asked.status, StatusCode::OK, "{}", asked.body);
    assert!(asked.body.contains("Asked for break glass on cus-2"), "{}", asked.body);
    let forged = agent.post(&harness, "/console/customers/cus-2/approval", "kind=break_glass").await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);

    let mut analyst = Browser::new();
    let board = sign_in(&harness, &mut analyst, &harness.agent_token("ana-1")).await;
    let id = board.body.split("data-approval=\"").nth(1).unwrap().split('"').next().unwrap().to_string();
    assert!(board.body.contains("<td>agt-1</td><td>cus-2</td>"), "{}", board.body);
    let approved = analyst
        .post(
            &harness,
            &format!("/console/approvals/{id}/approve"),
            &format!("csrf={}&seconds=900", board.hidden("csrf")),
        )
        .await;
    assert_eq!((approved.status, approved.location()), (StatusCode::SEE_OTHER, "/console/"), "{}", approved.body);
    let board = analyst.get(&harness, "/console/").await;
    assert!(!board.body.contains(&format!("data-approval=\"{id}\"")), "an approved request leaves the queue");
    let card = agent.get(&harness, "/console/customers/cus-2").await;
    assert_eq!(card.status, StatusCode::OK, "approved, the card opens: {}", card.body);
    assert!(!watermarked_regions(&card.body).is_empty());
}

/// An insider with a valid session sends every console route the worst values it can: ids
/// huge, escaped or full of control characters, another agent's customer, forms of 60 KiB,
/// numbers out of range, a forged cookie. Each is answered (never a 5xx), nothing it sends is
/// echoed unescaped, and the server restarts on the same data directory, serves and verifies.
#[tokio::test]
async fn hostile_console_input_is_answered_and_the_directory_reopens() {
    let harness = Harness::new();
    harness.put_assigned_ticket().await;
    harness.put_customer("cus-2", crate::support::customer_fields("Ada Byron", "ada@example.org", 20.0)).await;
    let mut agent = Browser::new();
    let queue = sign_in(&harness, &mut agent, &harness.agent_token("agt-1")).await;
    let csrf = queue.hidden("csrf");
    let mut analyst = Browser::new();
    sign_in(
        &harness,
        &mut analyst,
        &harness.state.gateway.issue_role_token(cordon_gateway::TokenRole::Analyst).unwrap(),
    )
    .await;

    let huge = "x".repeat(10_000);
    let controls = encoded("\u{0}\u{1b}[31m<script>\r\n\u{7f}");
    let wide = encoded(&"é,\"".repeat(20_000)); // about 60 KiB once encoded
    let cases: Vec<(&str, Method, String, Option<String>)> = vec![
        ("a huge customer id", Method::GET, format!("/console/customers/{huge}"), None),
        (
            "control characters in a customer id",
            Method::GET,
            format!("/console/customers/{controls}?ticket={controls}"),
            None,
        ),
        ("another agent's customer", Method::GET, "/console/customers/cus-2?ticket=t-1".into(), None),
        ("a huge ticket", Method::GET, format!("/console/customers/cus-1?ticket={huge}"), None),
        (
            "reveal of an unknown, huge field with a control-character reason",
            Method::POST,
            "/console/customers/cus-1/reveal".into(),
            Some(format!("csrf={csrf}&ticket=t-1&field={huge}&field=email&reason={controls}")),
        ),
        (
            "a 60 KiB reason",
            Method::POST,
            "/console/customers/cus-1/reveal".into(),
            Some(format!("csrf={csrf}&ticket=t-1&field=email&reason={wide}")),
        ),
        (
            "search by nothing known",
            Method::POST,
            "/console/search".into(),
            Some(format!("csrf={csrf}&by=..%2F..&value={controls}")),
        ),
        (
            "search with a huge value",
            Method::POST,
            "/console/search".into(),
            Some(format!("csrf={csrf}&by=email&value={huge}")),
        ),
        (
            "verify of a huge field",
            Method::POST,
            "/console/customers/cus-1/verify".into(),
            Some(format!("csrf={csrf}&ticket=t-1&field={controls}&value={huge}")),
        ),
        (
            "approval of an unknown kind",
            Method::POST,
            "/console/customers/cus-2/approval".into(),
            Some(format!("csrf={csrf}&kind={controls}")),
        ),
        ("a form that is not a form", Method::POST, "/console/customers/cus-1/reveal".into(), Some("%ZZ&&==".into())),
        ("one-click sign-in with a huge label", Method::GET, format!("/console/demo/{huge}"), None),
    ];
    for (what, method, path, form) in cases {
        let page = agent.send(&harness, method, &path, form.as_deref()).await;
        assert!(!page.status.is_server_error(), "{what}: {}", page.status);
        assert!(!page.body.contains("<script>") && !page.body.contains('\u{1b}'), "{what}: echoed raw: {}", page.body);
    }
    let analyst_csrf = analyst.get(&harness, "/console/incidents").await.hidden("csrf");
    let cases: Vec<(&str, Method, String, Option<String>)> = vec![
        ("an alert id past u64", Method::GET, "/console/alerts/99999999999999999999999".into(), None),
        (
            "a negative alert id",
            Method::POST,
            "/console/alerts/-1/dismiss".into(),
            Some(format!("csrf={analyst_csrf}&reason=x")),
        ),
        (
            "an unknown alert",
            Method::POST,
            "/console/alerts/77/confirm".into(),
            Some(format!("csrf={analyst_csrf}&reason={controls}")),
        ),
        (
            "an approval for ever",
            Method::POST,
            format!("/console/approvals/{controls}/approve"),
            Some(format!("csrf={analyst_csrf}&seconds=999999999999999999999")),
        ),
        (
            "suspending a huge agent",
            Method::POST,
            format!("/console/agents/{huge}/suspend"),
            Some(format!("csrf={analyst_csrf}")),
        ),
        (
            "reinstating oneself",
            Method::POST,
            "/console/agents/role:analyst/reinstate".into(),
            Some(format!("csrf={analyst_csrf}")),
        ),
        (
            "an incident of control characters in year 99999999999",
            Method::POST,
            "/console/incidents".into(),
            Some(format!("csrf={analyst_csrf}&title={controls}&agents={huge}&since=99999999999-01-01&until=")),
        ),
        (
            "an incident with a 60 KiB title",
            Method::POST,
            "/console/incidents".into(),
            Some(format!("csrf={analyst_csrf}&title={wide}&agents=&since=&until=")),
        ),
        (
            "scope of an unknown incident",
            Method::POST,
            format!("/console/incidents/{controls}/scope"),
            Some(format!("csrf={analyst_csrf}")),
        ),
        (
            "a 60 KiB sample",
            Method::POST,
            "/console/incidents/inc-1/attribute".into(),
            Some(format!("csrf={analyst_csrf}&sample={wide}")),
        ),
        ("the CSV of a huge incident id", Method::GET, format!("/console/incidents/{huge}/affected.csv"), None),
        (
            "protection neither proposed nor applied",
            Method::POST,
            "/console/incidents/inc-1/protect".into(),
            Some(format!("csrf={analyst_csrf}&apply={controls}")),
        ),
        (
            "protection of an escaped incident id",
            Method::POST,
            "/console/incidents/..%2F..%2Fetc/protect".into(),
            Some(format!("csrf={analyst_csrf}&apply=yes")),
        ),
        (
            "notices for a huge incident id",
            Method::POST,
            format!("/console/incidents/{huge}/notify"),
            Some(format!("csrf={analyst_csrf}")),
        ),
        ("the report of an escaped id", Method::GET, "/console/incidents/..%2F..%2Fetc/report".into(), None),
        ("a session code of control characters", Method::GET, format!("/v1/sessions/{controls}"), None),
    ];
    for (what, method, path, form) in cases {
        let page = analyst.send(&harness, method, &path, form.as_deref()).await;
        assert!(!page.status.is_server_error(), "{what}: {}", page.status);
        assert!(!page.body.contains("<script>") && !page.body.contains('\u{1b}'), "{what}: echoed raw: {}", page.body);
    }
    // A customer's session: their own routes with hostile values, and the staff's routes.
    let mut customer = Browser::new();
    let token = harness.state.gateway.issue_customer_token("cus-1").unwrap();
    sign_in(&harness, &mut customer, &token).await;
    let customer_csrf = customer.get(&harness, "/console/me").await.hidden("csrf");
    let not_json = encoded("{\"format\":\"cordon-receipt/1\",\"index\":1e999,\"entry\":\"\u{1b}\"}");
    let cases: Vec<(&str, Method, String, Option<String>)> = vec![
        ("a page before no index", Method::GET, format!("/console/me?before={controls}"), None),
        ("a page before index 0", Method::GET, "/console/me?before=0".into(), None),
        ("a receipt past u64", Method::GET, "/console/me/receipts/99999999999999999999999".into(), None),
        ("a receipt of control characters", Method::GET, format!("/console/me/receipts/{controls}"), None),
        (
            "a check of a 60 KiB receipt",
            Method::POST,
            "/console/me/receipts/check".into(),
            Some(format!("csrf={customer_csrf}&receipt={wide}")),
        ),
        (
            "a check of a receipt with impossible numbers",
            Method::POST,
            "/console/me/receipts/check".into(),
            Some(format!("csrf={customer_csrf}&receipt={not_json}")),
        ),
        ("a consistency proof of huge sizes", Method::GET, format!("/console/ledger/consistency/{huge}/1"), None),
        ("a consistency proof backwards", Method::GET, "/console/ledger/consistency/9/2".into(), None),
        ("a consistency proof to u64::MAX", Method::GET, format!("/console/ledger/consistency/1/{}", u64::MAX), None),
        (
            "a staff search",
            Method::POST,
            "/console/search".into(),
            Some(format!("csrf={customer_csrf}&by=email&value=nina%40example.org")),
        ),
        ("a staff card", Method::GET, "/console/customers/cus-1?ticket=t-1".into(), None),
    ];
    for (what, method, path, form) in cases {
        let page = customer.send(&harness, method, &path, form.as_deref()).await;
        assert!(!page.status.is_server_error(), "{what}: {}", page.status);
        assert!(!page.body.contains("<script>") && !page.body.contains('\u{1b}'), "{what}: echoed raw: {}", page.body);
        assert!(!page.body.contains("Nina") && !page.body.contains("nina@"), "{what}: a value shown: {}", page.body);
    }
    // The service's customer-token call with the worst ids: refused in words, never a 5xx.
    let service = harness.state.gateway.issue_role_token(cordon_gateway::TokenRole::Service).unwrap();
    for id in [huge.as_str(), controls.as_str(), "..%2F..%2Fcus-1", "cus-404"] {
        let (status, answer) = harness
            .call(Method::POST, &format!("/v1/customers/{id}/token"), Some(&service), Some(serde_json::json!({})))
            .await;
        assert!(status.is_client_error(), "a customer token for `{id}`: {status} {answer}");
        assert!(!answer.to_string().contains('\u{1b}'), "echoed raw: {answer}");
    }
    // A forged cookie: a huge value, separators, another browser's name.
    let mut forger = Browser { cookies: vec![("cordon_session".into(), format!("{huge};cordon_session=a=b"))] };
    let page = forger.get(&harness, "/console/customers/cus-1?ticket=t-1").await;
    assert!(!page.status.is_server_error() && !page.body.contains("data-watermark"), "{}", page.status);
    harness.restart_and_verify().await;
}

/// The customer's page: who viewed my data (team and site, names only if allowed), what and
/// why, refused attempts included; receipts that verify under the log's key for what names this
/// customer alone, withheld (with the reason) for a search that also showed another customer,
/// refused for anyone else's entries; the server's check for browsers without Ed25519; and a
/// customer's token opens no staff door, in the API or the console.
#[tokio::test]
async fn a_customer_sees_who_viewed_their_data_and_takes_receipts_that_verify() {
    for show_names in [false, true] {
        let harness = Harness::with_config(|config| config.customer_view.show_agent_names = show_names);
        harness.put_assigned_ticket().await;
        harness
            .put_agent(
                "agt-1",
                serde_json::json!({"name": "Ada Lovelace", "team": "l1-chat", "site": "us-sf", "employer": "staff"}),
            )
            .await;
        let agent = harness.agent_token("agt-1");
        let call = |method: Method, path: &'static str, token: String, body: serde_json::Value| {
            let harness = &harness;
            async move { harness.call(method, path, Some(&token), Some(body)).await }
        };
        let search = serde_json::json!({"by": "email", "value": "nina@example.org"});
        let (status, _) = call(Method::POST, "/v1/search", agent.clone(), search.clone()).await;
        assert_eq!(status, StatusCode::OK);
        let (status, _) =
            call(Method::GET, "/v1/customers/cus-1?ticket=t-1", agent.clone(), serde_json::json!({})).await;
        assert_eq!(status, StatusCode::OK);
        let reveal = serde_json::json!({"ticket": "t-1", "fields": ["email"], "reason": "confirm contact"});
        let (status, revealed) = call(Method::POST, "/v1/customers/cus-1/reveal", agent.clone(), reveal).await;
        assert_eq!(status, StatusCode::OK, "{revealed}");
        let reveal_index = revealed["ledger_index"].as_u64().unwrap();
        let refused = serde_json::json!({"ticket": "t-1", "fields": ["bank_account"], "reason": "curious"});
        let (status, _) = call(Method::POST, "/v1/customers/cus-1/reveal", agent.clone(), refused).await;
        assert!(status.is_client_error(), "a reveal the ticket does not need is refused");
        // Another customer with the same email: the next search shows both.
        harness.put_customer("cus-2", crate::support::customer_fields("Nina Other", "nina@example.org", 5.0)).await;
        let (_, shared) = call(Method::POST, "/v1/search", agent.clone(), search).await;
        assert_eq!(shared["matches"].as_array().unwrap().len(), 2, "{shared}");
        let shared_index = harness.state.gateway.audit().size() - 1;
        let (_, other_card) = call(Method::GET, "/v1/customers/cus-2", agent.clone(), serde_json::json!({})).await;
        let other_index = other_card["ledger_index"].as_u64().unwrap_or(harness.state.gateway.audit().size() - 1);

        // The service role (the customer-facing app) asks for the customer's token: on record.
        let service = harness.state.gateway.issue_role_token(cordon_gateway::TokenRole::Service).unwrap();
        let (status, issued) =
            call(Method::POST, "/v1/customers/cus-1/token", service.clone(), serde_json::json!({})).await;
        assert_eq!(status, StatusCode::OK, "{issued}");
        let customer = issued["token"].as_str().unwrap().to_string();
        let entry = crate::support::entry_at(&harness, issued["ledger_index"].as_u64().unwrap());
        assert!(format!("{entry:?}").contains("token.customer"), "{entry:?}");
        for (why, method, path, token, wanted) in [
            (
                "an agent cannot mint customer tokens",
                Method::POST,
                "/v1/customers/cus-1/token",
                agent.clone(),
                StatusCode::FORBIDDEN,
            ),
            (
                "no token for a customer not on file",
                Method::POST,
                "/v1/customers/cus-9/token",
                service.clone(),
                StatusCode::NOT_FOUND,
            ),
            (
                "a customer's token reads no card",
                Method::GET,
                "/v1/customers/cus-1",
                customer.clone(),
                StatusCode::FORBIDDEN,
            ),
            ("nor searches", Method::POST, "/v1/search", customer.clone(), StatusCode::FORBIDDEN),
            (
                "nor reads the service's history",
                Method::GET,
                "/v1/customers/cus-1/access-history",
                customer.clone(),
                StatusCode::FORBIDDEN,
            ),
            ("nor alerts", Method::GET, "/v1/alerts", customer.clone(), StatusCode::FORBIDDEN),
            ("nor mints tokens", Method::POST, "/v1/customers/cus-2/token", customer.clone(), StatusCode::FORBIDDEN),
            // Refused before any lookup: nothing learnt of which agents exist or are suspended.
            ("nor learns of agents", Method::POST, "/v1/agents/agt-404/token", customer.clone(), StatusCode::FORBIDDEN),
            (
                "nor of agents' status",
                Method::POST,
                "/v1/agents/agt-404/suspend",
                customer.clone(),
                StatusCode::FORBIDDEN,
            ),
            ("an agent neither", Method::POST, "/v1/agents/agt-404/token", agent.clone(), StatusCode::FORBIDDEN),
        ] {
            let body = if method == Method::POST {
                serde_json::json!({"by": "email", "value": "nina@example.org"})
            } else {
                serde_json::json!({})
            };
            let body = if path.ends_with("/token") { serde_json::json!({}) } else { body };
            let (status, answer) = harness.call(method, path, Some(&token), Some(body)).await;
            assert_eq!(status, wanted, "{why}: {answer}");
        }

        // The customer signs in and lands on their own page, under a watermark naming them.
        let mut browser = Browser::new();
        let home = sign_in(&harness, &mut browser, &customer).await;
        assert_eq!((home.status, home.location()), (StatusCode::SEE_OTHER, "/console/me"));
        let page = browser.get(&harness, "/console/me").await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        let regions = watermarked_regions(&page.body);
        assert_eq!(regions.len(), 1, "{}", page.body);
        assert!(regions[0].contains("data-watermark=\"customer:cus-1 "), "{}", regions[0]);
        for shown in [
            "l1-chat team, us-sf",
            "Opened your record, with every detail masked",
            "Saw your email",
            "Your support request about general inquiry",
            "Asked to see your bank account and was refused",
            "Your masked name was the result of a search",
            "Your masked name was among 2 search results",
            "not given: this search showed 1 other customers too",
        ] {
            assert!(page.body.contains(shown), "the page says {shown:?}: {}", page.body);
        }
        assert_eq!(page.body.contains("Ada Lovelace"), show_names, "names only where cordon.toml allows");
        assert!(!page.body.contains("nina@example.org") && !page.body.contains("Nina"), "no value on the page");
        assert!(page.body.contains(&format!("/console/me/receipts/{reveal_index}")));
        assert!(!page.body.contains(&format!("/console/me/receipts/{shared_index}\"")));

        // The reveal's receipt verifies under the log's key, and its entry is that reveal.
        let file = browser.get(&harness, &format!("/console/me/receipts/{reveal_index}")).await;
        assert_eq!(file.status, StatusCode::OK, "{}", file.body);
        assert!(file.headers[header::CONTENT_DISPOSITION].to_str().unwrap().contains("attachment"));
        let receipt = cordon_gateway::CustomerReceipt::parse(&file.body).unwrap();
        let verifier = cordon_ledger::Verifier::parse(&harness.state.gateway.audit().verifier_key()).unwrap();
        let entry = receipt.entry_bytes().unwrap();
        let (index, _) = cordon_ledger::verify_receipt(&receipt.proof, &entry, &verifier).unwrap();
        assert_eq!(index, reveal_index);
        let cordon_entry::Entry::Access(access) = cordon_entry::decode(&entry).unwrap() else { panic!() };
        assert_eq!((access.customer.as_deref(), access.action), (Some("cus-1"), cordon_entry::AccessAction::Reveal));

        // Receipts of entries that are not this customer's alone are not given.
        let past = harness.state.gateway.audit().size() + 10;
        for (path, wanted) in [
            (format!("/console/me/receipts/{shared_index}"), StatusCode::CONFLICT),
            (format!("/console/me/receipts/{other_index}"), StatusCode::NOT_FOUND),
            (format!("/console/me/receipts/{}", issued["ledger_index"]), StatusCode::NOT_FOUND),
            (format!("/console/me/receipts/{past}"), StatusCode::NOT_FOUND),
            ("/console/me/receipts/-1".to_string(), StatusCode::BAD_REQUEST),
            ("/console/me/receipts/99999999999999999999999".to_string(), StatusCode::BAD_REQUEST),
        ] {
            let page = browser.get(&harness, &path).await;
            assert_eq!(page.status, wanted, "{path}: {}", page.body);
            assert!(!page.body.contains("cus-2"), "{path} names no other customer: {}", page.body);
        }

        // The server's check, for a browser without Ed25519: a true receipt verifies, one with
        // its entry altered does not, and a check without the session's CSRF token is refused.
        let csrf = page.hidden("csrf");
        let checked = browser
            .post(&harness, "/console/me/receipts/check", &format!("csrf={csrf}&receipt={}", encoded(&file.body)))
            .await;
        let answer: serde_json::Value = serde_json::from_str(&checked.body).unwrap();
        assert_eq!(answer["verified"], true, "{answer}");
        let mut altered = receipt.clone();
        altered.entry = base64_of(&String::from_utf8(entry.clone()).unwrap().replace("\"email\"", "\"phone\""));
        let altered = serde_json::to_string(&altered).unwrap();
        let checked = browser
            .post(&harness, "/console/me/receipts/check", &format!("csrf={csrf}&receipt={}", encoded(&altered)))
            .await;
        let answer: serde_json::Value = serde_json::from_str(&checked.body).unwrap();
        assert_eq!(answer["verified"], false, "{answer}");
        assert!(answer["problem"].as_str().unwrap().contains("not in the log"), "{answer}");
        let forged =
            browser.post(&harness, "/console/me/receipts/check", &format!("receipt={}", encoded(&file.body))).await;
        assert_eq!(forged.status, StatusCode::FORBIDDEN);

        // The consistency proof the page's script asks for, and its bounds.
        let published = harness.state.gateway.audit().published_size();
        let proof = browser.get(&harness, &format!("/console/ledger/consistency/1/{published}")).await;
        assert_eq!(proof.status, StatusCode::OK, "{}", proof.body);
        for path in [
            format!("/console/ledger/consistency/0/{published}"),
            format!("/console/ledger/consistency/1/{}", published + 1),
        ] {
            assert_eq!(browser.get(&harness, &path).await.status, StatusCode::BAD_REQUEST, "{path}");
        }

        // No staff page opens for a customer; a customer's attempt at another customer's card
        // writes nothing into that customer's history (nor the ledger).
        let size = harness.state.gateway.audit().size();
        for path in ["/console/customers/cus-2", "/console/customers/cus-1", "/console/incidents", "/console/alerts/1"]
        {
            let page = browser.get(&harness, path).await;
            assert_eq!(page.status, StatusCode::FORBIDDEN, "{path}: {}", page.body);
        }
        let (status, _) = harness.call(Method::GET, "/v1/customers/cus-2", Some(&customer), None).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert_eq!(harness.state.gateway.audit().size(), size, "a customer's refused attempts are not entries");
        let page = browser.get(&harness, "/console/me").await;
        assert!(!page.body.contains("signed in as a customer"), "{}", page.body);
    }
}

fn base64_of(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(text)
}
