//! Starts the real app on an ephemeral port, in its own thread and actix system,
//! against fakes of the services it talks to.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use actix_web::dev::ServerHandle;
use file_scanner::config::Config;
use scraper::{Html, Selector};

use super::fake_vt::FakeVirusTotal;

/// The key the fake VirusTotal accepts and the app is given.
pub const VT_KEY: &str = "test-key-not-a-real-one";

/// A running app. Dropping it stops the server and its background jobs.
pub struct TestApp {
    pub url: String,
    pub data_dir: PathBuf,
    pub upload_dir: PathBuf,
    handle: ServerHandle,
    thread: Option<JoinHandle<()>>,
    _dir: Option<tempfile::TempDir>,
}

/// Settings for tests: fast polls and retries, storage in a fresh directory.
pub fn test_config(vt: &FakeVirusTotal, dir: &std::path::Path) -> Config {
    let mut config = Config::with_data_dir(dir.join("data"));
    config.upload_dir = dir.join("uploads");
    config.vt_api_key = Some(file_scanner::config::Secret::new(VT_KEY));
    config.vt_base_url = vt.base_url();
    config.poll_interval = Duration::from_millis(40);
    config.retry_base_delay = Duration::from_millis(20);
    config.vt_request_timeout = Duration::from_secs(5);
    // Quota tests set their own limit; the others must not wait for one.
    config.vt_requests_per_minute = 100_000;
    config.rate_limit_per_minute = 1_000_000;
    config.scan_rate_limit_per_minute = 1_000_000;
    config
}

impl TestApp {
    /// The app against `vt`, with the test defaults.
    pub async fn start(vt: &FakeVirusTotal) -> TestApp {
        Self::start_with(vt, |_| {}).await
    }

    /// The app against `vt`, with settings adjusted by `adjust`.
    pub async fn start_with(vt: &FakeVirusTotal, adjust: impl FnOnce(&mut Config)) -> TestApp {
        let dir = tempfile::tempdir().unwrap();
        let mut config = test_config(vt, dir.path());
        adjust(&mut config);
        let mut app = Self::start_config(config);
        app._dir = Some(dir);
        app
    }

    /// The app with exactly this configuration (its directories are the caller's).
    pub fn start_config(config: Config) -> TestApp {
        // Logs show up with a failing test's output (RUST_LOG picks the level).
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .try_init();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let data_dir = config.data_dir.clone();
        let upload_dir = config.upload_dir.clone();
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let server = file_scanner::serve(config, listener).await.unwrap();
                tx.send(server.handle()).unwrap();
                server.await.unwrap();
            });
        });
        let handle = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("app did not start");
        TestApp {
            url,
            data_dir,
            upload_dir,
            handle,
            thread: Some(thread),
            _dir: None,
        }
    }

    /// Stops the server and waits until its thread (and every job on it) is gone.
    pub fn stop(&mut self) {
        if let Some(thread) = self.thread.take() {
            let handle = self.handle.clone();
            // A runtime of its own: this may be called from inside the test's runtime.
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .build()
                    .unwrap();
                runtime.block_on(handle.stop(false));
            })
            .join()
            .unwrap();
            thread.join().unwrap();
        }
    }

    pub fn at(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A client that does not follow redirects, so tests see each `303`.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// Posts the upload form and returns the response (not following the redirect).
pub async fn post_upload(
    app: &TestApp,
    content: &[u8],
    file_name: &str,
    mode: Option<&str>,
    password: Option<&str>,
) -> reqwest::Response {
    let part = reqwest::multipart::Part::bytes(content.to_vec()).file_name(file_name.to_owned());
    let mut form = reqwest::multipart::Form::new().part("file", part);
    if let Some(mode) = mode {
        form = form.text("mode", mode.to_owned());
    }
    if let Some(password) = password {
        form = form.text("password", password.to_owned());
    }
    client()
        .post(app.at("/scans"))
        .multipart(form)
        .send()
        .await
        .unwrap()
}

/// The scan page address a `303` points at.
pub fn scan_location(response: &reqwest::Response) -> String {
    assert_eq!(
        response.status(),
        303,
        "expected a redirect to the scan page"
    );
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        location.starts_with("/scans/"),
        "unexpected location {location}"
    );
    location
}

/// A page's HTML, parsed.
pub async fn get_page(app: &TestApp, path: &str) -> (u16, Html) {
    let response = client().get(app.at(path)).send().await.unwrap();
    let status = response.status().as_u16();
    (
        status,
        Html::parse_document(&response.text().await.unwrap()),
    )
}

/// Fetches the scan page until `#scan-status` is final; returns the last page.
pub async fn wait_until_final(app: &TestApp, scan_path: &str) -> Html {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, page) = get_page(app, scan_path).await;
        assert_eq!(status, 200);
        let state = status_attr(&page, "data-status").unwrap();
        if ["completed", "not_found", "failed"].contains(&state.as_str()) {
            return page;
        }
        assert!(Instant::now() < deadline, "scan stuck in {state}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// An attribute of `#scan-status`.
pub fn status_attr(page: &Html, name: &str) -> Option<String> {
    let selector = Selector::parse("#scan-status").unwrap();
    page.select(&selector)
        .next()?
        .value()
        .attr(name)
        .map(str::to_owned)
}

/// The text of the first element matching `selector`, whitespace collapsed.
pub fn text_of(page: &Html, selector: &str) -> Option<String> {
    let selector = Selector::parse(selector).unwrap();
    let element = page.select(&selector).next()?;
    Some(
        element
            .text()
            .collect::<Vec<_>>()
            .join(" ")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" "),
    )
}

/// How many elements match `selector`.
pub fn count(page: &Html, selector: &str) -> usize {
    page.select(&Selector::parse(selector).unwrap()).count()
}

/// Files left in the spool directory.
pub fn spooled_files(app: &TestApp) -> usize {
    std::fs::read_dir(&app.upload_dir)
        .map(|d| d.count())
        .unwrap_or(0)
}

/// What a browser without JavaScript shows inside the page's `<noscript>`
/// (the parser keeps that content as text, so it is parsed on its own).
pub fn noscript(page: &Html) -> Html {
    let selector = Selector::parse("noscript").unwrap();
    let inner: String = page.select(&selector).flat_map(|e| e.text()).collect();
    Html::parse_fragment(&inner)
}

/// A browser: keeps the cookie the app sets, as a real one would.
pub struct Browser {
    http: reqwest::Client,
    cookie: std::sync::Mutex<Option<String>>,
}

impl Default for Browser {
    fn default() -> Self {
        Self::new()
    }
}

impl Browser {
    pub fn new() -> Self {
        Self {
            http: client(),
            cookie: std::sync::Mutex::new(None),
        }
    }

    /// The `name=value` of the browser id cookie, once the app has set it.
    pub fn cookie(&self) -> Option<String> {
        self.cookie.lock().unwrap().clone()
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> reqwest::Response {
        let request = match self.cookie() {
            Some(cookie) => request.header("cookie", cookie),
            None => request,
        };
        let response = request.send().await.unwrap();
        if let Some(set) = response.headers().get("set-cookie") {
            let pair = set.to_str().unwrap().split(';').next().unwrap().to_owned();
            *self.cookie.lock().unwrap() = Some(pair);
        }
        response
    }

    pub async fn get(&self, app: &TestApp, path: &str) -> reqwest::Response {
        self.send(self.http.get(app.at(path))).await
    }

    pub async fn page(&self, app: &TestApp, path: &str) -> (u16, Html) {
        let response = self.get(app, path).await;
        let status = response.status().as_u16();
        (
            status,
            Html::parse_document(&response.text().await.unwrap()),
        )
    }

    /// A form post without fields, as the page's buttons send it.
    pub async fn post(&self, app: &TestApp, path: &str) -> reqwest::Response {
        self.send_form(app, path, "").await
    }

    /// A form post with an url-encoded body, from this site's own page.
    pub async fn send_form(&self, app: &TestApp, path: &str, body: &str) -> reqwest::Response {
        let request = self
            .http
            .post(app.at(path))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("sec-fetch-site", "same-origin")
            .body(body.to_owned());
        self.send(request).await
    }

    /// Uploads a file through the form and returns the scan page's path.
    pub async fn upload(&self, app: &TestApp, content: &[u8], name: &str, mode: &str) -> String {
        let part = reqwest::multipart::Part::bytes(content.to_vec()).file_name(name.to_owned());
        let form = reqwest::multipart::Form::new()
            .part("file", part)
            .text("mode", mode.to_owned());
        let response = self
            .send(self.http.post(app.at("/scans")).multipart(form))
            .await;
        scan_location(&response)
    }

    /// Searches for a hash and returns the scan page's path.
    pub async fn search(&self, app: &TestApp, hash: &str) -> String {
        let response = self
            .send(self.http.get(app.at("/search")).query(&[("q", hash)]))
            .await;
        scan_location(&response)
    }
}
