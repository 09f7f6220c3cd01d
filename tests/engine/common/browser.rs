//! A real headless Chromium driven over the W3C WebDriver protocol: the test starts
//! Debian's `chromedriver` on a free port with a fresh profile, and talks to it with the
//! HTTP client the tests already use. Every call has a deadline; dropping the browser ends
//! the session and the driver.

use serde_json::{json, Value};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The key under which WebDriver answers an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// How long one WebDriver call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// A Chromium session.
pub struct Browser {
    driver: Child,
    base: String,
    client: reqwest::Client,
    _profile: tempfile::TempDir,
}

/// Whether Chromium and its driver are installed (`.ci/run` installs them).
pub fn available() -> bool {
    ["chromedriver", "chromium"].iter().all(|b| {
        Command::new(b)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

impl Browser {
    /// Starts chromedriver and a headless Chromium with a fresh profile, `width`×`height`.
    pub async fn start(width: u32, height: u32) -> Browser {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let profile = tempfile::tempdir().unwrap();
        let mut b = Browser {
            driver,
            base: format!("http://127.0.0.1:{port}"),
            client: reqwest::Client::builder()
                .timeout(CALL_TIMEOUT)
                .build()
                .unwrap(),
            _profile: profile,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ready = b
                .client
                .get(format!("{}/status", b.base))
                .send()
                .await
                .ok()
                .map(|r| r.status().is_success())
                .unwrap_or(false);
            if ready {
                break;
            }
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            &format!("--window-size={width},{height}"),
            &format!("--user-data-dir={}", b._profile.path().display()),
        ];
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": args},
        }}});
        let session = b.call("POST", "/session", Some(caps)).await;
        let id = session["value"]["sessionId"]
            .as_str()
            .expect("a session id")
            .to_string();
        b.base = format!("{}/session/{id}", b.base);
        b
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}{path}", self.base);
        let req = match method {
            "GET" => self.client.get(&url),
            "DELETE" => self.client.delete(&url),
            _ => self.client.post(&url).json(&body.unwrap_or(json!({}))),
        };
        let res = req.send().await.expect("webdriver answers");
        let status = res.status();
        let v: Value = res.json().await.expect("webdriver answers JSON");
        assert!(status.is_success(), "webdriver {method} {path}: {v}");
        v
    }

    /// Opens a URL and waits for its load.
    pub async fn goto(&self, url: &str) {
        self.call("POST", "/url", Some(json!({"url": url}))).await;
    }

    /// The current URL.
    pub async fn url(&self) -> String {
        self.call("GET", "/url", None).await["value"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// The first element matching a CSS selector, if any.
    pub async fn find(&self, css: &str) -> Option<String> {
        let v = self
            .call(
                "POST",
                "/elements",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        v["value"][0][ELEMENT].as_str().map(str::to_string)
    }

    /// Waits until an element matches `css`; answers it.
    pub async fn wait_for(&self, css: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(e) = self.find(css).await {
                return e;
            }
            assert!(
                Instant::now() < deadline,
                "no `{css}` on {}",
                self.url().await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the page's visible text contains `needle`.
    pub async fn wait_for_text(&self, needle: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            if self.text().await.contains(needle) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "`{needle}` did not appear on {}:\n{}",
                self.url().await,
                self.text().await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Types into an element.
    pub async fn type_into(&self, element: &str, text: &str) {
        self.call(
            "POST",
            &format!("/element/{element}/value"),
            Some(json!({"text": text})),
        )
        .await;
    }

    /// Clicks an element.
    pub async fn click(&self, element: &str) {
        self.call("POST", &format!("/element/{element}/click"), None)
            .await;
    }

    /// The page's visible text.
    pub async fn text(&self) -> String {
        self.run("return document.body ? document.body.innerText : ''")
            .await
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    /// Runs a script in the page and answers its value.
    pub async fn run(&self, script: &str) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
        .await["value"]
            .clone()
    }

    /// Resizes the window (to look at a page as a phone shows it).
    pub async fn resize(&self, width: u32, height: u32) {
        self.call(
            "POST",
            "/window/rect",
            Some(json!({"width": width, "height": height})),
        )
        .await;
    }

    /// A PNG of the viewport.
    pub async fn screenshot(&self) -> Vec<u8> {
        use base64::Engine;
        let v = self.call("GET", "/screenshot", None).await;
        base64::engine::general_purpose::STANDARD
            .decode(v["value"].as_str().unwrap())
            .unwrap()
    }
}

impl Drop for Browser {
    /// Ends the session (which closes Chromium), then the driver. Blocking on purpose: it
    /// runs on panics too, and must not leave a browser behind.
    fn drop(&mut self) {
        use std::io::{Read, Write};
        if let Some((host, path)) = self
            .base
            .strip_prefix("http://")
            .and_then(|rest| rest.split_once('/'))
        {
            if let Ok(mut s) = std::net::TcpStream::connect(host) {
                let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
                let _ = write!(
                    s,
                    "DELETE /{path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
                let _ = s.read_to_end(&mut Vec::new());
            }
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
