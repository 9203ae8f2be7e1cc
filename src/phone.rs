//! The one E.164 rule, used wherever a phone number is checked: flow files
//! at load time, parameters (HTTP API, `simulate --param`, scenarios) and
//! Graph requests at run time. `+`, a country code that does not start
//! with `0`, then the number: 7 to 15 digits in all, nothing else.

/// Fewest digits after the `+`.
pub const MIN_DIGITS: usize = 7;
/// Most digits after the `+` (ITU-T E.164).
pub const MAX_DIGITS: usize = 15;

/// Whether `s` is an E.164 phone number.
pub fn is_e164(s: &str) -> bool {
    s.strip_prefix('+').is_some_and(|d| {
        (MIN_DIGITS..=MAX_DIGITS).contains(&d.len())
            && d.bytes().all(|b| b.is_ascii_digit())
            && !d.starts_with('0')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rule() {
        for ok in [
            "+14255550100",
            "+33478123456",
            "+6834002",
            "+123456789012345",
        ] {
            assert!(is_e164(ok), "{ok}");
        }
        for bad in [
            "+331234",
            "+1234567890123456",
            "+0612345678",
            "0612345678",
            "+33 4 78 12 34 56",
            "+3347812345O",
            "",
            "+",
        ] {
            assert!(!is_e164(bad), "{bad}");
        }
    }
}
