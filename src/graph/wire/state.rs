//! The state and direction of a Graph call.

wire_enum! {
    /// The `state` of a Graph `call`, as notifications and `GET` report it.
    ///
    /// Graph's notifications can arrive out of order (`establishing` after
    /// `established` is documented), so the engine needs to know which state
    /// is "later": see [`CallState::rank`].
    pub enum CallState {
        /// An incoming call waiting to be answered, rejected or redirected.
        Incoming => "incoming",
        /// The call is being set up (after `answer` or `create call`).
        Establishing => "establishing",
        /// The far end is ringing.
        Ringing => "ringing",
        /// Media flows; the call is up.
        Established => "established",
        /// The call is on hold.
        Hold => "hold",
        /// A transfer was requested and is in progress.
        Transferring => "transferring",
        /// The transfer target accepted; the call is about to leave the bot.
        TransferAccepted => "transferAccepted",
        /// A `redirect` is in progress.
        Redirecting => "redirecting",
        /// The call is being torn down.
        Terminating => "terminating",
        /// The call is over; no further notification follows.
        Terminated => "terminated",
    }
}

impl CallState {
    /// Where this state sits in a call's life, for "state only moves
    /// forward" checks: a notification whose state ranks lower than the one
    /// already seen is most likely stale and arrived out of order.
    ///
    /// The ranks are: `incoming` 0, `establishing` 1, `ringing` 2,
    /// `established` and `hold` 3 (a call goes back and forth between them),
    /// `redirecting` and `transferring` 4, `transferAccepted` 5,
    /// `terminating` 6, `terminated` 7. A state this crate does not know has
    /// no rank (`None`).
    ///
    /// This is a coarse order, not a law: `established` legitimately comes
    /// back after `transferring` (or `transferAccepted`) when a transfer
    /// fails, with a `resultInfo` such as 500/7000 (blind) or 500/7700
    /// (consultative). Deciding when a lower rank is allowed is the engine's
    /// job; this type only exposes the order.
    pub fn rank(&self) -> Option<u8> {
        Some(match self {
            Self::Incoming => 0,
            Self::Establishing => 1,
            Self::Ringing => 2,
            Self::Established | Self::Hold => 3,
            Self::Redirecting | Self::Transferring => 4,
            Self::TransferAccepted => 5,
            Self::Terminating => 6,
            Self::Terminated => 7,
            Self::Unknown(_) => return None,
        })
    }

    /// Whether the call is over (`terminated`).
    pub fn is_terminal(&self) -> bool {
        matches!(self, Self::Terminated)
    }
}

wire_enum! {
    /// The `direction` of a Graph call, seen from the bot.
    pub enum CallDirection {
        /// Someone called the bot.
        Incoming => "incoming",
        /// The bot placed the call (or joined a meeting).
        Outgoing => "outgoing",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_read_case_insensitively_and_write_graph_spelling() {
        let state: CallState = serde_json::from_str("\"TRANSFERACCEPTED\"").expect("a string");
        assert_eq!(state, CallState::TransferAccepted);
        assert_eq!(
            serde_json::to_string(&state).expect("serialises"),
            "\"transferAccepted\""
        );
    }

    #[test]
    fn unknown_states_are_kept_and_have_no_rank() {
        let state: CallState = serde_json::from_str("\"parked\"").expect("a string");
        assert_eq!(state, CallState::Unknown("parked".into()));
        assert_eq!(state.rank(), None);
        assert_eq!(
            serde_json::to_string(&state).expect("serialises"),
            "\"parked\""
        );
    }

    #[test]
    fn ranks_follow_the_call_lifecycle() {
        let order = [
            CallState::Incoming,
            CallState::Establishing,
            CallState::Established,
            CallState::Transferring,
            CallState::TransferAccepted,
            CallState::Terminating,
            CallState::Terminated,
        ];
        for pair in order.windows(2) {
            assert!(
                pair[0].rank() < pair[1].rank(),
                "{} before {}",
                pair[0],
                pair[1]
            );
        }
        assert_eq!(CallState::Hold.rank(), CallState::Established.rank());
        assert!(CallState::Terminated.is_terminal());
    }
}
