//! `edge status --url http://box:8080`: one box's `/api/status`, for a script that polls many.

use std::time::Duration;

/// What `edge status` found.
pub struct BoxStatus {
    pub json: serde_json::Value,
    pub healthy: bool,
}

/// The most of a status answer read (a box's is a few KB).
const STATUS_BYTES: u64 = 1 << 20;

/// Fetches `URL/api/status` (with the token as a Bearer header, if given).
pub fn fetch(url: &str, token: Option<&str>) -> anyhow::Result<BoxStatus> {
    // The page's own address (`http://box:8080/?token=T`) works too: its token is taken as
    // --token's, and the status asked for beside it.
    let url = url.split_once('#').map_or(url, |(before, _)| before);
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let from_url = crate::http::token_in_query(query);
    let token = token.or(from_url.as_deref());
    let base = base.trim_end_matches('/');
    let shown = crate::redact::redact(base);
    // No redirects: another host's answer would be shown as the box's.
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into();
    let mut request = agent.get(format!("{base}/api/status"));
    if let Some(token) = token {
        request = request.header("Authorization", format!("Bearer {token}"));
    }
    let mut response = request.call().map_err(|e| anyhow::anyhow!("{shown}: {e}"))?;
    let status = response.status();
    anyhow::ensure!(status != 401, "{shown}: the box wants a token (--token, or FLOWERCAM_HTTP_TOKEN)");
    anyhow::ensure!(status.is_success(), "{shown}/api/status: HTTP {status}");
    // A box's status is a few KB; anything at that URL may answer without end.
    let body = response.body_mut().with_config().limit(STATUS_BYTES).reader();
    let json: serde_json::Value =
        serde_json::from_reader(body).map_err(|e| anyhow::anyhow!("{shown}/api/status: not a flowercam edge's status ({e})"))?;
    let healthy = json["healthy"].as_bool().ok_or_else(|| anyhow::anyhow!("{shown}/api/status: not a flowercam edge's status"))?;
    Ok(BoxStatus { json, healthy })
}

/// One line a box: name, model, answer, fps, health.
pub fn summary(url: &str, s: &BoxStatus) -> String {
    let j = &s.json;
    // Whatever answers at the URL chooses these texts: escaped, one line, no terminal escapes.
    let text = |v: &serde_json::Value| shared::text::escaped(v.as_str().unwrap_or("?"));
    let latest = &j["latest"];
    let answer = if latest.is_null() {
        "no frame yet".to_string()
    } else {
        format!("{} {:.2}", text(&latest["smoothed_label"]), latest["smoothed_probability"].as_f64().unwrap_or(f64::NAN))
    };
    format!(
        "{}\t{}\tmodel {} ({})\t{answer}\t{:.1} fps\t{} classified, {} dropped, {} corrupt, {} reconnects\t{}",
        crate::redact::redact(url),
        if s.healthy { "healthy" } else { "UNHEALTHY" },
        text(&j["model"]["name"]),
        text(&j["model"]["hash"]).chars().take(12).collect::<String>(),
        j["fps"].as_f64().unwrap_or(0.0),
        j["classified"],
        j["dropped"],
        j["corrupt"],
        j["reconnects"],
        text(&j["health"])
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_line_is_one_line_whatever_the_answer_holds() {
        let json = serde_json::json!({
            "healthy": true,
            "model": {"name": "evil\n\u{1b}]0;title\u{7}", "hash": "ab\ncd"},
            "latest": {"smoothed_label": "a\u{1b}[2J", "smoothed_probability": 0.9},
            "health": "ok\nforged line",
        });
        let line = summary("http://box:8080", &BoxStatus { json, healthy: true });
        assert!(!line.contains('\n') && !line.contains('\u{1b}') && !line.contains('\u{7}'), "{line:?}");
        assert!(line.contains("evil\\n\\u{1b}]0;title\\u{7}"), "{line}");
    }
}
