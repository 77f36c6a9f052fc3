//! URLs as they may be shown: without their password or token, in messages and logs.

/// The URL without a password (`http://user:***@cam/`) or a `token=` in its query
/// (`?token=***`), for messages and logs.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_string() };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let userinfo_end = authority.rfind('@').or_else(|| {
        // A password with a `/` or `?` in it, typed unencoded, makes the authority read as
        // `user:pa` (`user:` or `user:1234` too): with an `@` later, everything up to the last
        // one may be user information, and is hidden. (A host:port whose path holds an `@`
        // is hidden too: the safe side.)
        let maybe_userinfo = !authority.starts_with('[') && authority.contains(':');
        if maybe_userinfo { rest.rfind('@') } else { None }
    });
    let (shown, tail) = match userinfo_end {
        Some(at) => {
            let user = rest[..at].split(':').next().unwrap_or("");
            (format!("{scheme}://{user}:***@"), &rest[at + 1..])
        }
        None => (format!("{scheme}://"), rest),
    };
    shown + &without_token(tail)
}

/// `text` with the value of each `token=` query parameter replaced by `***`.
fn without_token(text: &str) -> String {
    let Some((before, query)) = text.split_once('?') else { return text.to_string() };
    let (query, fragment) = query.split_once('#').map_or((query, None), |(q, f)| (q, Some(f)));
    let pairs: Vec<String> =
        query.split('&').map(|pair| if pair.starts_with("token=") { "token=***".to_string() } else { pair.to_string() }).collect();
    format!("{before}?{}{}", pairs.join("&"), fragment.map_or(String::new(), |f| format!("#{f}")))
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn hides_the_password_and_keeps_the_rest() {
        assert_eq!(redact("http://user:secret@cam:8080/video"), "http://user:***@cam:8080/video");
        assert_eq!(redact("mqtt://box:pw@broker"), "mqtt://box:***@broker");
        assert_eq!(redact("http://cam/a@b"), "http://cam/a@b");
        assert_eq!(redact("http://[::1]:8080/a@b"), "http://[::1]:8080/a@b");
        assert_eq!(redact("http://cam:8080/a@b"), "http://cam:***@b", "ambiguous: hidden");
        assert_eq!(redact("not a url"), "not a url");
    }

    #[test]
    fn hides_a_password_typed_with_a_slash_and_a_token_in_the_query() {
        assert_eq!(redact("mqtt://u:se/cret@127.0.0.1"), "mqtt://u:***@127.0.0.1");
        assert_eq!(redact("http://u:se/c?ret@cam:8080/x"), "http://u:***@cam:8080/x");
        assert_eq!(redact("mqtt://u:/abc@h"), "mqtt://u:***@h");
        assert_eq!(redact("mqtt://u:1234/x@h"), "mqtt://u:***@h");
        assert_eq!(redact("http://box:8080/?token=T0k&x=1#top"), "http://box:8080/?token=***&x=1#top");
        assert_eq!(redact("http://box:8080/api?a=token=b"), "http://box:8080/api?a=token=b");
    }
}
