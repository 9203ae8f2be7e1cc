//! Headless Chromium driven through WebDriver (chromedriver + fantoccini),
//! for the studio's browser tests.
//!
//! Each [`Browser`] starts its own chromedriver on a free loopback port and
//! one Chromium with a fresh profile, headless, sandbox off (the tests may
//! run as root), nothing fetched from the network; both end when it is
//! dropped, also when a test panics: chromedriver leads its own process
//! group, and the whole group (Chromium and its helpers with it) is killed. Screenshots go to `target/studio-screenshots/` (never committed).

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder};
use serde_json::{Value, json};

use super::require::chromium_paths;

/// A browser session.
pub struct Browser {
    /// The WebDriver client.
    pub client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Browser {
    /// Starts chromedriver and a headless Chromium of `width`×`height`.
    pub async fn start(width: u32, height: u32) -> Browser {
        let (chromium, chromedriver) = chromium_paths();
        let port = free_port();
        let driver = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("chromedriver starts");
        let profile = tempfile::tempdir().expect("a profile dir");
        let caps = json!({
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--disable-dev-shm-usage",
                    format!("--user-data-dir={}", profile.path().display()),
                    format!("--window-size={width},{height}"),
                ],
            }
        });
        let caps = match caps {
            Value::Object(m) => m,
            _ => unreachable!("an object"),
        };
        let url = format!("http://127.0.0.1:{port}");
        let mut last = None;
        for _ in 0..100 {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector)
                .capabilities(caps.clone())
                .connect(&url)
                .await
            {
                Ok(client) => {
                    return Browser {
                        client,
                        driver,
                        _profile: profile,
                    };
                }
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("chromedriver did not start a session: {last:?}");
    }

    /// Evaluates `expr` in the page until it is truthy; panics after `limit`.
    pub async fn wait_for(&self, what: &str, expr: &str, limit: Duration) -> Value {
        let deadline = tokio::time::Instant::now() + limit;
        let script = format!("return ({expr});");
        loop {
            if let Ok(v) = self.client.execute(&script, vec![]).await
                && !(v.is_null() || v == json!(false) || v == json!("") || v == json!(0))
            {
                return v;
            }
            if tokio::time::Instant::now() > deadline {
                let _ = self.shot(&format!("timeout-{what}")).await;
                panic!("waited {limit:?} in vain for {what}: {expr}");
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Evaluates `expr` in the page.
    pub async fn eval(&self, expr: &str) -> Value {
        self.client
            .execute(&format!("return ({expr});"), vec![])
            .await
            .expect("the script runs")
    }

    /// Clicks the element `css`.
    pub async fn click(&self, css: &str) {
        self.client
            .find(fantoccini::Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no element {css}: {e}"))
            .click()
            .await
            .unwrap_or_else(|e| panic!("cannot click {css}: {e}"));
    }

    /// Types `text` into the element `css`, after clearing it.
    pub async fn type_into(&self, css: &str, text: &str) {
        let e = self
            .client
            .find(fantoccini::Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no element {css}: {e}"));
        e.clear().await.expect("clear");
        e.send_keys(text).await.expect("type");
    }

    /// Saves a screenshot as `target/studio-screenshots/NAME.png`.
    pub async fn shot(&self, name: &str) -> PathBuf {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/studio-screenshots");
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join(format!("{name}.png"));
        if let Ok(png) = self.client.screenshot().await {
            let _ = std::fs::write(&path, png);
        }
        path
    }

    /// Ends the session and the driver.
    pub async fn close(mut self) {
        let _ = self.client.clone().close().await;
        self.kill_group();
    }

    /// Kills chromedriver's process group: the driver, Chromium and every
    /// helper process Chromium started.
    fn kill_group(&mut self) {
        let group = format!("-{}", self.driver.id());
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        self.kill_group();
    }
}
