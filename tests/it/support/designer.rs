//! A designer's own service on loopback, for `fetch` over real HTTP: a
//! small HTTP/1.1 server on a raw TCP socket that answers as a scenario's
//! `http:` section says (status, JSON body, delay; `unreachable` closes the
//! connection without answering) and logs every request it read (method,
//! target, headers, body).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use callflow::sim::behaviour::{HttpAnswer, HttpAnswers};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One request the service read.
#[derive(Clone, Debug)]
pub struct Logged {
    /// `GET` or `POST`.
    pub method: String,
    /// The full URL as the service is known by (`http://127.0.0.1:PORT/…`).
    pub url: String,
    /// The headers, names lowercase.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: String,
}

/// The running service.
pub struct Designer {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// Every request read, in order.
    pub log: Arc<Mutex<Vec<Logged>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Designer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Designer {
    /// Starts the service answering as `answers` says, its URLs written
    /// with `written_base` (`https://crm.contoso.com`) standing for this
    /// service's base.
    pub async fn start(answers: HttpAnswers, written_base: &str) -> Designer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let answers: Vec<(String, callflow::sim::behaviour::PerAttempt<HttpAnswer>)> = answers
            .into_iter()
            .map(|(k, v)| (k.replace(written_base, &base), v))
            .collect();
        let log = Arc::new(Mutex::new(Vec::new()));
        let counts = Arc::new(Mutex::new(vec![0usize; answers.len()]));
        let answers = Arc::new(answers);
        let (l, b) = (Arc::clone(&log), base.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    return;
                };
                let (answers, counts, log, base) = (
                    Arc::clone(&answers),
                    Arc::clone(&counts),
                    Arc::clone(&l),
                    b.clone(),
                );
                tokio::spawn(async move {
                    let _ = serve(socket, &answers, &counts, &log, &base).await;
                });
            }
        });
        Designer { base, log, task }
    }

    /// The requests read so far.
    pub fn requests(&self) -> Vec<Logged> {
        self.log.lock().expect("log").clone()
    }
}

async fn serve(
    mut socket: TcpStream,
    answers: &[(String, callflow::sim::behaviour::PerAttempt<HttpAnswer>)],
    counts: &Mutex<Vec<usize>>,
    log: &Mutex<Vec<Logged>>,
    base: &str,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = socket.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or_default().split(' ');
    let method = first.next().unwrap_or_default().to_owned();
    let target = first.next().unwrap_or_default().to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + length {
        let n = socket.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = String::from_utf8_lossy(&buf[head_end..]).into_owned();
    let url = format!("{base}{target}");
    log.lock().expect("log").push(Logged {
        method: method.clone(),
        url: url.clone(),
        headers,
        body,
    });
    let found = answers.iter().position(|(pattern, _)| {
        let (m, u) = match pattern.split_once(' ') {
            Some((m, u)) => (Some(m), u),
            None => (None, pattern.as_str()),
        };
        m.is_none_or(|m| m.eq_ignore_ascii_case(&method))
            && callflow::flow::Pattern {
                text: u.to_owned(),
                span: callflow::flow::span::Span::default(),
            }
            .matches(&url)
    });
    let answer = match found {
        Some(i) => {
            let mut c = counts.lock().expect("counts");
            let a = answers[i].1.nth_cloned(c[i]);
            c[i] += 1;
            a
        }
        None => HttpAnswer {
            status: 404,
            ..HttpAnswer::default()
        },
    };
    if answer.unreachable {
        // Read, then hang up without a word.
        return Ok(());
    }
    if answer.timeout {
        tokio::time::sleep(Duration::from_secs(60)).await;
        return Ok(());
    }
    if let Some(d) = answer.delay {
        tokio::time::sleep(d.0).await;
    }
    let body = if answer.body.is_null() {
        String::new()
    } else {
        answer.body.to_string()
    };
    let response = format!(
        "HTTP/1.1 {} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        answer.status,
        body.len()
    );
    socket.write_all(response.as_bytes()).await?;
    socket.shutdown().await
}
