//! `{outbox: latest, to, capture}` setup steps: reads the newest message to a
//! recipient straight from the `outbox` table of the server's database (the
//! suite starts the server, so it knows the database), and captures values
//! from its body with regular expressions. This is how examples get the codes
//! and tokens the server only ever mails; the server itself has no endpoint
//! that reveals them. Bodies are sealed at rest; the suite opens them with the
//! key the server generated in that database (it configures none).

use std::collections::BTreeMap;

use regex::Regex;
use serde_json::Value;
use switchyard_server::db::Db;
use switchyard_server::mail::BodyKey;

/// The body of the newest message to `to`.
pub async fn latest_body(database_url: &str, to: &str) -> Result<String, String> {
    let db = Db::connect(database_url).await.map_err(|e| format!("opening the outbox: {e}"))?;
    let latest = db.outbox_latest_to(to).await;
    let key = BodyKey::load(&db, None).await;
    db.close().await;
    let row = latest.map_err(|e| format!("reading the outbox: {e}"))?;
    let key = key.map_err(|e| format!("reading the mail encryption key: {e}"))?;
    let row = row.ok_or_else(|| format!("the outbox has no message to {to}"))?;
    key.open(&row.id, &row.body).map_err(|e| e.to_string())
}

/// Each variable's pattern applied to `body`: the text of its one group.
pub fn capture(body: &str, patterns: &BTreeMap<String, String>) -> Result<BTreeMap<String, Value>, String> {
    patterns
        .iter()
        .map(|(var, pattern)| {
            let regex = Regex::new(pattern).map_err(|e| format!("capture `{var}`: {e}"))?;
            let found = regex
                .captures(body)
                .and_then(|groups| groups.get(1))
                .ok_or_else(|| format!("capture `{var}`: `{pattern}` does not match the message: {body}"))?;
            Ok((var.clone(), Value::String(found.as_str().to_owned())))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captures_the_group_of_each_pattern() -> Result<(), String> {
        let body = "Your verification code is 012345\nlink https://x.test/reset-password?token=syp_Ab9\n";
        let patterns = BTreeMap::from([
            ("code".to_owned(), r"code is (\d{6})".to_owned()),
            ("token".to_owned(), r"token=(syp_[A-Za-z0-9]+)".to_owned()),
        ]);
        let captured = capture(body, &patterns)?;
        assert_eq!(captured["code"], "012345");
        assert_eq!(captured["token"], "syp_Ab9");
        let missing = BTreeMap::from([("x".to_owned(), r"nothing (here)".to_owned())]);
        assert!(capture(body, &missing).is_err_and(|e| e.contains("does not match")));
        Ok(())
    }
}
