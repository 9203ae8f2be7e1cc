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
            *d <= limit
        })
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
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
    }
}
