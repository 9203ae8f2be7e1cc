//! Faults sim-graph injects on top of the simulated Graph's behaviour.
//!
//! A [`Faults`] set applies to every call (the global set) or to one call
//! (which then replaces the global set for that call). Throttling (`429`
//! with `Retry-After`) and unavailability (`503`) are counted: the next `n`
//! requests are refused, then requests pass again. Reorder, duplicate and
//! delay act on the notifications posted to the bot; `transfer` decides how
//! the next transfers end; `never_answer` makes the callee of a new outgoing
//! call ring forever. Plain data: nothing here runs.

use serde::{Deserialize, Serialize};

use crate::sim::behaviour::{SimDuration, TransferMode};

/// One set of faults.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// The next `n` Graph requests get `429 Too Many Requests`.
    pub throttle: u32,
    /// The next `n` Graph requests get `503 Service Unavailable`.
    pub unavailable: u32,
    /// The `Retry-After` of those answers, in seconds (default 1).
    pub retry_after: Option<u64>,
    /// Swap each notification with the one that follows it (pairwise).
    pub reorder: bool,
    /// Post every notification twice.
    pub duplicate: bool,
    /// Hold every notification this long (simulated time) before posting it.
    pub delay: Option<SimDuration>,
    /// How transfers end: `fail` (back to `established` with 500/7000, or
    /// 7700 for a consultative one) or `no_answer` (`transferring` and
    /// nothing more). Unset: as the simulated Graph's behaviour says.
    pub transfer: Option<TransferMode>,
    /// The callee of an outgoing call placed while this is set never
    /// answers: `establishing` and nothing more.
    pub never_answer: bool,
    /// Apply each request at once but hold its answer this long (real
    /// time, whatever the clock): a bot stopped meanwhile sent a request
    /// that took effect and never read the answer.
    pub hold_answers: Option<SimDuration>,
}

impl Faults {
    /// The `Retry-After` in seconds.
    pub fn retry_after_secs(&self) -> u64 {
        self.retry_after.unwrap_or(1)
    }

    /// Sets one fault from `key=value` text (`throttle=2`, `unavailable=1`,
    /// `retry_after=0`, `reorder=true`, `duplicate`, `delay=2s`,
    /// `transfer=fail`, `never_answer=true`, `hold_answers=5s`).
    ///
    /// # Errors
    ///
    /// A message naming the key or value that is wrong.
    pub fn set(&mut self, pair: &str) -> Result<(), String> {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let (key, value) = (key.trim(), value.trim());
        let flag = |v: &str| match v {
            "true" | "yes" | "1" | "" => Ok(true),
            "false" | "no" | "0" => Ok(false),
            other => Err(format!("`{other}` is not true or false")),
        };
        let count = |v: &str| {
            v.parse::<u32>()
                .map_err(|_| format!("`{v}` is not a count of requests"))
        };
        match key {
            "throttle" => self.throttle = count(value)?,
            "unavailable" => self.unavailable = count(value)?,
            "retry_after" => {
                self.retry_after = Some(
                    value
                        .parse()
                        .map_err(|_| format!("`{value}` is not a number of seconds"))?,
                );
            }
            "reorder" => self.reorder = flag(value)?,
            "duplicate" => self.duplicate = flag(value)?,
            "delay" => self.delay = Some(SimDuration::parse(value)?),
            "transfer" => {
                self.transfer = Some(match value {
                    "fail" => TransferMode::Fail,
                    "no_answer" => TransferMode::NoAnswer,
                    "accept" => TransferMode::Accept,
                    other => {
                        return Err(format!("`transfer={other}`: use fail, no_answer or accept"));
                    }
                });
            }
            "never_answer" => self.never_answer = flag(value)?,
            "hold_answers" => self.hold_answers = Some(SimDuration::parse(value)?),
            other => {
                return Err(format!(
                    "`{other}` is not a fault; use throttle, unavailable, retry_after, reorder, \
                     duplicate, delay, transfer, never_answer or hold_answers"
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_pairs_and_json() {
        let mut f = Faults::default();
        f.set("throttle=2").expect("a count");
        f.set("duplicate").expect("a flag");
        f.set("delay=2s").expect("a duration");
        f.set("transfer=fail").expect("a mode");
        assert_eq!(f.throttle, 2);
        assert!(f.duplicate);
        assert_eq!(f.transfer, Some(TransferMode::Fail));
        assert!(f.set("colour=blue").is_err());
        assert!(f.set("throttle=many").is_err());
        let g: Faults =
            serde_json::from_str(r#"{"unavailable": 1, "retry_after": 0}"#).expect("valid");
        assert_eq!(g.retry_after_secs(), 0);
        assert!(serde_json::from_str::<Faults>(r#"{"nope": 1}"#).is_err());
    }
}
