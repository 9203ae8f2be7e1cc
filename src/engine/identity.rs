//! Who the bot is, and which of its identities a session speaks as.
//!
//! A bot is an Entra application (its `applicationId`) in a tenant, and it
//! usually owns one or more **application instances**: Teams resource
//! accounts, each with its own object id and, often, a phone number. Graph
//! places a call to a phone number, or transfers to one, only when it goes
//! out as an application instance (the create-call and transfer reference
//! pages), so a session must know which instance it speaks as. The rule is
//! here, pure, so that production (the runtime) and the simulator choose the
//! same way:
//!
//! - a session started by an incoming call speaks as the instance that was
//!   called (the call's target names its id or its number); a call to the
//!   application itself, or to an instance nobody configured, speaks as the
//!   default instance (the first one configured), or as the application
//!   when there is none;
//! - a session started through the API (an `api` flow) speaks as the
//!   instance its flow names in `from:` (an id or a number), else as the
//!   default one.
//!
//! - a `call` whose `from:` names an instance (an id or a number) goes out
//!   as that instance, whatever the session speaks as otherwise.
//!
//! Nothing here does I/O; [`BotIdentity::bot`] only builds the [`Bot`] a
//! [`Session`](super::Session) carries.

use serde::{Deserialize, Serialize};

use super::event::Party;
use super::session::Bot;

/// One application instance (a resource account) of the bot.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Instance {
    /// The instance's object id (Graph's `applicationInstance.id`).
    pub id: String,
    /// Its phone number in E.164, if it has one (how callers reach it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<String>,
    /// The name Graph shows for it (`displayName`); the bot's name when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl Instance {
    /// Whether `who` (an id or an E.164 number) names this instance.
    pub fn is(&self, who: &str) -> bool {
        let who = who.trim();
        self.id.eq_ignore_ascii_case(who) || self.number.as_deref() == Some(who)
    }
}

impl std::str::FromStr for Instance {
    type Err = String;

    /// `ID`, `ID,+NUMBER` or `ID,+NUMBER,Display name` (the number may be
    /// empty: `ID,,Display name`).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut parts = text.splitn(3, ',').map(str::trim);
        let id = parts.next().unwrap_or_default();
        if id.is_empty() {
            return Err(format!(
                "instance {text:?}: expected ID[,+NUMBER[,NAME]], e.g. \
                 3d913abb-aec0-4964-8fa6-3c6850c4f278,+14255550100,Reception"
            ));
        }
        let number = parts.next().filter(|n| !n.is_empty()).map(str::to_owned);
        if let Some(n) = &number
            && !(n.starts_with('+') && n.len() > 2 && n[1..].bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(format!(
                "instance {text:?}: the number {n:?} is not in E.164 (+ and digits)"
            ));
        }
        let name = parts.next().filter(|n| !n.is_empty()).map(str::to_owned);
        Ok(Instance {
            id: id.to_owned(),
            number,
            name,
        })
    }
}

/// Everything the configuration says about who the bot is.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BotIdentity {
    /// The application (client) id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application_id: Option<String>,
    /// The bot's display name (for the application, and instances without one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// The tenant it places calls in (`tenantId` of every create call).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    /// Its application instances; the first is the default.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub instances: Vec<Instance>,
}

/// An `api` flow's `from:` names no configured instance.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "`from: {from}` names no application instance of the bot (configured: {known}); \
     add it with --instance or `[[instances]]` in the config file"
)]
pub struct UnknownInstance {
    /// What the flow says.
    pub from: String,
    /// The configured instances, for the message.
    pub known: String,
}

impl BotIdentity {
    /// The instance called `who` (an id or a number), if configured.
    pub fn instance(&self, who: &str) -> Option<&Instance> {
        self.instances.iter().find(|i| i.is(who))
    }

    /// The instance a call to `to` reached: by the target's
    /// application-instance id, else by the number dialled.
    pub fn called(&self, to: &Party) -> Option<&Instance> {
        to.application
            .as_deref()
            .and_then(|id| self.instance(id))
            .or_else(|| to.phone.as_deref().and_then(|n| self.instance(n)))
    }

    /// The [`Bot`] of a session reached at `callback_uri` that speaks as
    /// `instance` (or as the default instance, or as the application).
    pub fn bot(&self, callback_uri: &str, instance: Option<&Instance>) -> Bot {
        let instance = instance.or(self.instances.first());
        Bot {
            callback_uri: callback_uri.to_owned(),
            application_id: self.application_id.clone(),
            application_instance_id: instance.map(|i| i.id.clone()),
            display_name: instance
                .and_then(|i| i.name.clone())
                .or_else(|| self.display_name.clone()),
            tenant_id: self.tenant_id.clone(),
            instances: self.instances.clone(),
        }
    }

    /// The [`Bot`] of a session started by an incoming call to `to`.
    pub fn for_incoming(&self, callback_uri: &str, to: &Party) -> Bot {
        self.bot(callback_uri, self.called(to))
    }

    /// The [`Bot`] of an `api` run whose flow says `from` (or nothing).
    ///
    /// # Errors
    ///
    /// [`UnknownInstance`] when `from` names no configured instance.
    pub fn for_api(&self, callback_uri: &str, from: Option<&str>) -> Result<Bot, UnknownInstance> {
        match from {
            None => Ok(self.bot(callback_uri, None)),
            Some(who) => match self.instance(who) {
                Some(i) => Ok(self.bot(callback_uri, Some(i))),
                None => Err(UnknownInstance {
                    from: who.to_owned(),
                    known: if self.instances.is_empty() {
                        "none".to_owned()
                    } else {
                        self.instances
                            .iter()
                            .map(|i| i.number.clone().unwrap_or_else(|| i.id.clone()))
                            .collect::<Vec<_>>()
                            .join(", ")
                    },
                }),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity() -> BotIdentity {
        BotIdentity {
            application_id: Some("app".into()),
            display_name: Some("Contoso Bot".into()),
            tenant_id: Some("tenant".into()),
            instances: vec![
                "i-main,+14255550100,Reception"
                    .parse()
                    .expect("an instance"),
                "i-branch,+12065550180".parse().expect("an instance"),
            ],
        }
    }

    #[test]
    fn the_called_instance_is_the_sessions() {
        let id = identity();
        let bot = id.for_incoming("https://cb", &Party::phone("+12065550180"));
        assert_eq!(bot.application_instance_id.as_deref(), Some("i-branch"));
        assert_eq!(bot.display_name.as_deref(), Some("Contoso Bot"));
        assert_eq!(bot.tenant_id.as_deref(), Some("tenant"));
        let by_id = Party {
            application: Some("I-MAIN".into()),
            ..Party::default()
        };
        let bot = id.for_incoming("https://cb", &by_id);
        assert_eq!(bot.application_instance_id.as_deref(), Some("i-main"));
        assert_eq!(bot.display_name.as_deref(), Some("Reception"));
        // A call to the application itself speaks as the default instance.
        let app = Party {
            application: Some("app".into()),
            ..Party::default()
        };
        let bot = id.for_incoming("https://cb", &app);
        assert_eq!(bot.application_instance_id.as_deref(), Some("i-main"));
    }

    #[test]
    fn api_runs_speak_as_their_from_or_the_default() {
        let id = identity();
        let bot = id
            .for_api("https://cb", Some("+12065550180"))
            .expect("known");
        assert_eq!(bot.application_instance_id.as_deref(), Some("i-branch"));
        let bot = id.for_api("https://cb", None).expect("default");
        assert_eq!(bot.application_instance_id.as_deref(), Some("i-main"));
        let e = id
            .for_api("https://cb", Some("+33100000000"))
            .expect_err("unknown");
        assert!(e.to_string().contains("+14255550100, +12065550180"), "{e}");
        let none = BotIdentity::default()
            .for_api("https://cb", None)
            .expect("app");
        assert_eq!(none.application_instance_id, None);
    }

    #[test]
    fn instances_parse_from_one_string() {
        let i: Instance = "abc,,Front desk".parse().expect("no number");
        assert_eq!((i.number, i.name.as_deref()), (None, Some("Front desk")));
        assert!("".parse::<Instance>().is_err());
        assert!("abc,4255550100".parse::<Instance>().is_err());
    }
}
