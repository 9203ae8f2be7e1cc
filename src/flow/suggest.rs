//! "Did you mean …?": the closest known name to a misspelt one.

/// The candidate closest to `name`, when it is close enough to be a typo.
pub fn closest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let lower = name.to_lowercase();
    candidates
        .into_iter()
        .map(|c| {
            let d = strsim::damerau_levenshtein(&lower, &c.to_lowercase());
            (d, c)
        })
        .filter(|(d, c)| {
            let limit = (c.chars().count().max(name.chars().count()) / 3).max(1);
            *d <= limit || shares_stem(&lower, &c.to_lowercase())
        })
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Whether two names start alike for most of the shorter one
/// (`retry` and `retries`, `prompt` and `prompts`): a typo of a plural or
/// of a tense that edit distance alone finds too far.
fn shares_stem(a: &str, b: &str) -> bool {
    let common = a.chars().zip(b.chars()).take_while(|(x, y)| x == y).count();
    let shorter = a.chars().count().min(b.chars().count());
    common >= 4 && common * 3 >= shorter * 2
}

/// `did you mean `x`?` when there is a close candidate.
pub fn did_you_mean<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    closest(name, candidates).map(|c| format!("did you mean `{c}`?"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_typos_not_strangers() {
        assert_eq!(closest("sales", ["sale", "support"]), Some("sale"));
        assert_eq!(closest("suport", ["sales", "support"]), Some("support"));
        assert_eq!(closest("nxt", ["next", "on_failure"]), Some("next"));
        assert_eq!(closest("zebra", ["sales", "support"]), None);
        assert_eq!(
            closest("retry", ["prompt", "retries", "timeout"]),
            Some("retries")
        );
    }
}
