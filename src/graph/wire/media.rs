//! Media: who hosts it, what is pre-fetched, modalities, tones.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use super::odata::{has_type, odata_type_of, serialize_tagged};

wire_enum! {
    /// A media modality (`requestedModalities`, `mediaType`).
    pub enum Modality {
        /// Audio.
        Audio => "audio",
        /// Video.
        Video => "video",
        /// Screen sharing carried as video.
        VideoBasedScreenSharing => "videoBasedScreenSharing",
        /// Data.
        Data => "data",
    }
}

wire_enum! {
    /// Whether a media kind is flowing (`mediaState.audio`).
    pub enum MediaState {
        /// Media flows.
        Active => "active",
        /// Media stopped (for example just before a transfer completes).
        Inactive => "inactive",
    }
}

/// A call's `mediaState`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CallMediaState {
    /// The state of the audio.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audio: Option<MediaState>,
}

/// Graph's `mediaInfo`: an audio file Graph can fetch and play.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MediaInfo {
    /// Where Graph fetches the file (HTTPS, WAV).
    #[serde(default)]
    pub uri: String,
    /// An id the bot chooses so Graph can cache the file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_id: Option<String>,
}

impl MediaInfo {
    /// A media file at `uri`, without a cache id.
    pub fn new(uri: impl Into<String>) -> Self {
        Self {
            uri: uri.into(),
            resource_id: None,
        }
    }

    /// The same file with a cache id.
    pub fn with_resource_id(mut self, resource_id: impl Into<String>) -> Self {
        self.resource_id = Some(resource_id.into());
        self
    }
}

/// `serviceHostedMediaConfig`: Graph plays prompts and collects tones.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceHostedMediaConfig {
    /// Files Graph should fetch before they are played.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pre_fetch_media: Option<Vec<MediaInfo>>,
    /// Whether to keep the bot out of the default audio group.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remove_from_default_audio_group: Option<bool>,
}

/// `appHostedMediaConfig`: the bot hosts the media itself.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppHostedMediaConfig {
    /// The media session configuration produced by the media SDK.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blob: Option<String>,
    /// Whether to keep the bot out of the default audio group.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remove_from_default_audio_group: Option<bool>,
}

/// A call's `mediaConfig`, told apart by `@odata.type`.
///
/// Written with the right `@odata.type`. Read from the tag; without one, a
/// `blob` means app-hosted and `preFetchMedia` service-hosted; anything else
/// is kept as [`MediaConfig::Other`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MediaConfig {
    /// `#microsoft.graph.serviceHostedMediaConfig`.
    ServiceHosted(ServiceHostedMediaConfig),
    /// `#microsoft.graph.appHostedMediaConfig`.
    AppHosted(AppHostedMediaConfig),
    /// A media config this crate does not know, kept verbatim.
    Other(Value),
}

const SERVICE_HOSTED: &str = "#microsoft.graph.serviceHostedMediaConfig";
const APP_HOSTED: &str = "#microsoft.graph.appHostedMediaConfig";

impl MediaConfig {
    /// Service-hosted media with nothing pre-fetched.
    pub fn service_hosted() -> Self {
        Self::ServiceHosted(ServiceHostedMediaConfig::default())
    }

    /// Service-hosted media with files to pre-fetch.
    pub fn service_hosted_with_prefetch(media: Vec<MediaInfo>) -> Self {
        Self::ServiceHosted(ServiceHostedMediaConfig {
            pre_fetch_media: Some(media),
            ..Default::default()
        })
    }

    /// App-hosted media with the media SDK's session blob.
    pub fn app_hosted(blob: impl Into<String>) -> Self {
        Self::AppHosted(AppHostedMediaConfig {
            blob: Some(blob.into()),
            ..Default::default()
        })
    }

    /// The `@odata.type` this config is written with (`None` for `Other`
    /// without a tag).
    pub fn odata_type(&self) -> Option<&str> {
        match self {
            Self::ServiceHosted(_) => Some(SERVICE_HOSTED),
            Self::AppHosted(_) => Some(APP_HOSTED),
            Self::Other(value) => odata_type_of(value),
        }
    }
}

impl Serialize for MediaConfig {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::ServiceHosted(inner) => serialize_tagged(SERVICE_HOSTED, inner, serializer),
            Self::AppHosted(inner) => serialize_tagged(APP_HOSTED, inner, serializer),
            Self::Other(value) => value.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for MediaConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        let service = has_type(&value, "serviceHostedMediaConfig");
        let app = has_type(&value, "appHostedMediaConfig");
        let untagged = odata_type_of(&value).is_none();
        if app || (untagged && value.get("blob").is_some()) {
            serde_json::from_value(value)
                .map(Self::AppHosted)
                .map_err(D::Error::custom)
        } else if service || (untagged && value.get("preFetchMedia").is_some()) {
            serde_json::from_value(value)
                .map(Self::ServiceHosted)
                .map_err(D::Error::custom)
        } else {
            Ok(Self::Other(value))
        }
    }
}

wire_enum! {
    /// A key press reported in `toneInfo.tone`.
    pub enum Tone {
        /// Key 0.
        Tone0 => "tone0",
        /// Key 1.
        Tone1 => "tone1",
        /// Key 2.
        Tone2 => "tone2",
        /// Key 3.
        Tone3 => "tone3",
        /// Key 4.
        Tone4 => "tone4",
        /// Key 5.
        Tone5 => "tone5",
        /// Key 6.
        Tone6 => "tone6",
        /// Key 7.
        Tone7 => "tone7",
        /// Key 8.
        Tone8 => "tone8",
        /// Key 9.
        Tone9 => "tone9",
        /// Key `*`.
        Star => "star",
        /// Key `#`.
        Pound => "pound",
        /// Key A.
        A => "a",
        /// Key B.
        B => "b",
        /// Key C.
        C => "c",
        /// Key D.
        D => "d",
        /// A hook flash.
        Flash => "flash",
    }
}

impl Tone {
    /// The key as a character (`'0'`–`'9'`, `'*'`, `'#'`, `'A'`–`'D'`);
    /// `None` for a flash or an unknown tone.
    pub fn as_char(&self) -> Option<char> {
        Some(match self {
            Self::Tone0 => '0',
            Self::Tone1 => '1',
            Self::Tone2 => '2',
            Self::Tone3 => '3',
            Self::Tone4 => '4',
            Self::Tone5 => '5',
            Self::Tone6 => '6',
            Self::Tone7 => '7',
            Self::Tone8 => '8',
            Self::Tone9 => '9',
            Self::Star => '*',
            Self::Pound => '#',
            Self::A => 'A',
            Self::B => 'B',
            Self::C => 'C',
            Self::D => 'D',
            Self::Flash | Self::Unknown(_) => return None,
        })
    }
}

/// A call's `toneInfo`: one key press, after `subscribeToTone`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToneInfo {
    /// Increases with each key press; use it to drop repeats.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sequence_id: Option<i64>,
    /// The key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tone: Option<Tone>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn media_config_is_written_with_its_tag() {
        let json = serde_json::to_value(MediaConfig::app_hosted("<blob>")).expect("serialises");
        assert_eq!(json, json!({"@odata.type": APP_HOSTED, "blob": "<blob>"}));
    }

    #[test]
    fn media_config_without_tag_is_inferred_or_kept() {
        let app: MediaConfig = serde_json::from_value(json!({"blob": "x"})).expect("reads");
        assert_eq!(app, MediaConfig::app_hosted("x"));
        let service: MediaConfig =
            serde_json::from_value(json!({"preFetchMedia": []})).expect("reads");
        assert!(matches!(service, MediaConfig::ServiceHosted(_)));
        let other: MediaConfig =
            serde_json::from_value(json!({"@odata.type": "#x.y"})).expect("reads");
        assert_eq!(other.odata_type(), Some("#x.y"));
    }

    #[test]
    fn tones_map_to_keys() {
        let info: ToneInfo =
            serde_json::from_value(json!({"sequenceId": 3, "tone": "pound"})).expect("reads");
        assert_eq!(info.tone.and_then(|t| t.as_char()), Some('#'));
        assert_eq!(Tone::Tone7.as_char(), Some('7'));
    }
}
