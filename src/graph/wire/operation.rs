//! Long-running operations (`commsOperation`) and Graph's error body.

use serde::{Deserialize, Serialize};

use super::result::ResultInfo;

wire_enum! {
    /// The `status` of a `commsOperation`.
    pub enum OperationStatus {
        /// Accepted, not started.
        NotStarted => "notStarted",
        /// Running; updates follow on `.../operations/{id}`.
        Running => "running",
        /// Done; no further notification follows.
        Completed => "completed",
        /// Failed; no further notification follows.
        Failed => "failed",
    }
}

impl OperationStatus {
    /// Whether no further notification will come for this operation.
    pub fn is_final(&self) -> bool {
        matches!(self, Self::Completed | Self::Failed)
    }
}

/// Graph's `commsOperation` (and its kinds: `playPromptOperation`,
/// `subscribeToToneOperation`, ...), as returned by the actions that start
/// one.
///
/// One that comes back already `completed` or `failed` gets no
/// notification; otherwise updates arrive on `.../calls/{id}/operations/{id}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommsOperation {
    /// The operation id.
    #[serde(default)]
    pub id: String,
    /// Where the operation stands.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<OperationStatus>,
    /// The `clientContext` the bot sent with the request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_context: Option<String>,
    /// The outcome, once there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result_info: Option<ResultInfo>,
    /// How a prompt or a recording ended (`completedSuccessfully`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completion_reason: Option<String>,
    /// Where a `recordResponse` recording can be fetched.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recording_location: Option<String>,
    /// The token needed to fetch the recording.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recording_access_token: Option<String>,
}

/// The `innerError` of a Graph error body.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InnerError {
    /// Graph's request id, to quote to Microsoft support.
    #[serde(rename = "request-id", skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// When the error happened (as Graph wrote it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub date: Option<String>,
    /// The `client-request-id` the caller sent.
    #[serde(rename = "client-request-id", skip_serializing_if = "Option::is_none")]
    pub client_request_id: Option<String>,
}

/// The `error` member of a Graph error body.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GraphErrorDetail {
    /// A machine-readable code (`BadRequest`, `UnknownError`, ...).
    #[serde(default)]
    pub code: String,
    /// A human-readable message.
    #[serde(default)]
    pub message: String,
    /// Request ids and date.
    #[serde(alias = "innererror", skip_serializing_if = "Option::is_none")]
    pub inner_error: Option<InnerError>,
}

/// The body Graph sends with a 4xx/5xx answer:
/// `{"error": {"code", "message", "innerError": {"request-id", "date", "client-request-id"}}}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("Microsoft Graph error {}: {}", .error.code, .error.message)]
pub struct GraphError {
    /// What went wrong.
    pub error: GraphErrorDetail,
}

impl GraphError {
    /// Graph's request id, if the body carries one.
    pub fn request_id(&self) -> Option<&str> {
        self.error.inner_error.as_ref()?.request_id.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graph_error_body_is_read() {
        let body = r#"{"error":{"code":"BadRequest","message":"Invalid callback","innerError":{
            "request-id":"a","date":"2020-05-28T00:10:54","client-request-id":"b"}}}"#;
        let error: GraphError = serde_json::from_str(body).expect("an error body");
        assert_eq!(error.request_id(), Some("a"));
        assert_eq!(
            error.to_string(),
            "Microsoft Graph error BadRequest: Invalid callback"
        );
    }

    #[test]
    fn operation_status_tells_when_it_is_over() {
        let op: CommsOperation =
            serde_json::from_str(r#"{"id":"1","status":"completed","clientContext":"c"}"#)
                .expect("reads");
        assert!(op.status.is_some_and(|s| s.is_final()));
    }
}
