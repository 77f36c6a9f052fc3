//! URLs as they may be shown: without their password or token, in messages and logs.

/// The URL without a password (`http://user:***@cam/`) or a `token=` in its query
/// (`?token=***`), for messages and logs.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_string() };
    // A user or password typed with a `/`, `?` or `@` in it (unencoded) moves where the host
    // seems to start: everything up to the last `@` may be user information, and is hidden.
    // (A path or query holding an `@` is hidden too: the safe side.)
    let fragment = rest.find('#').unwrap_or(rest.len());
    let (shown, tail) = match rest[..fragment].rfind('@') {
        Some(at) => {
            let user = rest[..at].split(':').next().unwrap_or("");
            let plain = !user.is_empty() && !user.contains(['/', '[', '@']);
            (if plain { format!("{scheme}://{user}:***@") } else { format!("{scheme}://***@") }, &rest[at + 1..])
        }
        None => (format!("{scheme}://"), rest),
    };
    shown + &without_token(tail)
}

/// Whether `url` holds an `@` past its host: a user or password typed with a `/` or `?` in it,
/// which every client reads as host + path (sending part of the password to a host the user did
/// not mean). Such URLs are refused with [`UNENCODED_USERINFO`].
pub fn has_unencoded_userinfo(url: &str) -> bool {
    let Some((_, rest)) = url.split_once("://") else { return false };
    let fragment = rest.find('#').unwrap_or(rest.len());
    let authority = rest.find(['/', '?']).unwrap_or(rest.len()).min(fragment);
    !rest[..authority].contains('@') && rest[authority..fragment].contains('@')
}

/// Why a URL that [`has_unencoded_userinfo`] is refused.
pub const UNENCODED_USERINFO: &str =
    "an '@' after the host: a '/' in a user or password is written %2F, a '?' %3F (and an '@' in a path or query %40)";

/// `text` with the value of each `token=` query parameter replaced by `***`.
fn without_token(text: &str) -> String {
    let Some((before, query)) = text.split_once('?') else { return text.to_string() };
    let (query, fragment) = query.split_once('#').map_or((query, None), |(q, f)| (q, Some(f)));
    let hidden = format!("{}=", crate::http::TOKEN_PARAM);
    let pairs: Vec<String> =
        query.split('&').map(|pair| if pair.starts_with(&hidden) { format!("{hidden}***") } else { pair.to_string() }).collect();
    format!("{before}?{}{}", pairs.join("&"), fragment.map_or(String::new(), |f| format!("#{f}")))
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn hides_the_password_and_keeps_the_rest() {
        assert_eq!(redact("http://user:secret@cam:8080/video"), "http://user:***@cam:8080/video");
        assert_eq!(redact("mqtt://box:pw@broker"), "mqtt://box:***@broker");
        assert_eq!(redact("http://cam/a@b"), "http://***@b", "ambiguous: hidden");
        assert_eq!(redact("http://[::1]:8080/a@b"), "http://***@b");
        assert_eq!(redact("http://cam:8080/a?x=a@b"), "http://cam:***@b", "an @ in the query: hidden too");
        assert_eq!(redact("not a url"), "not a url");
    }

    #[test]
    fn a_password_typed_with_a_slash_is_told_apart() {
        use super::has_unencoded_userinfo as odd;
        assert!(odd("http://u:se/cret@cam/x") && odd("rtsp://us/er:pw@cam:554/s") && odd("mqtt://u:/abc@h"));
        assert!(odd("http://u:se/c?ret@cam/x") && odd("http://cam/x?a=b@c"));
        assert!(!odd("http://u:pw@cam/x") && !odd("http://u:se%2Fcret@cam/x") && !odd("camera:0"));
    }

    #[test]
    fn hides_a_password_typed_with_a_slash_and_a_token_in_the_query() {
        assert_eq!(redact("mqtt://u:se/cret@127.0.0.1"), "mqtt://u:***@127.0.0.1");
        assert_eq!(redact("http://u:se/c?ret@cam:8080/x"), "http://u:***@cam:8080/x");
        assert_eq!(redact("mqtt://u:/abc@h"), "mqtt://u:***@h");
        assert_eq!(redact("mqtt://u:1234/x@h"), "mqtt://u:***@h");
        assert_eq!(redact("mqtt://us/er:secret@127.0.0.1"), "mqtt://***@127.0.0.1");
        assert_eq!(redact("http://u:se@cr/et@127.0.0.1/h"), "http://u:***@127.0.0.1/h");
        assert_eq!(redact("mqtt://@h"), "mqtt://***@h");
        assert_eq!(redact("http://box:8080/?token=T0k&x=1#top"), "http://box:8080/?token=***&x=1#top");
        assert_eq!(redact("http://box:8080/api?a=token=b"), "http://box:8080/api?a=token=b");
    }
}
