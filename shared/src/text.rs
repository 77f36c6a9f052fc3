//! Text from outside (a file's name, a bundle's names, a server's answer) as a terminal, a log
//! line or a page shows it: one line that cannot move the cursor, forge a line or hide itself.

/// A character that moves or hides text where it is shown: a control character, a line or
/// paragraph separator, or a bidirectional override (`evil\u{202e}txt.exe` reads `evilexe.txt`).
pub fn unprintable(c: char) -> bool {
    c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `text` with each [`unprintable`] character escaped (`\t`, `\n`, `\u{1b}`) and each backslash
/// doubled, so no two texts give the same result.
pub fn escaped(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if unprintable(c) || c == '\\' {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// `value` with `decimals` digits after the point, never `-0.000`: a score a hair below 0 (the
/// open-set score can be negative) reads as 0, as it rounds.
pub fn fixed(value: f32, decimals: usize) -> String {
    let text = format!("{value:.decimals$}");
    match text.strip_prefix('-') {
        Some(rest) if rest.chars().all(|c| c == '0' || c == '.') => rest.to_string(),
        _ => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_moves_or_hides_text_is_escaped_and_nothing_else() {
        assert_eq!(escaped("Blüte 1.jpg"), "Blüte 1.jpg");
        assert_eq!(escaped("tab\there\nline\u{1b}[2J"), "tab\\there\\nline\\u{1b}[2J");
        assert_eq!(escaped("evil\u{202e}txt.exe"), "evil\\u{202e}txt.exe");
        assert_eq!(escaped("a\\n"), "a\\\\n", "a literal backslash-n is not an escaped line break");
        assert_ne!(escaped("a\\n"), escaped("a\n"));
    }

    #[test]
    fn fixed_never_prints_a_negative_zero() {
        assert_eq!(fixed(-6.96e-6, 4), "0.0000");
        assert_eq!(fixed(-0.0, 4), "0.0000");
        assert_eq!(fixed(-0.00006, 4), "-0.0001");
        assert_eq!(fixed(-0.133, 3), "-0.133");
        assert_eq!(fixed(0.1247, 4), "0.1247");
    }
}
