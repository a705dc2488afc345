//! One tab ([`Page`]): navigation, the DOM read through script, input, emulated screens and
//! colour schemes, screenshots, and console problems.

#![allow(dead_code)]

use super::*;

/// A screen to emulate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Viewport {
    /// 390×844 CSS pixels at device scale 2, mobile (an iPhone 12–15 class phone).
    Phone,
    /// 1280×800 CSS pixels at device scale 1.
    Desktop,
}

impl Viewport {
    pub const ALL: [Viewport; 2] = [Viewport::Phone, Viewport::Desktop];

    pub fn name(self) -> &'static str {
        match self {
            Viewport::Phone => "phone",
            Viewport::Desktop => "desktop",
        }
    }

    /// Width and height in CSS pixels.
    pub fn css(self) -> (u32, u32) {
        match self {
            Viewport::Phone => (390, 844),
            Viewport::Desktop => (1280, 800),
        }
    }

    pub fn scale(self) -> u32 {
        match self {
            Viewport::Phone => 2,
            Viewport::Desktop => 1,
        }
    }

    /// A screenshot's width and height in device pixels.
    pub fn pixels(self) -> (u32, u32) {
        let (w, h) = self.css();
        (w * self.scale(), h * self.scale())
    }
}

/// One tab, attached with its own session.
pub struct Page {
    pub(super) conn: Arc<Conn>,
    pub(super) session: String,
    pub(super) target_id: String,
}

impl Page {
    /// A CDP command on this page's session.
    pub async fn call(&self, method: &str, params: Value) -> Value {
        self.conn.call(Some(&self.session), method, params).await
    }

    /// How many events have arrived so far: pass it to the `wait_*` methods.
    pub fn mark(&self) -> usize {
        self.conn.mark()
    }

    /// Opens `url` and waits for its load event; returns the main document's HTTP status.
    pub async fn goto(&self, url: &str) -> u16 {
        let mark = self.mark();
        let navigated = self.call("Page.navigate", json!({ "url": url })).await;
        assert_eq!(
            navigated["isDownload"], false,
            "{url} started a download, not a page"
        );
        if let Some(error) = navigated.get("errorText").and_then(Value::as_str) {
            panic!("opening {url}: {error}");
        }
        self.wait_for_load(mark).await
    }

    /// Opens `url`, which answers with an attachment: no page loads, a download starts.
    pub async fn goto_download(&self, url: &str) {
        let navigated = self.call("Page.navigate", json!({ "url": url })).await;
        assert_eq!(
            navigated["isDownload"], true,
            "{url} did not start a download: {navigated}"
        );
    }

    /// Waits (bounded) for a load event of this page after `mark`; returns the HTTP status of the
    /// document that loaded (0 for one that came from no HTTP response, e.g. `data:`).
    pub async fn wait_for_load(&self, mark: usize) -> u16 {
        let session = self.session.clone();
        let (index, _) = self
            .conn
            .wait_event(mark, "a page load", |e| {
                e.session.as_deref() == Some(session.as_str()) && e.method == "Page.loadEventFired"
            })
            .await;
        let events = self.conn.events.lock().unwrap();
        events[mark..index]
            .iter()
            .rev()
            .filter(|e| e.session.as_deref() == Some(self.session.as_str()))
            .find(|e| e.method == "Network.responseReceived" && e.params["type"] == "Document")
            .and_then(|e| e.params["response"]["status"].as_u64())
            .map_or(0, |s| s as u16)
    }

    /// Evaluates a JavaScript expression in the page (through DevTools: this works with the
    /// page's own scripts disabled too) and returns its value.
    pub async fn eval(&self, expression: &str) -> Value {
        let result = self
            .call(
                "Runtime.evaluate",
                json!({
                    "expression": expression,
                    "returnByValue": true,
                    "awaitPromise": true,
                }),
            )
            .await;
        if let Some(details) = result.get("exceptionDetails") {
            panic!("evaluating {expression}: {details}");
        }
        result["result"]
            .get("value")
            .cloned()
            .unwrap_or(Value::Null)
    }

    /// Whether `selector` matches an element.
    pub async fn exists(&self, selector: &str) -> bool {
        self.eval(&format!(
            "document.querySelector({}) !== null",
            js(selector)
        ))
        .await
        .as_bool()
        .unwrap()
    }

    /// The rendered text of the first element matching `selector` (panics if none does).
    pub async fn text(&self, selector: &str) -> String {
        let value = self
            .eval(&format!(
                "(() => {{ const e = document.querySelector({0}); return e && e.innerText; }})()",
                js(selector)
            ))
            .await;
        match value {
            Value::String(s) => s.trim().to_owned(),
            _ => panic!("no element matches {selector} on {}", self.url().await),
        }
    }

    /// An attribute of the first element matching `selector`.
    pub async fn attr(&self, selector: &str, name: &str) -> Option<String> {
        self.eval(&format!(
            "(() => {{ const e = document.querySelector({}); return e && e.getAttribute({}); }})()",
            js(selector),
            js(name)
        ))
        .await
        .as_str()
        .map(str::to_owned)
    }

    pub async fn url(&self) -> String {
        self.eval("location.href")
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// `<body data-page>`: which page this is.
    pub async fn name(&self) -> String {
        self.attr("body", "data-page").await.unwrap_or_default()
    }

    /// `<html lang>`.
    pub async fn lang(&self) -> String {
        self.attr("html", "lang").await.unwrap_or_default()
    }

    /// The whole document as HTML.
    pub async fn html(&self) -> String {
        self.eval("document.documentElement.outerHTML")
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Clicks the centre of the element matching `selector` with the mouse, as a person does
    /// (after scrolling it into view).
    pub async fn click(&self, selector: &str) {
        let centre = self
            .eval(&format!(
                "(() => {{ const e = document.querySelector({}); if (!e) return null; \
                 e.scrollIntoView({{block: 'center'}}); const r = e.getBoundingClientRect(); \
                 return [r.left + r.width / 2, r.top + r.height / 2]; }})()",
                js(selector)
            ))
            .await;
        let Some([x, y]) = centre.as_array().map(|a| [a[0].clone(), a[1].clone()]) else {
            panic!("no element matches {selector} on {}", self.url().await);
        };
        for kind in ["mouseMoved", "mousePressed", "mouseReleased"] {
            self.call(
                "Input.dispatchMouseEvent",
                json!({ "type": kind, "x": x, "y": y, "button": "left", "clickCount": 1 }),
            )
            .await;
        }
    }

    /// Clicks `selector` and waits for the page it leads to; returns that page's HTTP status.
    pub async fn click_and_wait(&self, selector: &str) -> u16 {
        let mark = self.mark();
        self.click(selector).await;
        self.wait_for_load(mark).await
    }

    /// Clicks into the field matching `selector` and types `text` as keyboard input.
    pub async fn type_into(&self, selector: &str, text: &str) {
        self.click(selector).await;
        self.call("Input.insertText", json!({ "text": text })).await;
    }

    /// Presses and releases one key (`Enter`, `Tab`, `ArrowDown`, `ArrowUp`, `Space`).
    pub async fn press(&self, key: &str) {
        let (code, key_code, text) = match key {
            "Enter" => ("Enter", 13, "\r"),
            "Tab" => ("Tab", 9, ""),
            "ArrowDown" => ("ArrowDown", 40, ""),
            "ArrowUp" => ("ArrowUp", 38, ""),
            "Space" => ("Space", 32, " "),
            _ => panic!("no key code for {key}"),
        };
        let key_name = if key == "Space" { " " } else { key };
        let mut down = json!({
            "type": if text.is_empty() { "rawKeyDown" } else { "keyDown" },
            "key": key_name,
            "code": code,
            "windowsVirtualKeyCode": key_code,
        });
        if !text.is_empty() {
            down["text"] = text.into();
        }
        self.call("Input.dispatchKeyEvent", down).await;
        self.call(
            "Input.dispatchKeyEvent",
            json!({ "type": "keyUp", "key": key_name, "code": code, "windowsVirtualKeyCode": key_code }),
        )
        .await;
    }

    /// Picks the option whose value is `value` in the `<select>` matching `selector` with the
    /// keyboard: focus, then arrow keys.
    pub async fn select(&self, selector: &str, value: &str) {
        let count = self
            .eval(&format!(
                "(() => {{ const e = document.querySelector({}); if (!e) return null; e.focus(); \
                 return e.options.length; }})()",
                js(selector)
            ))
            .await
            .as_u64()
            .unwrap_or_else(|| panic!("no <select> matches {selector}"));
        for direction in ["ArrowDown", "ArrowUp"] {
            for _ in 0..=count {
                let now = self
                    .eval(&format!("document.querySelector({}).value", js(selector)))
                    .await;
                if now == value {
                    return;
                }
                self.press(direction).await;
            }
        }
        panic!("{selector} has no option {value}");
    }

    /// Waits (bounded) until a JavaScript condition holds.
    pub async fn wait_until(&self, condition: &str) {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if self.eval(condition).await == Value::Bool(true) {
                return;
            }
            if Instant::now() >= deadline {
                panic!(
                    "{condition} never held within {TIMEOUT:?} on {}: {}",
                    self.url().await,
                    self.html().await
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Runs the page's own scripts, or not (as a browser with JavaScript switched off). Takes
    /// effect from the next page loaded.
    pub async fn set_javascript(&self, enabled: bool) {
        self.call(
            "Emulation.setScriptExecutionDisabled",
            json!({ "value": !enabled }),
        )
        .await;
    }

    /// Emulates a phone or a desktop screen.
    pub async fn set_viewport(&self, viewport: Viewport) {
        let (width, height) = viewport.css();
        self.call(
            "Emulation.setDeviceMetricsOverride",
            json!({
                "width": width,
                "height": height,
                "deviceScaleFactor": viewport.scale(),
                "mobile": viewport == Viewport::Phone,
            }),
        )
        .await;
    }

    /// Emulates `prefers-color-scheme: dark` (or light).
    pub async fn set_dark(&self, dark: bool) {
        self.call(
            "Emulation.setEmulatedMedia",
            json!({ "features": [{
                "name": "prefers-color-scheme",
                "value": if dark { "dark" } else { "light" },
            }] }),
        )
        .await;
    }

    /// Shows `html` as a page of its own (a `data:` URL), e.g. a mail's HTML part.
    pub async fn show_html(&self, html: &str) {
        let url = format!(
            "data:text/html;charset=utf-8;base64,{}",
            base64::engine::general_purpose::STANDARD.encode(html)
        );
        self.goto(&url).await;
    }

    /// A PNG of the viewport, once web fonts and layout have settled.
    pub async fn screenshot(&self) -> Vec<u8> {
        self.eval("document.fonts.ready.then(() => true)").await;
        let shot = self
            .call(
                "Page.captureScreenshot",
                json!({ "format": "png", "fromSurface": true }),
            )
            .await;
        base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().unwrap())
            .unwrap()
    }

    /// What the browser's console said was wrong on this page since it was opened: script
    /// errors, `console.error`, and errors the browser logged itself, among them every Content
    /// Security Policy violation (those come as `Log.entryAdded` with source `security`). Failed
    /// HTTP statuses (source `network`) are left out: an outcome page is meant to be a 4xx.
    pub fn console_problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for event in self.conn.events_of(&self.session) {
            let p = &event.params;
            match event.method.as_str() {
                "Runtime.exceptionThrown" => {
                    problems.push(format!("exception: {}", p["exceptionDetails"]));
                }
                "Runtime.consoleAPICalled"
                    if matches!(p["type"].as_str(), Some("error" | "assert")) =>
                {
                    problems.push(format!("console.{}: {}", p["type"], p["args"]));
                }
                "Log.entryAdded" => {
                    let entry = &p["entry"];
                    let text = entry["text"].as_str().unwrap_or_default();
                    let csp = text.contains("Content Security Policy");
                    if csp || (entry["level"] == "error" && entry["source"] != "network") {
                        problems.push(format!("{}: {text}", entry["source"]));
                    }
                }
                _ => {}
            }
        }
        problems
    }

    /// The events of this page so far.
    pub fn events(&self) -> Vec<Event> {
        self.conn.events_of(&self.session)
    }
}

/// A Rust string as a JavaScript string literal.
pub(super) fn js(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}
