//! Recordings: the download of a completed `recordResponse`'s
//! `recordingLocation` with its `recordingAccessToken`, and its delivery
//! where the configuration says (a folder, or a POST to a URL), each with
//! retries. Graph keeps a recording only briefly, so both happen as soon as
//! the operation completes. The token is never logged.

use std::path::PathBuf;

use reqwest::{StatusCode, Url};

use super::GraphClient;
use crate::engine::ControlError;

/// The largest recording downloaded: two minutes of WAV are about 4 MB at
/// 16 kHz, 16 bits; anything much larger is not one.
pub const MAX_RECORDING_BYTES: usize = 32 * 1024 * 1024;

/// How many times a download or a delivery is tried before it fails.
pub const ATTEMPTS: u32 = 3;

/// Where recordings go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordingDelivery {
    /// Written as files into this folder (made if missing).
    Folder(PathBuf),
    /// POSTed as `audio/wav` to this URL, the file name in
    /// `X-Callflow-Recording`; a `2xx` is a delivery.
    Post(Url),
}

impl RecordingDelivery {
    /// `http://…` or `https://…` is a URL to POST to; anything else a folder.
    ///
    /// # Errors
    ///
    /// An empty value, or a URL that does not parse.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err("a recordings destination is a folder or an http(s) URL".into());
        }
        if text.starts_with("http://") || text.starts_with("https://") {
            Url::parse(text)
                .map(RecordingDelivery::Post)
                .map_err(|e| format!("{text:?}: {e}"))
        } else {
            Ok(RecordingDelivery::Folder(PathBuf::from(text)))
        }
    }
}

fn transport(what: &str, e: &reqwest::Error) -> ControlError {
    ControlError::new(0, "Transport", format!("{what}: {e}"))
}

/// Whether a failure is worth another attempt: no answer, or a 5xx / 429.
fn retryable(status: u16) -> bool {
    status == 0 || status == 429 || status >= 500
}

impl GraphClient {
    /// Waits before attempt `n` (from 1): the configured retry delay,
    /// doubled each time, at most its maximum.
    async fn recording_back_off(&self, n: u32) {
        let retry = &self.inner.config.retry;
        let delay = retry
            .base_delay
            .saturating_mul(1 << n.min(16))
            .min(retry.max_delay);
        tokio::time::sleep(delay).await;
    }

    /// `GET {location}` with `Authorization: Bearer {access_token}`: the
    /// audio, at most [`MAX_RECORDING_BYTES`], tried [`ATTEMPTS`] times.
    ///
    /// # Errors
    ///
    /// The last failure: the status and a message (never the token).
    pub async fn download_recording(
        &self,
        location: &str,
        access_token: &str,
    ) -> Result<Vec<u8>, ControlError> {
        let url = Url::parse(location).map_err(|e| {
            ControlError::new(0, "BadRecordingLocation", format!("{location:?}: {e}"))
        })?;
        let mut last = None;
        for n in 0..ATTEMPTS {
            if n > 0 {
                self.recording_back_off(n).await;
            }
            match self.download_once(&url, access_token).await {
                Ok(audio) => return Ok(audio),
                Err(e) if retryable(e.status) => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| ControlError::new(0, "Transport", "no attempt made")))
    }

    async fn download_once(&self, url: &Url, token: &str) -> Result<Vec<u8>, ControlError> {
        let what = "downloading the recording";
        let mut response = self
            .inner
            .http
            .get(url.clone())
            .bearer_auth(token)
            .send()
            .await
            .map_err(|e| transport(what, &e))?;
        let status = response.status();
        if !status.is_success() {
            return Err(ControlError::new(
                status.as_u16(),
                "RecordingDownloadFailed",
                format!("{what}: HTTP {status}"),
            ));
        }
        if response
            .content_length()
            .is_some_and(|n| n > MAX_RECORDING_BYTES as u64)
        {
            return Err(too_large());
        }
        let mut audio = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| transport(what, &e))? {
            if audio.len() + chunk.len() > MAX_RECORDING_BYTES {
                return Err(too_large());
            }
            audio.extend_from_slice(&chunk);
        }
        Ok(audio)
    }

    /// Delivers `audio` as `name` where [`GraphConfig::recordings`](super::GraphConfig::recordings)
    /// says, tried [`ATTEMPTS`] times; where it went.
    ///
    /// # Errors
    ///
    /// No destination configured, or the last failure.
    pub async fn deliver_recording(
        &self,
        name: &str,
        audio: Vec<u8>,
    ) -> Result<String, ControlError> {
        let name = safe_name(name);
        match &self.inner.config.recordings {
            None => Err(ControlError::new(
                0,
                "NoRecordingsDestination",
                "no recordings destination is configured (--recordings DIR|URL)",
            )),
            Some(RecordingDelivery::Folder(dir)) => {
                let dir = dir.clone();
                tokio::task::spawn_blocking(move || {
                    std::fs::create_dir_all(&dir)?;
                    let path = dir.join(&name);
                    let partial = dir.join(format!(".{name}.partial"));
                    std::fs::write(&partial, &audio)?;
                    std::fs::rename(&partial, &path)?;
                    Ok::<_, std::io::Error>(path.display().to_string())
                })
                .await
                .map_err(|e| ControlError::new(0, "RecordingWriteFailed", e.to_string()))?
                .map_err(|e| ControlError::new(0, "RecordingWriteFailed", e.to_string()))
            }
            Some(RecordingDelivery::Post(url)) => {
                let mut last = None;
                for n in 0..ATTEMPTS {
                    if n > 0 {
                        self.recording_back_off(n).await;
                    }
                    let sent = self
                        .inner
                        .http
                        .post(url.clone())
                        .header("content-type", "audio/wav")
                        .header("x-callflow-recording", name.as_str())
                        .body(audio.clone())
                        .send()
                        .await;
                    let e = match sent {
                        Ok(r) if r.status().is_success() => return Ok(url.to_string()),
                        Ok(r) => ControlError::new(
                            r.status().as_u16(),
                            "RecordingDeliveryFailed",
                            format!("posting the recording to {url}: HTTP {}", r.status()),
                        ),
                        Err(e) => transport("posting the recording", &e),
                    };
                    if !retryable(e.status) {
                        return Err(e);
                    }
                    last = Some(e);
                }
                Err(last.unwrap_or_else(|| ControlError::new(0, "Transport", "no attempt made")))
            }
        }
    }
}

fn too_large() -> ControlError {
    ControlError::new(
        StatusCode::PAYLOAD_TOO_LARGE.as_u16(),
        "RecordingTooLarge",
        format!("the recording is larger than {MAX_RECORDING_BYTES} bytes"),
    )
}

/// `name` with anything but letters, digits, `-`, `_` and `.` replaced, and
/// no leading dot: a file name that stays in its folder.
fn safe_name(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    s.trim_start_matches('.').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_and_names() {
        assert_eq!(
            RecordingDelivery::parse("/var/voicemail"),
            Ok(RecordingDelivery::Folder("/var/voicemail".into()))
        );
        assert!(matches!(
            RecordingDelivery::parse("https://crm.contoso.com/voicemail"),
            Ok(RecordingDelivery::Post(_))
        ));
        assert!(RecordingDelivery::parse(" ").is_err());
        assert_eq!(safe_name("../../etc/passwd"), "_.._etc_passwd");
    }
}
