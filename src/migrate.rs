//! The key-layout upgrade: moves the keys an older docgate wrote under their single-slot names
//! (`<prefix>token:<jti>`, `<prefix>log:entries`, `<prefix>mail:queue`, ...) to the hash-tagged
//! names this version reads (`<prefix>token:{<jti>}`, `<prefix>{log}:entries`,
//! `<prefix>{mail}:queue`, ...), so every live link stays usable exactly once and every queued,
//! scheduled or dead-lettered mail deliverable. `docgate migrate-keys` runs it.
//!
//! Each key is renamed by one script (`RENAME` keeps its value, its TTL and, for the mail
//! stream, its consumer group and pending jobs), only while the new name is free: run twice,
//! the second run finds nothing to move. A key whose new name is already taken is left where it
//! is and reported. It runs against the Redis that holds the old layout (a standalone server,
//! where both names live on the one node), while no docgate writes to it.

use redis::Script;
use redis::aio::ConnectionLike;

use crate::store::shared::{owner_key, spent_key, token_key};

/// How many keys one `SCAN` step asks for.
const SCAN_COUNT: usize = 1000;

/// Renames KEYS[1] to KEYS[2] unless KEYS[2] exists. 0: nothing to move, 1: moved, 2: the new
/// name is taken (left in place).
/// Every Lua script of the key migration, by name, as `docgate check` loads them.
pub fn scripts() -> Vec<(&'static str, String)> {
    vec![("key migration", MOVE.to_owned())]
}

const MOVE: &str = r"#!lua
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if redis.call('EXISTS', KEYS[2]) == 1 then return 2 end
redis.call('RENAME', KEYS[1], KEYS[2])
return 1
";

/// The families of keys that moved, in the order they are migrated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// `token:<jti>` → `token:{<jti>}`: live links and their download state.
    Links,
    /// `spent:<jti>` → `spent:{<jti>}`: spent markers.
    Spent,
    /// `owner:<owner>` → `owner:{<owner>}`: each person's links.
    Owners,
    /// `log:*` → `{log}:*`: the request log.
    RequestLog,
    /// `mail:*` → `{mail}:*`: the mail queue, its retries and dead letters.
    Mail,
}

impl Family {
    const ALL: [Family; 5] = [
        Family::Links,
        Family::Spent,
        Family::Owners,
        Family::RequestLog,
        Family::Mail,
    ];

    /// The old name's namespace, after the prefix.
    fn old(self) -> &'static str {
        match self {
            Family::Links => "token:",
            Family::Spent => "spent:",
            Family::Owners => "owner:",
            Family::RequestLog => "log:",
            Family::Mail => "mail:",
        }
    }

    /// What the report calls it.
    pub fn name(self) -> &'static str {
        match self {
            Family::Links => "links",
            Family::Spent => "spent markers",
            Family::Owners => "owner indexes",
            Family::RequestLog => "request log keys",
            Family::Mail => "mail queue keys",
        }
    }

    /// The new name of an old key (`rest`: what follows the namespace), or `None` when the key
    /// already has its new name.
    fn new_name(self, prefix: &str, rest: &str) -> Option<String> {
        match self {
            Family::Links | Family::Spent | Family::Owners if rest.starts_with('{') => None,
            Family::Links => Some(token_key(prefix, rest)),
            Family::Spent => Some(spent_key(prefix, rest)),
            Family::Owners => Some(owner_key(prefix, rest)),
            Family::RequestLog => Some(format!("{prefix}{{log}}:{rest}")),
            Family::Mail => Some(format!("{prefix}{{mail}}:{rest}")),
        }
    }
}

/// What a migration did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    /// How many keys of each family moved, in [`Family`] order.
    pub moved: Vec<(Family, u64)>,
    /// Old keys left in place because their new name was already taken.
    pub left: Vec<String>,
}

impl Report {
    /// How many keys moved in all.
    pub fn total(&self) -> u64 {
        self.moved.iter().map(|(_, n)| n).sum()
    }
}

/// Moves every key of the old layout under `prefix` to its new name. Stops at the first Redis
/// error (what moved before it stays moved; run it again to finish).
pub async fn migrate_keys<C: ConnectionLike + Send>(
    conn: &mut C,
    prefix: &str,
) -> Result<Report, redis::RedisError> {
    let script = Script::new(MOVE);
    let mut report = Report::default();
    for family in Family::ALL {
        let pattern = format!("{}{}*", glob_escape(prefix), family.old());
        let mut moved = 0u64;
        let mut cursor = 0u64;
        // SCAN ends when the cursor comes back to 0; each key is visited in a bounded number
        // of steps, and renamed keys never match the old pattern again.
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(SCAN_COUNT)
                .query_async(conn)
                .await?;
            for key in keys {
                let Some(rest) = key
                    .strip_prefix(prefix)
                    .and_then(|k| k.strip_prefix(family.old()))
                else {
                    continue;
                };
                let Some(new) = family.new_name(prefix, rest) else {
                    continue;
                };
                let outcome: i64 = script.key(&key).key(&new).invoke_async(conn).await?;
                match outcome {
                    1 => moved += 1,
                    2 => report.left.push(key),
                    _ => {}
                }
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
        report.moved.push((family, moved));
    }
    Ok(report)
}

/// `prefix` as a literal in a `SCAN MATCH` pattern.
fn glob_escape(prefix: &str) -> String {
    let mut out = String::with_capacity(prefix.len());
    for c in prefix.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_names_map_to_the_tagged_ones_and_new_names_are_left_alone() {
        let p = "docgate:";
        assert_eq!(
            Family::Links.new_name(p, "abc").as_deref(),
            Some("docgate:token:{abc}")
        );
        assert_eq!(
            Family::Spent.new_name(p, "abc").as_deref(),
            Some("docgate:spent:{abc}")
        );
        assert_eq!(
            Family::Owners.new_name(p, "f00").as_deref(),
            Some("docgate:owner:{f00}")
        );
        assert_eq!(
            Family::RequestLog.new_name(p, "person:f00").as_deref(),
            Some("docgate:{log}:person:f00")
        );
        assert_eq!(
            Family::Mail.new_name(p, "dead").as_deref(),
            Some("docgate:{mail}:dead")
        );
        assert_eq!(Family::Links.new_name(p, "{abc}"), None);
    }

    #[test]
    fn a_prefix_is_matched_literally() {
        assert_eq!(glob_escape("a*b?[c]\\:"), "a\\*b\\?\\[c\\]\\\\:");
        assert_eq!(glob_escape("{docgate}:"), "{docgate}:");
    }
}
