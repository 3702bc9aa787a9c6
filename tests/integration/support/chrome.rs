//! Headless Chromium for the browser tests, driven over WebDriver.
//!
//! [`Chrome::start`] runs Debian's `chromedriver` as a child process on a free
//! loopback port, opens a session in headless Chromium with a fresh profile
//! (JavaScript on or off), and hands back a fantoccini [`Client`] (through
//! `Deref`) plus the helpers the tests share: waiting for a condition, pressing
//! keys, reading the browser's console log, and running axe-core on the page.
//!
//! Each test owns its own driver and browser: nothing is shared through a static,
//! so nothing can outlive the test process. Dropping a [`Chrome`] kills the
//! driver's whole process group (the browser included) and removes the profile.

// Each test uses a different subset of these helpers.
#![allow(dead_code)]

use std::fmt;
use std::net::TcpListener;
use std::ops::Deref;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::actions::{InputSource, KeyAction, KeyActions};
use fantoccini::elements::Element;
use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder, Locator};
use serde::Deserialize;
use serde_json::{Value, json};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";
const INSTALL_HINT: &str = "run scripts/test.sh, which installs chromium and chromium-driver";

/// axe-core, vendored (see `support/axe/README.md`), injected into pages as is.
const AXE_SOURCE: &str = include_str!("axe/axe.min.js");

/// The WCAG 2.0, 2.1 and 2.2 levels A and AA: the design's bar is WCAG 2.2 AA.
const AXE_TAGS: [&str; 6] = [
    "wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22a", "wcag22aa",
];

/// How often waits look again: short, as the app's own test polls are 40 ms.
const POLL: Duration = Duration::from_millis(40);

/// Whether pages may run scripts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Js {
    On,
    Off,
}

/// A chromedriver child process and the browser profile it uses.
struct Driver {
    child: Child,
    url: String,
    profile: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The driver leads its own process group, and Chromium and its helpers
        // stay in it: killing the group leaves no browser behind, even when a
        // failed test never closed its session.
        let group = format!("-{}", self.child.id());
        let killed = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !killed {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

impl Driver {
    fn start() -> Driver {
        assert!(
            Path::new(CHROMEDRIVER).exists(),
            "{CHROMEDRIVER} is missing: {INSTALL_HINT}"
        );
        assert!(
            Path::new(CHROMIUM).exists(),
            "{CHROMIUM} is missing: {INSTALL_HINT}"
        );
        let profile = tempfile::tempdir().unwrap();
        // A port the system just handed out; chromedriver binds it right after.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = std::fs::File::create(profile.path().join("chromedriver.log")).unwrap();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {CHROMEDRIVER} ({e}): {INSTALL_HINT}"));
        Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
            profile,
        }
    }

    /// Waits until the driver answers `/status` with `ready: true`; an error
    /// (with the driver's log) if it exited first.
    async fn wait_ready(&mut self) -> Result<(), String> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(exit)) = self.child.try_wait() {
                return Err(format!(
                    "chromedriver exited at start ({exit})\n{}",
                    self.log()
                ));
            }
            if let Ok(response) = http.get(format!("{}/status", self.url)).send().await
                && let Ok(body) = response.json::<Value>().await
                && body["value"]["ready"] == json!(true)
            {
                return Ok(());
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver did not answer on {} within 20 s\n{}",
                self.url,
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.profile.path().join("chromedriver.log")).unwrap_or_default()
    }
}

/// One headless Chromium session with its own driver; derefs to the fantoccini client.
pub struct Chrome {
    // Declared first so it is dropped first, while the driver still runs.
    client: Client,
    driver: Driver,
    js: Js,
}

impl Deref for Chrome {
    type Target = Client;

    fn deref(&self) -> &Client {
        &self.client
    }
}

/// A rule axe-core found broken, with where.
#[derive(Debug, Deserialize)]
pub struct Violation {
    pub id: String,
    pub impact: Option<String>,
    pub help: String,
    pub nodes: Vec<ViolationNode>,
}

#[derive(Debug, Deserialize)]
pub struct ViolationNode {
    /// CSS selectors of the element (nested lists through frames or shadow roots).
    pub target: Value,
    #[serde(rename = "failureSummary")]
    pub failure_summary: Option<String>,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let impact = self.impact.as_deref().unwrap_or("unknown impact");
        write!(f, "{} ({impact}): {}", self.id, self.help)?;
        for node in &self.nodes {
            let summary = node
                .failure_summary
                .as_deref()
                .unwrap_or("")
                .replace('\n', " ");
            write!(f, "\n      at {}: {summary}", node.target)?;
        }
        Ok(())
    }
}

/// One line of the browser's console log, as chromedriver reports it.
#[derive(Debug, Clone, Deserialize)]
pub struct LogEntry {
    pub level: String,
    pub message: String,
    #[serde(default)]
    pub source: Option<String>,
}

impl Chrome {
    /// Starts a driver and a headless Chromium with a fresh profile.
    pub async fn start(js: Js) -> Chrome {
        // Another process may take the free port before chromedriver binds it:
        // then the driver exits at once, and a second port is tried.
        let mut attempts = 0;
        let driver = loop {
            let mut driver = Driver::start();
            match driver.wait_ready().await {
                Ok(()) => break driver,
                Err(e) if attempts == 2 => panic!("{e}\n{INSTALL_HINT}"),
                Err(_) => attempts += 1,
            }
        };

        let user_data = driver.profile.path().join("profile");
        let mut args: Vec<String> = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1280,900",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        args.push(format!("--user-data-dir={}", user_data.display()));
        let mut options = json!({ "binary": CHROMIUM, "args": args });
        if js == Js::Off {
            // The content setting a policy would set: no page script runs at all,
            // and `<noscript>` content is rendered as for a real script-less browser.
            options["prefs"] = json!({ "profile.managed_default_content_settings.javascript": 2 });
        }
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": options,
            // Console messages (CSP reports included) for `browser_log`.
            "goog:loggingPrefs": { "browser": "ALL" },
        });
        let serde_json::Value::Object(capabilities) = capabilities else {
            unreachable!()
        };
        let client = ClientBuilder::rustls()
            .unwrap()
            .capabilities(capabilities)
            .connect(&driver.url)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "cannot open a Chromium session ({e}); {INSTALL_HINT}\n{}",
                    driver.log()
                )
            });
        Chrome { client, driver, js }
    }

    /// Ends the session (Chromium quits), then the driver.
    pub async fn quit(self) {
        let Chrome { client, driver, .. } = self;
        let _ = client.close().await;
        drop(driver);
    }

    pub fn js(&self) -> Js {
        self.js
    }

    /// Opens `url` and waits for the page to load.
    pub async fn open(&self, url: &str) {
        self.client
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("cannot open {url}: {e}"));
    }

    /// The path (and query) of the page shown.
    pub async fn path(&self) -> String {
        let url = self.client.current_url().await.unwrap();
        match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_owned(),
        }
    }

    /// Waits until the path (and query) shown satisfies `check`; returns it.
    pub async fn wait_for_path(
        &self,
        timeout: Duration,
        what: &str,
        check: impl Fn(&str) -> bool,
    ) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let path = self.path().await;
            if check(&path) {
                return path;
            }
            assert!(
                Instant::now() < deadline,
                "the browser did not reach {what} within {timeout:?}; it shows {path}:\n{}",
                self.main_html().await
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// The first element matching `css`, or a panic naming it.
    pub async fn element(&self, css: &str) -> Element {
        match self.client.find(Locator::Css(css)).await {
            Ok(element) => element,
            Err(e) => panic!(
                "no element {css} on {} ({e}); the page:\n{}",
                self.path_or_blank().await,
                self.main_html().await
            ),
        }
    }

    /// How many elements match `css`.
    pub async fn count(&self, css: &str) -> usize {
        self.client.find_all(Locator::Css(css)).await.unwrap().len()
    }

    /// The rendered text of the first element matching `css`, whitespace collapsed.
    pub async fn text(&self, css: &str) -> String {
        let text = self.element(css).await.text().await.unwrap();
        text.split_whitespace().collect::<Vec<_>>().join(" ")
    }

    /// An attribute of the first element matching `css`.
    pub async fn attr(&self, css: &str, name: &str) -> Option<String> {
        self.element(css).await.attr(name).await.unwrap()
    }

    /// Waits until an element matches `css`, and returns it.
    pub async fn wait_for(&self, css: &str, timeout: Duration) -> Element {
        match self
            .client
            .wait()
            .at_most(timeout)
            .every(POLL)
            .for_element(Locator::Css(css))
            .await
        {
            Ok(element) => element,
            Err(e) => panic!(
                "no {css} within {timeout:?} on {} ({e}); the page:\n{}",
                self.path_or_blank().await,
                self.main_html().await
            ),
        }
    }

    /// Waits until the text of the first element matching `css` satisfies `check`;
    /// returns that text.
    pub async fn wait_for_text(
        &self,
        css: &str,
        timeout: Duration,
        what: &str,
        check: impl Fn(&str) -> bool,
    ) -> String {
        let deadline = Instant::now() + timeout;
        let mut last = String::new();
        loop {
            if let Ok(element) = self.client.find(Locator::Css(css)).await
                && let Ok(text) = element.text().await
            {
                last = text.split_whitespace().collect::<Vec<_>>().join(" ");
                if check(&last) {
                    return last;
                }
            }
            assert!(
                Instant::now() < deadline,
                "{css} did not show {what} within {timeout:?}; last text: {last:?}; the page:\n{}",
                self.main_html().await
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Runs `script` (a function body: `return` gives the value) in the page.
    pub async fn eval(&self, script: &str) -> Value {
        self.client
            .execute(script, Vec::new())
            .await
            .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// Presses and releases one key, as a keyboard would, on whatever has focus.
    pub async fn press(&self, key: Key) {
        let key: char = key.into();
        let keys = KeyActions::new("keyboard".to_owned())
            .then(KeyAction::Down { value: key })
            .then(KeyAction::Up { value: key });
        self.client.perform_actions(keys).await.unwrap();
    }

    /// The `id` of the focused element (empty when it has none).
    pub async fn focused_id(&self) -> String {
        let focused = self.client.active_element().await.unwrap();
        focused.attr("id").await.unwrap().unwrap_or_default()
    }

    /// The role Chromium's accessibility tree gives the first element matching
    /// `css` (WebDriver's "Get Computed Role", which fantoccini has no method for).
    pub async fn computed_role(&self, css: &str) -> String {
        let element = self.element(css).await;
        let session = self.client.session_id().await.unwrap().unwrap();
        let url = format!(
            "{}/session/{session}/element/{}/computedrole",
            self.driver.url,
            &*element.element_id()
        );
        let body: Value = reqwest::get(url).await.unwrap().json().await.unwrap();
        body["value"]
            .as_str()
            .unwrap_or_else(|| panic!("no computed role for {css}: {body}"))
            .to_owned()
    }

    /// The browser's console log since the last call (chromedriver's log endpoint,
    /// which fantoccini has no method for).
    pub async fn browser_log(&self) -> Vec<LogEntry> {
        let session = self.client.session_id().await.unwrap().unwrap();
        let response = reqwest::Client::new()
            .post(format!("{}/session/{session}/se/log", self.driver.url))
            .json(&json!({ "type": "browser" }))
            .send()
            .await
            .unwrap();
        let body: Value = response.json().await.unwrap();
        serde_json::from_value(body["value"].clone())
            .unwrap_or_else(|e| panic!("unexpected log answer ({e}): {body}"))
    }

    /// Runs axe-core on the page for WCAG 2.0, 2.1 and 2.2 A and AA; returns
    /// what it found broken. Needs JavaScript: the same pages are checked with
    /// it on (axe reads the rendered page, which without scripts differs only
    /// by what `<noscript>` holds).
    pub async fn axe(&self) -> Vec<Violation> {
        assert_eq!(self.js, Js::On, "axe-core runs as a script in the page");
        // WebDriver scripts are not subject to the page's CSP, so a page whose
        // policy allows only its own scripts can still be checked.
        let loaded = self
            .eval(&format!("{AXE_SOURCE}\n;return typeof window.axe;"))
            .await;
        assert_eq!(loaded, json!("object"), "axe-core did not load");
        let script = r#"
            const done = arguments[arguments.length - 1];
            axe.run(document, {
                runOnly: { type: "tag", values: arguments[0] },
                resultTypes: ["violations"],
            }).then(
                (r) => done({ violations: r.violations.map((v) => ({
                    id: v.id, impact: v.impact, help: v.help,
                    nodes: v.nodes.map((n) => ({ target: n.target, failureSummary: n.failureSummary })),
                })) }),
                (e) => done({ error: String(e) }),
            );
        "#;
        let result = self
            .client
            .execute_async(script, vec![json!(AXE_TAGS)])
            .await
            .unwrap_or_else(|e| panic!("axe.run failed: {e}"));
        if let Some(error) = result.get("error") {
            panic!("axe.run failed: {error}");
        }
        serde_json::from_value(result["violations"].clone()).unwrap()
    }

    async fn path_or_blank(&self) -> String {
        match self.client.current_url().await {
            Ok(url) => url.path().to_owned(),
            Err(_) => String::new(),
        }
    }

    /// The page's `<main>` (or whole source), to show in a failure message.
    async fn main_html(&self) -> String {
        if let Ok(main) = self.client.find(Locator::Css("main")).await
            && let Ok(html) = main.html(false).await
        {
            return html;
        }
        self.client.source().await.unwrap_or_default()
    }
}

/// Formats axe-core violations per page for an assertion message.
pub fn describe_violations(found: &[(String, Vec<Violation>)]) -> String {
    let mut out = String::new();
    for (page, violations) in found {
        for violation in violations {
            out.push_str(&format!("\n  {page}: {violation}"));
        }
    }
    out
}
