//! The owner's page on the admin listener (`GET /`), over real HTTP: signing in with the admin
//! token into a strict session cookie, no data without it, the CSRF token on every action, and the
//! page's policy and headers; the helpers of a signed-in owner. What the page shows and does is in
//! `owner_page_log`, the page in Chromium in `owner_browser`.

use docgate::http::owner::session::Keys;
use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};

use crate::admin::{TOKEN, call, json_of};
use crate::support::redis::RedisServer;
use crate::support::*;

pub(crate) const JANE: &str = "jane.owner@example.com";
pub(crate) const JOHN: &str = "john.other@example.org";

pub(crate) async fn owner_app(extra: &[(&str, &str)]) -> TestApp {
    let mut env = vec![("DOCGATE_ADMIN_TOKEN", TOKEN)];
    env.extend_from_slice(extra);
    TestApp::with(&env).await
}

/// [`owner_app`], embedded or on `redis`.
pub(crate) async fn owner_app_on(redis: Option<&RedisServer>) -> TestApp {
    let url = redis.map(RedisServer::url);
    let env: Vec<(&str, &str)> = url
        .iter()
        .map(|u| ("DOCGATE_REDIS_URL", u.as_str()))
        .collect();
    owner_app(&env).await
}

/// The value of `name=` among the `Set-Cookie` headers, with the header's whole text.
fn set_cookie(headers: &HeaderMap, name: &str) -> Option<(String, String)> {
    headers
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(|v| {
            let value = v[name.len() + 1..].split(';').next().unwrap().to_owned();
            (value, v)
        })
}

/// The `value` of the first hidden `csrf` field in `html`.
fn csrf_of(html: &str) -> String {
    let start = html.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
    html[start..][..html[start..].find('"').unwrap()].to_owned()
}

/// A signed-in browser: its session cookie and the CSRF token of its forms.
pub(crate) struct Owner {
    pub(crate) cookie: String,
    pub(crate) csrf: String,
}

/// The sign-in form: its nonce cookie and CSRF token.
async fn login_form(app: &TestApp) -> (String, String) {
    let response = get_with(app, "", "/").await;
    assert_eq!(response.status(), 200);
    let (nonce, _) = set_cookie(response.headers(), "docgate_owner_login").expect("nonce cookie");
    let html = response.text().await.unwrap();
    assert!(html.contains("data-page=\"owner-login\""), "{html}");
    (nonce, csrf_of(&html))
}

/// Posts the sign-in form with `token`, as the page's own form does.
async fn post_login(app: &TestApp, nonce: &str, csrf: &str, token: &str) -> reqwest::Response {
    app.client
        .post(format!("{}/login", app.admin_base))
        .header("origin", &app.admin_base)
        .header("sec-fetch-site", "same-origin")
        .header("cookie", format!("docgate_owner_login={nonce}"))
        .form(&[("csrf", csrf), ("token", token)])
        .send()
        .await
        .unwrap()
}

pub(crate) async fn sign_in(app: &TestApp) -> Owner {
    let (nonce, csrf) = login_form(app).await;
    let response = post_login(app, &nonce, &csrf, TOKEN).await;
    assert_eq!(response.status(), 303);
    let (cookie, _) = set_cookie(response.headers(), "docgate_owner").expect("session cookie");
    let page = get_page(app, &cookie, "/").await;
    assert_eq!(page.0, 200);
    Owner {
        csrf: csrf_of(&page.1),
        cookie,
    }
}

/// GETs `target` on the admin listener with the session `cookie` (none if empty).
pub(crate) async fn get_with(app: &TestApp, cookie: &str, target: &str) -> reqwest::Response {
    let mut request = app.client.get(format!("{}{target}", app.admin_base));
    if !cookie.is_empty() {
        request = request.header("cookie", format!("docgate_owner={cookie}"));
    }
    request.send().await.unwrap()
}

/// GETs `target` on the admin listener with the session `cookie`: status and body.
pub(crate) async fn get_page(app: &TestApp, cookie: &str, target: &str) -> (u16, String) {
    let response = get_with(app, cookie, target).await;
    (response.status().as_u16(), response.text().await.unwrap())
}

impl Owner {
    /// Posts an action form as the page does, with `csrf` as its token.
    pub(crate) async fn post(
        &self,
        app: &TestApp,
        path: &str,
        csrf: &str,
        fields: &[(&str, &str)],
    ) -> reqwest::Response {
        self.post_from(app, &app.admin_base, path, csrf, fields)
            .await
    }

    /// Posts an action form from a page of `origin` (this listener's: same-origin).
    async fn post_from(
        &self,
        app: &TestApp,
        origin: &str,
        path: &str,
        csrf: &str,
        fields: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut form = vec![("csrf", csrf)];
        form.extend_from_slice(fields);
        let site = if origin == app.admin_base {
            "same-origin"
        } else {
            "cross-site"
        };
        app.client
            .post(format!("{}{path}", app.admin_base))
            .header("origin", origin)
            .header("sec-fetch-site", site)
            .header("cookie", format!("docgate_owner={}", self.cookie))
            .form(&form)
            .send()
            .await
            .unwrap()
    }

    /// Clicks `action` (`/approve`, `/decline`) of the pending request `id` on the overview:
    /// where the page sends the browser back.
    pub(crate) async fn decide(&self, app: &TestApp, action: &str, id: &str) -> String {
        let response = self
            .post(app, action, &self.csrf, &[("id", id), ("back", "/")])
            .await;
        assert_eq!(response.status(), 303);
        response.headers()[LOCATION].to_str().unwrap().to_owned()
    }

    pub(crate) async fn page(&self, app: &TestApp, target: &str) -> String {
        let (status, html) = get_page(app, &self.cookie, target).await;
        assert_eq!(status, 200, "{html}");
        html
    }
}

/// The person's entries as the admin API exports them.
pub(crate) async fn exported(app: &TestApp, email: &str) -> usize {
    let (status, body) = json_of(call(
        app,
        reqwest::Method::GET,
        &format!("/admin/people?email={email}"),
    ))
    .await;
    assert_eq!(status, 200);
    body["entries"].as_array().unwrap().len()
}

/// The page's log section (its search and its rows).
pub(crate) fn log_of(html: &str) -> &str {
    let log = &html[html.find("id=\"requests\"").expect("the log")..];
    &log[..log.find("</section>").unwrap()]
}

/// How many requests the page's log shows.
pub(crate) fn rows(html: &str) -> usize {
    log_of(html).matches("<li>").count()
}

/// The status a browser's `HEAD` of a link gets now (claims nothing).
pub(crate) async fn link_status(app: &TestApp, url: &str) -> u16 {
    app.client.head(url).send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn without_a_session_there_is_the_sign_in_form_and_never_data() {
    let app = owner_app(&[]).await;
    let link = app.link(JANE, "resume").await;
    app.wait_for_log(1).await;
    let keys = Keys::new(TOKEN.as_bytes());
    let (_, expired) = keys.open(now() - 13 * 3600).unwrap();
    let (_, other_token) = Keys::new(b"another-admin-token-0123456789")
        .open(now())
        .unwrap();
    let (_, fresh) = keys.open(now()).unwrap();
    let forged = {
        let parts: Vec<&str> = fresh.split('.').collect();
        format!("{}.{}.{}", parts[0], now() + 10 * 365 * 86_400, parts[2])
    };
    for (what, cookie) in [
        ("no cookie", ""),
        ("garbage", "x"),
        ("expired", expired.as_str()),
        ("signed under another token", other_token.as_str()),
        ("expiry changed", forged.as_str()),
    ] {
        for target in [
            "/",
            "/?email=jane.owner%40example.com",
            "/export?email=jane.owner%40example.com",
        ] {
            let (status, html) = get_page(&app, cookie, target).await;
            let expected = if target.starts_with("/export") {
                401
            } else {
                200
            };
            assert_eq!(status, expected, "{what} {target}");
            assert!(
                html.contains("data-page=\"owner-login\""),
                "{what} {target}: {html}"
            );
            assert!(!html.contains("jane.owner"), "{what} {target}: data shown");
        }
    }
    // An action without a session does nothing.
    let revoke = app
        .client
        .post(format!("{}/revoke-all", app.admin_base))
        .header("cookie", format!("docgate_owner={expired}"))
        .form(&[("csrf", "x"), ("email", JANE)])
        .send()
        .await
        .unwrap();
    assert_eq!(revoke.status(), 401);
    assert_eq!(link_status(&app, &link).await, 200, "the link still works");
    // The admin API's bearer token is not a session either.
    let bearer = call(&app, reqwest::Method::GET, "/").send().await.unwrap();
    assert!(
        bearer
            .text()
            .await
            .unwrap()
            .contains("data-page=\"owner-login\"")
    );
    // Without an admin token there is no owner's page.
    let off = TestApp::start().await;
    assert_eq!(get_with(&off, "", "/").await.status(), 404);
}

#[tokio::test]
async fn the_admin_token_signs_in_with_a_strict_session_cookie() {
    let app = owner_app(&[]).await;
    let (nonce, csrf) = login_form(&app).await;

    // A wrong token: 401, the form again, no session.
    let wrong = post_login(&app, &nonce, &csrf, "not-the-admin-token-at-all").await;
    assert_eq!(wrong.status(), 401);
    assert!(set_cookie(wrong.headers(), "docgate_owner").is_none());
    let html = wrong.text().await.unwrap();
    assert!(html.contains("id=\"login-error\""), "{html}");
    assert!(html.contains("id=\"login-form\""));

    // Without the form's token (a page elsewhere posting it), or from another site: 403.
    let no_nonce = post_login(&app, "", &csrf, TOKEN).await;
    assert_eq!(no_nonce.status(), 403);
    assert!(set_cookie(no_nonce.headers(), "docgate_owner").is_none());
    let other_nonce = post_login(&app, "AAAAAAAAAAAAAAAAAAAAAA", &csrf, TOKEN).await;
    assert_eq!(other_nonce.status(), 403);
    let cross = app
        .client
        .post(format!("{}/login", app.admin_base))
        .header("origin", "https://evil.example")
        .header("cookie", format!("docgate_owner_login={nonce}"))
        .form(&[("csrf", csrf.as_str()), ("token", TOKEN)])
        .send()
        .await
        .unwrap();
    assert_eq!(cross.status(), 403);
    assert!(set_cookie(cross.headers(), "docgate_owner").is_none());

    // The right token: a session cookie, HttpOnly, Secure, SameSite=Strict, for 12 hours.
    let right = post_login(&app, &nonce, &csrf, TOKEN).await;
    assert_eq!(right.status(), 303);
    assert_eq!(right.headers()[LOCATION], "/");
    let (value, header) = set_cookie(right.headers(), "docgate_owner").unwrap();
    let attributes: Vec<&str> = header.split("; ").skip(1).collect();
    for wanted in [
        "Path=/",
        "Max-Age=43200",
        "HttpOnly",
        "Secure",
        "SameSite=Strict",
    ] {
        assert!(attributes.contains(&wanted), "{wanted} missing: {header}");
    }
    // 128 random bits at least, then the expiry and the signature.
    let id = value.split('.').next().unwrap();
    assert!(id.len() >= 22, "{value}");
    let (cleared, _) = set_cookie(right.headers(), "docgate_owner_login").unwrap();
    assert!(cleared.is_empty());
    let (status, html) = get_page(&app, &value, "/").await;
    assert_eq!(status, 200);
    assert!(html.contains("data-page=\"owner\""), "{html}");

    // Signing out clears the cookie.
    let owner = Owner {
        csrf: csrf_of(&html),
        cookie: value,
    };
    let out = owner.post(&app, "/logout", &owner.csrf, &[]).await;
    assert_eq!(out.status(), 303);
    let (cleared, header) = set_cookie(out.headers(), "docgate_owner").unwrap();
    assert!(
        cleared.is_empty() && header.contains("Max-Age=0"),
        "{header}"
    );
}

#[tokio::test]
async fn sign_in_attempts_are_rate_limited() {
    let app = owner_app(&[]).await;
    let (nonce, csrf) = login_form(&app).await;
    let mut statuses = Vec::new();
    for _ in 0..12 {
        statuses.push(
            post_login(&app, &nonce, &csrf, "wrong-token-0123456789abcdef")
                .await
                .status()
                .as_u16(),
        );
    }
    assert_eq!(&statuses[..10], &[401; 10]);
    assert_eq!(&statuses[10..], &[429, 429]);
    // Even the right token waits now.
    let right = post_login(&app, &nonce, &csrf, TOKEN).await;
    assert_eq!(right.status(), 429);
    assert!(right.headers().contains_key("retry-after"));
    assert!(set_cookie(right.headers(), "docgate_owner").is_none());
}

#[tokio::test]
async fn an_action_without_the_sessions_csrf_token_is_refused_and_changes_nothing() {
    let app = owner_app(&[]).await;
    let link = app.link(JANE, "resume").await;
    let log = app.wait_for_log(1).await;
    let jti = log[0].jti.clone().unwrap();
    let owner = sign_in(&app).await;
    let other = sign_in(&app).await;
    assert_ne!(owner.csrf, other.csrf, "a token per session");

    let attempts = [
        ("/revoke", vec![("jti", jti.as_str())]),
        ("/revoke-all", vec![("email", JANE)]),
        ("/erase", vec![("email", JANE), ("confirm", "yes")]),
    ];
    for (path, fields) in &attempts {
        for (what, csrf) in [
            ("no token", ""),
            ("another session's", other.csrf.as_str()),
            ("garbage", "abc"),
        ] {
            let response = owner.post(&app, path, csrf, fields).await;
            assert_eq!(response.status(), 403, "{path} with {what}");
            let body = response.text().await.unwrap();
            assert!(body.contains("Reload the owner"), "{body}");
        }
        // The right token from another site's page.
        let cross = owner
            .post_from(&app, "https://evil.example", path, &owner.csrf, fields)
            .await;
        assert_eq!(cross.status(), 403, "{path} cross-site");
    }
    // A GET of an action's route changes nothing either.
    let (status, _) = get_page(&app, &owner.cookie, &format!("/revoke?jti={jti}")).await;
    assert_eq!(status, 405);
    assert_eq!(link_status(&app, &link).await, 200, "the link still works");
    assert_eq!(exported(&app, JANE).await, 1, "nothing erased");

    // With the token: revoked.
    let done = owner
        .post(
            &app,
            "/revoke",
            &owner.csrf,
            &[("jti", &jti), ("back", "/")],
        )
        .await;
    assert_eq!(done.status(), 303);
    assert_eq!(done.headers()[LOCATION], "/?done=revoked");
    assert_eq!(app.client.get(&link).send().await.unwrap().status(), 410);
    let html = owner.page(&app, "/?done=revoked").await;
    assert!(html.contains("id=\"flash\""), "{html}");
    assert!(
        !html.contains("name=\"jti\""),
        "no Revoke button on a revoked link"
    );
}

#[tokio::test]
async fn every_owner_page_carries_the_strict_policy_and_security_headers() {
    let app = owner_app(&[]).await;
    let owner = sign_in(&app).await;
    let login = get_with(&app, "", "/").await;
    let page = get_with(&app, &owner.cookie, "/").await;
    for response in [&login, &page] {
        let h = response.headers();
        let csp = h["content-security-policy"].to_str().unwrap();
        for part in [
            "default-src 'none'",
            "style-src 'sha256-",
            "img-src 'self' data:",
            "form-action 'self'",
            "frame-ancestors 'none'",
            "base-uri 'none'",
        ] {
            assert!(csp.contains(part), "{part} missing: {csp}");
        }
        assert!(
            !csp.contains("script-src") && !csp.contains("unsafe"),
            "{csp}"
        );
        assert_eq!(h["x-frame-options"], "DENY");
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["cache-control"], "no-store");
        assert_eq!(h["referrer-policy"], "same-origin");
        assert_eq!(h["content-type"], "text/html; charset=utf-8");
    }
    let html = page.text().await.unwrap();
    assert!(!html.contains("<script") && !html.contains(" style=") && !html.contains("src=\"http"));
}
