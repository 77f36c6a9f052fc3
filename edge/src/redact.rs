//! URLs as they may be shown: without their password, in messages and logs.

/// The URL without a password (`http://user:***@cam/`), for messages and logs.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_string() };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{scheme}://{user}:***@{host}{}", &rest[authority_end..])
        }
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn hides_the_password_and_keeps_the_rest() {
        assert_eq!(redact("http://user:secret@cam:8080/video"), "http://user:***@cam:8080/video");
        assert_eq!(redact("mqtt://box:pw@broker"), "mqtt://box:***@broker");
        assert_eq!(redact("http://cam/a@b"), "http://cam/a@b");
        assert_eq!(redact("not a url"), "not a url");
    }
}
