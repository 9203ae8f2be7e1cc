//! A tolerant reader for the notifications Graph posts to a bot's callback.
//!
//! [`parse_batch`] turns the body of one callback POST (a `commsNotifications`
//! envelope, or a bare notification) into plain owned [`Notification`]s. It
//! accepts every variant Microsoft's pages and logs show: `subcode` or
//! `subCode`; codes as numbers or strings; `resourceUrl` or `resource`;
//! `/communications/calls/...`, `/app/calls/...` and
//! `/applications/{id}/calls/...` paths, with or without `/v1.0` or `/beta`;
//! `resourceData` as an object or an array; `@odata.type` present or absent;
//! `changeType` in any case. Unknown fields are ignored. Input that cannot be
//! understood gives a [`NotificationError`] naming the problem, never a panic.
//!
//! This module must never decide what a notification means for a flow, nor
//! check who sent it (authentication happens before the body is read); it
//! only reads.

use std::fmt;
use std::str::FromStr;

use serde::Deserialize;
use serde_json::{Map, Value};

use super::wire::{
    CallDirection, CallMediaState, CallState, ChatInfo, InvitationParticipantInfo, MeetingInfo,
    OperationStatus, Participant, ParticipantInfo, ResultInfo, ToneInfo, odata_short_name,
    odata_type_of,
};

/// The most notifications one callback body may carry; a bigger batch is
/// refused with [`NotificationError::TooMany`].
pub const MAX_BATCH_SIZE: usize = 1000;

/// What happened to the resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChangeType {
    /// The resource appeared (an incoming call, a content-sharing session).
    Created,
    /// The resource changed (a new call state, a roster change, ...).
    Updated,
    /// The resource is gone (a terminated call, a finished operation).
    Deleted,
}

impl ChangeType {
    /// Graph's spelling: `created`, `updated` or `deleted`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Updated => "updated",
            Self::Deleted => "deleted",
        }
    }

    /// Reads a change type in any ASCII case (`Deleted` is seen in logs).
    pub fn from_wire(value: &str) -> Option<Self> {
        [Self::Created, Self::Updated, Self::Deleted]
            .into_iter()
            .find(|kind| kind.as_str().eq_ignore_ascii_case(value.trim()))
    }
}

impl fmt::Display for ChangeType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which collection of calls a path goes through.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum CallsRoot {
    /// `/communications/calls/...` (current).
    Communications,
    /// `/app/calls/...` (deprecated).
    App,
    /// `/applications/{id}/calls/...` (old beta).
    Application(String),
}

/// What, inside a call, a notification is about.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ResourceTarget {
    /// The call itself.
    Call,
    /// One operation: `.../operations/{id}`.
    Operation(String),
    /// The roster (`.../participants`) or one participant (`.../participants/{id}`).
    Participants(Option<String>),
    /// Content sharing (`.../contentsharingsessions[/{id}]`).
    ContentSharingSessions(Option<String>),
    /// Anything else under the call, as the path's remaining segments.
    Other(Vec<String>),
}

/// A notification's resource path, taken apart.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ResourcePath {
    /// `v1.0` or `beta` when the path starts with one.
    pub api_version: Option<String>,
    /// Which collection of calls the path goes through.
    pub root: CallsRoot,
    /// The call id.
    pub call_id: String,
    /// What inside the call the path designates.
    pub target: ResourceTarget,
}

/// A resource path that does not designate a call or something in one.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "resource {resource:?} is not a call path ({reason}); expected /communications/calls/{{id}}[/...]"
)]
pub struct ResourcePathError {
    /// The path as received.
    pub resource: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl ResourcePath {
    /// Takes a call resource path apart. Accepts `/communications/calls/{id}`,
    /// `/app/calls/{id}`, `/applications/{appId}/calls/{id}`, optionally
    /// after `/v1.0` or `/beta` or a full `https://host` prefix, followed by
    /// nothing, `operations/{id}`, `participants[/{id}]` or
    /// `contentsharingsessions[/{id}]`. Keywords ignore ASCII case; ids are
    /// kept as written; a query string is dropped.
    ///
    /// # Errors
    ///
    /// A [`ResourcePathError`] when the path does not lead to a call.
    pub fn parse(resource: &str) -> Result<Self, ResourcePathError> {
        let fail = |reason| ResourcePathError {
            resource: resource.to_owned(),
            reason,
        };
        let mut path = resource.trim();
        for scheme in ["https://", "http://"] {
            if let Some(rest) = path.strip_prefix(scheme) {
                path = rest.find('/').map_or("", |slash| &rest[slash..]);
            }
        }
        let path = path.split(['?', '#']).next().unwrap_or("");
        let mut segments = path.split('/').filter(|s| !s.is_empty()).peekable();
        let is = |segment: Option<&&str>, word: &str| {
            segment.is_some_and(|s| s.eq_ignore_ascii_case(word))
        };

        let api_version = match segments.peek() {
            Some(s) if s.eq_ignore_ascii_case("v1.0") || s.eq_ignore_ascii_case("beta") => {
                segments.next().map(str::to_owned)
            }
            _ => None,
        };
        let root = match segments.next() {
            Some(s) if s.eq_ignore_ascii_case("communications") => CallsRoot::Communications,
            Some(s) if s.eq_ignore_ascii_case("app") => CallsRoot::App,
            Some(s) if s.eq_ignore_ascii_case("applications") => CallsRoot::Application(
                segments
                    .next()
                    .ok_or_else(|| fail("no application id"))?
                    .to_owned(),
            ),
            Some(_) => return Err(fail("unknown root")),
            None => return Err(fail("empty path")),
        };
        if !is(segments.peek(), "calls") {
            return Err(fail("no `calls` segment"));
        }
        segments.next();
        let call_id = segments
            .next()
            .ok_or_else(|| fail("no call id"))?
            .to_owned();
        let rest: Vec<&str> = segments.collect();
        let target = match rest.as_slice() {
            [] => ResourceTarget::Call,
            [kind, id] if kind.eq_ignore_ascii_case("operations") => {
                ResourceTarget::Operation((*id).to_owned())
            }
            [kind] if kind.eq_ignore_ascii_case("operations") => {
                return Err(fail("no operation id"));
            }
            [kind, id @ ..] if kind.eq_ignore_ascii_case("participants") && id.len() <= 1 => {
                ResourceTarget::Participants(id.first().map(|s| (*s).to_owned()))
            }
            [kind, id @ ..]
                if kind.eq_ignore_ascii_case("contentsharingsessions") && id.len() <= 1 =>
            {
                ResourceTarget::ContentSharingSessions(id.first().map(|s| (*s).to_owned()))
            }
            other => ResourceTarget::Other(other.iter().map(|s| (*s).to_owned()).collect()),
        };
        Ok(Self {
            api_version,
            root,
            call_id,
            target,
        })
    }

    /// The operation id, if the path designates an operation.
    pub fn operation_id(&self) -> Option<&str> {
        match &self.target {
            ResourceTarget::Operation(id) => Some(id),
            _ => None,
        }
    }

    /// Whether the path designates the call itself.
    pub fn is_call(&self) -> bool {
        self.target == ResourceTarget::Call
    }

    /// Whether the path designates the roster or a participant.
    pub fn is_participants(&self) -> bool {
        matches!(self.target, ResourceTarget::Participants(_))
    }

    /// Whether the path designates content sharing.
    pub fn is_content_sharing(&self) -> bool {
        matches!(self.target, ResourceTarget::ContentSharingSessions(_))
    }
}

impl FromStr for ResourcePath {
    type Err = ResourcePathError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// A `call` in a notification's `resourceData`: usually only a few fields
/// are set (`state`, perhaps `resultInfo`), the rest is `None`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CallPayload {
    /// The call id, when Graph repeats it.
    pub id: Option<String>,
    /// The new state.
    pub state: Option<CallState>,
    /// Incoming or outgoing.
    pub direction: Option<CallDirection>,
    /// The subject.
    pub subject: Option<String>,
    /// Why the call is in this state (transfer completed, failed, ...).
    pub result_info: Option<ResultInfo>,
    /// Why the call ended (`AppTransferred`, ...).
    pub termination_reason: Option<String>,
    /// A key press, after `subscribeToTone`.
    pub tone_info: Option<ToneInfo>,
    /// The caller (on an incoming call: `user` or `phone`).
    pub source: Option<ParticipantInfo>,
    /// Who was called (on an incoming call: the bot).
    #[serde(deserialize_with = "null_as_empty")]
    pub targets: Vec<InvitationParticipantInfo>,
    /// The meeting chat.
    pub chat_info: Option<ChatInfo>,
    /// The meeting.
    pub meeting_info: Option<MeetingInfo>,
    /// Whether audio flows.
    pub media_state: Option<CallMediaState>,
    /// After a failed consultative transfer: the context to resume with.
    pub replaces_context: Option<String>,
    /// The bot's participant id.
    pub my_participant_id: Option<String>,
    /// The tenant.
    pub tenant_id: Option<String>,
    /// The whole `resourceData`, as received.
    #[serde(skip)]
    pub raw: Value,
}

/// A `commsOperation` in a notification's `resourceData`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OperationPayload {
    /// The operation id: `resourceData.id`, or else the id in the path.
    pub id: Option<String>,
    /// The kind of operation from `@odata.type` (`commsOperation`,
    /// `playPromptOperation`, ...), without namespace.
    pub kind: Option<String>,
    /// Where the operation stands.
    pub status: Option<OperationStatus>,
    /// The `clientContext` the bot sent.
    pub client_context: Option<String>,
    /// The outcome; the old beta puts text here (`subCode: "transferring"`).
    pub result_info: Option<ResultInfo>,
    /// How a prompt or recording ended.
    pub completion_reason: Option<String>,
    /// Where a completed `recordResponse`'s recording can be downloaded.
    pub recording_location: Option<String>,
    /// The token that download needs.
    pub recording_access_token: Option<String>,
    /// The whole `resourceData`, as received.
    pub raw: Value,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct OperationFields {
    id: Option<String>,
    status: Option<OperationStatus>,
    client_context: Option<String>,
    result_info: Option<ResultInfo>,
    completion_reason: Option<String>,
    recording_location: Option<String>,
    recording_access_token: Option<String>,
}

/// What a notification carries, by resource kind.
#[derive(Clone, Debug, PartialEq)]
#[allow(
    clippy::large_enum_variant,
    reason = "short-lived plain data, a few per callback; boxing would only make matching clumsier"
)]
pub enum NotificationPayload {
    /// A call's new state and details (path `.../calls/{id}`).
    Call(CallPayload),
    /// An operation's progress (path `.../operations/{id}`).
    Operation(OperationPayload),
    /// Roster entries (path `.../participants`). With the delta roster the
    /// `deltaParticipants` wrappers are flattened; each participant keeps
    /// its `rosterSequenceNumber`, or gets the delta's `sequenceNumber`.
    Participants(Vec<Participant>),
    /// Anything else (content sharing, unknown resources), as received.
    Other(Value),
}

/// One notification, read.
#[derive(Clone, Debug, PartialEq)]
pub struct Notification {
    /// What happened.
    pub change_type: ChangeType,
    /// The resource path as received (`resourceUrl`, or else `resource`).
    pub resource: String,
    /// The resource path, taken apart.
    pub path: ResourcePath,
    /// The callback URI Graph names, if it does.
    pub callback_uri: Option<String>,
    /// What the notification carries.
    pub payload: NotificationPayload,
}

impl Notification {
    /// The call id the notification is about.
    pub fn call_id(&self) -> &str {
        &self.path.call_id
    }
}

/// Why a callback body could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NotificationError {
    /// Nothing but whitespace.
    #[error("notification body is empty")]
    Empty,
    /// The body stops in the middle of the JSON.
    #[error("notification body ends too early (line {line}, column {column}): it looks truncated")]
    Truncated {
        /// Where the body ends.
        line: usize,
        /// Where the body ends.
        column: usize,
    },
    /// The body is not JSON.
    #[error("notification body is not valid JSON (line {line}, column {column}): {message}")]
    Json {
        /// Where the error is.
        line: usize,
        /// Where the error is.
        column: usize,
        /// What the JSON parser says.
        message: String,
    },
    /// The body is JSON but not a notification envelope.
    #[error("notification body has the wrong shape: {0}")]
    Shape(String),
    /// The batch is over [`MAX_BATCH_SIZE`].
    #[error("notification batch holds {count} notifications, more than the limit of {limit}")]
    TooMany {
        /// How many the body holds.
        count: usize,
        /// The limit.
        limit: usize,
    },
    /// One entry of `value` is not an object.
    #[error("notification #{index} is {found}, not a JSON object")]
    NotAnObject {
        /// Its position in `value`, from 0.
        index: usize,
        /// What it is instead.
        found: &'static str,
    },
    /// One notification has no `changeType`.
    #[error("notification #{index} has no `changeType`")]
    MissingChangeType {
        /// Its position in `value`, from 0.
        index: usize,
    },
    /// One notification has a `changeType` other than created/updated/deleted.
    #[error(
        "notification #{index} has changeType {value}, expected \"created\", \"updated\" or \"deleted\""
    )]
    UnknownChangeType {
        /// Its position in `value`, from 0.
        index: usize,
        /// The value, as JSON.
        value: String,
    },
    /// One notification has neither `resourceUrl` nor `resource`.
    #[error("notification #{index} has no `resourceUrl` or `resource` string")]
    MissingResource {
        /// Its position in `value`, from 0.
        index: usize,
    },
    /// One notification's resource is not a call path.
    #[error("notification #{index}: {source}")]
    BadResource {
        /// Its position in `value`, from 0.
        index: usize,
        /// What is wrong with the path.
        source: ResourcePathError,
    },
    /// One notification's `resourceData` does not have the shape its kind needs.
    #[error(
        "notification #{index} on {resource}: resourceData is not a valid {expected}: {message}"
    )]
    BadPayload {
        /// Its position in `value`, from 0.
        index: usize,
        /// The resource path.
        resource: String,
        /// The kind expected (`call`, `commsOperation`, `participant list`).
        expected: &'static str,
        /// What does not fit.
        message: String,
    },
}

impl NotificationError {
    /// A short, stable name of the problem, for metrics and error codes.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Empty => "empty",
            Self::Truncated { .. } | Self::Json { .. } => "invalid_json",
            Self::Shape(_) => "bad_shape",
            Self::TooMany { .. } => "too_many",
            Self::NotAnObject { .. } => "not_an_object",
            Self::MissingChangeType { .. } | Self::UnknownChangeType { .. } => "bad_change_type",
            Self::MissingResource { .. } | Self::BadResource { .. } => "bad_resource",
            Self::BadPayload { .. } => "bad_payload",
        }
    }

    fn from_json(error: &serde_json::Error) -> Self {
        let (line, column) = (error.line(), error.column());
        if error.is_eof() {
            Self::Truncated { line, column }
        } else {
            let message = error.to_string();
            // serde_json appends " at line L column C"; the variant says it already.
            let message = message
                .rsplit_once(" at line ")
                .map_or(message.as_str(), |(m, _)| m)
                .to_owned();
            Self::Json {
                line,
                column,
                message,
            }
        }
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn null_as_empty<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(deserializer)?.unwrap_or_default())
}

/// A callback body, read: Graph's notifications, or the legacy (Skype
/// calling) first notification of an incoming call.
#[derive(Clone, Debug, PartialEq)]
pub enum CallbackBody {
    /// A `commsNotifications` batch: the entries that read, and those that did not.
    Graph(Batch),
    /// The legacy Skype-calling format (Bot Builder v3's `conversation`):
    /// Microsoft's "protocol determination" asks the bot to answer `204 No
    /// Content`, and Graph posts the same notification again in its own format.
    LegacySkype,
}

/// The notifications of one callback body.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Batch {
    /// Every entry that reads, in order (an array of calls on a call's
    /// path gives one notification per call).
    pub notifications: Vec<Notification>,
    /// Every entry that does not, with why: the others are not lost for it.
    pub refused: Vec<RefusedEntry>,
}

/// One entry of a batch that does not read.
#[derive(Clone, Debug, PartialEq)]
pub struct RefusedEntry {
    /// The call it names, when its resource path says.
    pub call_id: Option<String>,
    /// Its resource path as written, if any.
    pub resource: Option<String>,
    /// Why it was refused.
    pub error: NotificationError,
}

impl RefusedEntry {
    /// A short, stable reason for metrics (`bad_payload`, `bad_resource`, …).
    pub fn reason(&self) -> &'static str {
        self.error.reason()
    }
}

/// Whether `root` is the legacy Skype-calling notification (Bot Builder
/// v3's `conversation` or `conversationResult`): no `value` or `changeType`,
/// but the fields that format has (`participants`, `callState`,
/// `presentedModalityTypes`, `isMultiparty`, `operationOutcome`).
fn is_legacy_skype(root: &Map<String, Value>) -> bool {
    if root.contains_key("value") || root.contains_key("changeType") {
        return false;
    }
    let conversation = root.get("participants").is_some_and(Value::is_array)
        && ["callState", "presentedModalityTypes", "isMultiparty"]
            .iter()
            .any(|k| root.contains_key(*k));
    let result = root.contains_key("operationOutcome") && root.contains_key("conversationResult")
        || root.contains_key("conversationResult") && root.contains_key("appState");
    conversation || result
}

/// Reads the body of one callback POST, strictly: one entry that does not
/// read fails the whole body (for scenario recordings and tools; the
/// server uses [`read_callback`], which keeps the entries that read).
///
/// Accepts a `commsNotifications` envelope (`{"value": [...]}`), a bare
/// array of notifications, or one notification without envelope. An empty
/// `value` gives an empty list.
///
/// # Errors
///
/// A [`NotificationError`] naming the problem when the body is empty,
/// truncated, not JSON, not shaped like notifications (the legacy Skype
/// format included), larger than [`MAX_BATCH_SIZE`], or holds a
/// notification without a known `changeType`, without a call resource
/// path, or whose `resourceData` does not fit its kind; the error says
/// which (`#index`).
pub fn parse_batch(body: &[u8]) -> Result<Vec<Notification>, NotificationError> {
    match read_callback(body)? {
        CallbackBody::Graph(batch) => match batch.refused.into_iter().next() {
            Some(refused) => Err(refused.error),
            None => Ok(batch.notifications),
        },
        CallbackBody::LegacySkype => Err(NotificationError::Shape(
            "this is the legacy Skype calling format, not a Graph notification".into(),
        )),
    }
}

/// Reads the body of one callback POST, keeping every entry that reads.
///
/// # Errors
///
/// A [`NotificationError`] when the body as a whole cannot be read: empty,
/// truncated, not JSON, not shaped like notifications, or larger than
/// [`MAX_BATCH_SIZE`]. An entry that does not read is not an error of the
/// body: it is in [`Batch::refused`].
pub fn read_callback(body: &[u8]) -> Result<CallbackBody, NotificationError> {
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(NotificationError::Empty);
    }
    let root: Value = serde_json::from_slice(body).map_err(|e| NotificationError::from_json(&e))?;
    let items = match root {
        Value::Object(envelope) if is_legacy_skype(&envelope) => {
            return Ok(CallbackBody::LegacySkype);
        }
        Value::Object(mut envelope) => match envelope.remove("value") {
            Some(Value::Array(items)) => items,
            Some(other) => {
                return Err(NotificationError::Shape(format!(
                    "`value` must be an array of notifications, found {}",
                    json_kind(&other)
                )));
            }
            None if envelope.contains_key("changeType")
                || envelope.contains_key("resourceData") =>
            {
                vec![Value::Object(envelope)]
            }
            None => {
                let keys: Vec<&str> = envelope.keys().map(String::as_str).take(10).collect();
                return Err(NotificationError::Shape(format!(
                    "expected a `value` array of notifications or a single notification with `changeType`, \
                     found an object with keys {keys:?}"
                )));
            }
        },
        Value::Array(items) => items,
        other => {
            return Err(NotificationError::Shape(format!(
                "expected a JSON object with a `value` array, found {}",
                json_kind(&other)
            )));
        }
    };
    if items.len() > MAX_BATCH_SIZE {
        return Err(NotificationError::TooMany {
            count: items.len(),
            limit: MAX_BATCH_SIZE,
        });
    }
    let mut batch = Batch::default();
    for (index, item) in items.into_iter().enumerate() {
        let resource = item
            .as_object()
            .and_then(|f| string_field(f, "resourceUrl").or_else(|| string_field(f, "resource")))
            .map(str::to_owned);
        match parse_one(index, item) {
            Ok(read) => batch.notifications.extend(read),
            Err(error) => batch.refused.push(RefusedEntry {
                call_id: resource
                    .as_deref()
                    .and_then(|r| ResourcePath::parse(r).ok())
                    .map(|p| p.call_id),
                resource,
                error,
            }),
        }
    }
    Ok(CallbackBody::Graph(batch))
}

fn parse_one(index: usize, item: Value) -> Result<Vec<Notification>, NotificationError> {
    let Value::Object(mut fields) = item else {
        return Err(NotificationError::NotAnObject {
            index,
            found: json_kind(&item),
        });
    };
    let change_type = match fields.get("changeType") {
        None | Some(Value::Null) => return Err(NotificationError::MissingChangeType { index }),
        Some(Value::String(text)) => ChangeType::from_wire(text),
        Some(_) => None,
    };
    let change_type = change_type.ok_or_else(|| NotificationError::UnknownChangeType {
        index,
        value: fields
            .get("changeType")
            .map(Value::to_string)
            .unwrap_or_default(),
    })?;
    let resource = string_field(&fields, "resourceUrl")
        .or_else(|| string_field(&fields, "resource"))
        .ok_or(NotificationError::MissingResource { index })?
        .to_owned();
    let path = ResourcePath::parse(&resource)
        .map_err(|source| NotificationError::BadResource { index, source })?;
    let callback_uri = string_field(&fields, "callbackUri").map(str::to_owned);
    let data = fields.remove("resourceData").unwrap_or(Value::Null);
    let bad = |(expected, message): PayloadError| NotificationError::BadPayload {
        index,
        resource: resource.clone(),
        expected,
        message,
    };
    // A call's path with an array of calls (tagged or not): one
    // notification per call, as Graph's docs allow `resourceData` either way.
    let payloads = match data {
        Value::Array(items)
            if path.is_call() && !items.is_empty() && items.iter().all(is_call_object) =>
        {
            items
                .into_iter()
                .map(|item| read_payload(&path, item).map_err(bad))
                .collect::<Result<Vec<_>, _>>()?
        }
        data => vec![read_payload(&path, data).map_err(bad)?],
    };
    Ok(payloads
        .into_iter()
        .map(|payload| Notification {
            change_type,
            resource: resource.clone(),
            path: path.clone(),
            callback_uri: callback_uri.clone(),
            payload,
        })
        .collect())
}

/// Whether an entry of a `resourceData` array on a call's path is a call:
/// tagged `#microsoft.graph.call`, or an untagged object.
fn is_call_object(item: &Value) -> bool {
    match odata_type_of(item) {
        Some(tag) => odata_short_name(tag).eq_ignore_ascii_case("call"),
        None => item.is_object(),
    }
}

fn string_field<'a>(fields: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    fields
        .get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// The kind of payload, from `@odata.type` first, then from the path.
#[derive(Clone, Copy)]
enum PayloadKind {
    Call,
    Operation,
    Participants,
    Other,
}

fn payload_kind(path: &ResourcePath, data: &Value) -> PayloadKind {
    let tagged = match data {
        Value::Array(items) => items.first().and_then(odata_type_of),
        other => odata_type_of(other),
    };
    if let Some(tag) = tagged.map(odata_short_name) {
        let is = |name: &str| tag.eq_ignore_ascii_case(name);
        if is("call") {
            return PayloadKind::Call;
        }
        if tag.to_ascii_lowercase().ends_with("operation") {
            return PayloadKind::Operation;
        }
        if is("participant") || is("deltaParticipants") {
            return PayloadKind::Participants;
        }
    }
    match (&path.target, data) {
        (ResourceTarget::Call, Value::Object(_) | Value::Null) => PayloadKind::Call,
        (ResourceTarget::Operation(_), Value::Object(_)) => PayloadKind::Operation,
        (ResourceTarget::Participants(_), Value::Array(_) | Value::Object(_)) => {
            PayloadKind::Participants
        }
        _ => PayloadKind::Other,
    }
}

type PayloadError = (&'static str, String);

fn read_payload(path: &ResourcePath, data: Value) -> Result<NotificationPayload, PayloadError> {
    Ok(match payload_kind(path, &data) {
        PayloadKind::Call => {
            let mut call = if data.is_null() {
                CallPayload::default()
            } else {
                CallPayload::deserialize(&data).map_err(|e| ("call", e.to_string()))?
            };
            call.raw = data;
            NotificationPayload::Call(call)
        }
        PayloadKind::Operation => {
            let fields = OperationFields::deserialize(&data)
                .map_err(|e| ("commsOperation", e.to_string()))?;
            NotificationPayload::Operation(OperationPayload {
                id: fields.id.or_else(|| path.operation_id().map(str::to_owned)),
                kind: odata_type_of(&data).map(|t| odata_short_name(t).to_owned()),
                status: fields.status,
                client_context: fields.client_context,
                result_info: fields.result_info,
                completion_reason: fields.completion_reason,
                recording_location: fields.recording_location,
                recording_access_token: fields.recording_access_token,
                raw: data,
            })
        }
        PayloadKind::Participants => NotificationPayload::Participants(read_participants(data)?),
        PayloadKind::Other => NotificationPayload::Other(data),
    })
}

/// Reads a roster: an array of participants, an array of
/// `deltaParticipants {participants, sequenceNumber}`, or one participant.
fn read_participants(data: Value) -> Result<Vec<Participant>, PayloadError> {
    let bad = |e: serde_json::Error| ("participant list", e.to_string());
    let entries = match data {
        Value::Array(entries) => entries,
        single => vec![single],
    };
    let mut participants = Vec::new();
    for entry in entries {
        match entry.get("participants") {
            Some(inner) if entry.get("info").is_none() => {
                let sequence = entry.get("sequenceNumber").and_then(Value::as_i64);
                let batch: Vec<Participant> = null_as_empty(inner).map_err(bad)?;
                participants.extend(batch.into_iter().map(|mut p| {
                    p.roster_sequence_number = p.roster_sequence_number.or(sequence);
                    p
                }));
            }
            _ => participants.push(Participant::deserialize(&entry).map_err(bad)?),
        }
    }
    Ok(participants)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_in_every_spelling() {
        let p = ResourcePath::parse("/communications/calls/abc").expect("a call path");
        assert_eq!(
            (p.root, p.call_id.as_str(), p.target),
            (CallsRoot::Communications, "abc", ResourceTarget::Call)
        );
        let p =
            ResourcePath::parse("/beta/app/calls/ABC/operations/OP").expect("an operation path");
        assert_eq!(
            (p.api_version.as_deref(), &p.root, p.operation_id()),
            (Some("beta"), &CallsRoot::App, Some("OP"))
        );
        let p = ResourcePath::parse(
            "https://graph.microsoft.com/v1.0/applications/app1/calls/c1/participants?x=1",
        )
        .expect("a roster path");
        assert_eq!(p.root, CallsRoot::Application("app1".into()));
        assert_eq!(p.target, ResourceTarget::Participants(None));
        let p = ResourcePath::parse("/Communications/Calls/c/ContentSharingSessions/s1/")
            .expect("a sharing path");
        assert_eq!(
            p.target,
            ResourceTarget::ContentSharingSessions(Some("s1".into()))
        );
        let p = ResourcePath::parse("/communications/calls/c/audioRoutingGroups/g")
            .expect("another path");
        assert_eq!(
            p.target,
            ResourceTarget::Other(vec!["audioRoutingGroups".into(), "g".into()])
        );
    }

    #[test]
    fn non_call_paths_are_refused() {
        for bad in [
            "",
            "/",
            "/communications",
            "/communications/calls",
            "/users/x",
            "/applications",
            "/communications/onlineMeetings/x",
            "/app/calls/c/operations",
        ] {
            assert!(
                ResourcePath::parse(bad).is_err(),
                "{bad:?} should be refused"
            );
        }
    }

    #[test]
    fn change_types_ignore_case() {
        assert_eq!(ChangeType::from_wire("Deleted"), Some(ChangeType::Deleted));
        assert_eq!(ChangeType::from_wire("CREATED"), Some(ChangeType::Created));
        assert_eq!(ChangeType::from_wire("moved"), None);
    }

    fn call_state(n: &Notification) -> Option<&CallState> {
        match &n.payload {
            NotificationPayload::Call(c) => c.state.as_ref(),
            _ => None,
        }
    }

    #[test]
    fn an_array_of_calls_reads_tagged_or_not() {
        for data in [
            serde_json::json!([{"@odata.type": "#microsoft.graph.call", "state": "Established"}]),
            serde_json::json!([{"state": "established"}]),
        ] {
            let body = serde_json::json!({"value": [{
                "changeType": "Updated", "resourceUrl": "/communications/calls/c1", "resourceData": data
            }]});
            let read = parse_batch(body.to_string().as_bytes()).expect("reads");
            assert_eq!(read.len(), 1, "{body}");
            assert_eq!(read[0].change_type, ChangeType::Updated);
            assert_eq!(
                call_state(&read[0]),
                Some(&CallState::Established),
                "{body}"
            );
        }
        let two = serde_json::json!({"value": [{
            "changeType": "updated", "resourceUrl": "/communications/calls/c1",
            "resourceData": [{"state": "transferring"}, {"state": "transferAccepted"}]
        }]});
        let read = parse_batch(two.to_string().as_bytes()).expect("reads");
        assert_eq!(read.len(), 2);
        assert_eq!(call_state(&read[1]), Some(&CallState::TransferAccepted));
    }

    #[test]
    fn a_broken_entry_costs_its_neighbours_nothing() {
        let body = serde_json::json!({"value": [
            {"changeType": "deleted", "resourceUrl": "/communications/calls/c1",
             "resourceData": {"state": "terminated"}},
            {"changeType": "updated", "resourceUrl": "/communications/calls/c2",
             "resourceData": {"state": 7}},
            "not an object",
        ]});
        let CallbackBody::Graph(batch) = read_callback(body.to_string().as_bytes()).expect("reads")
        else {
            panic!("a Graph batch");
        };
        assert_eq!(batch.notifications.len(), 1);
        assert_eq!(
            call_state(&batch.notifications[0]),
            Some(&CallState::Terminated)
        );
        let reasons: Vec<(&str, Option<&str>)> = batch
            .refused
            .iter()
            .map(|r| (r.reason(), r.call_id.as_deref()))
            .collect();
        assert_eq!(
            reasons,
            [("bad_payload", Some("c2")), ("not_an_object", None)]
        );
        assert!(parse_batch(body.to_string().as_bytes()).is_err(), "strict");
    }

    #[test]
    fn the_legacy_skype_format_is_recognised() {
        let legacy = serde_json::json!({
            "id": "x", "participants": [{"identity": "29:a", "originator": true}],
            "isMultiparty": false, "presentedModalityTypes": ["audio"], "callState": "incoming"
        });
        assert_eq!(
            read_callback(legacy.to_string().as_bytes()),
            Ok(CallbackBody::LegacySkype)
        );
        // A Graph notification with a `participants` field is not legacy.
        let graph = serde_json::json!({"changeType": "created", "resourceUrl": "/communications/calls/c",
            "participants": [], "callState": "x"});
        assert!(matches!(
            read_callback(graph.to_string().as_bytes()),
            Ok(CallbackBody::Graph(_))
        ));
    }
}
