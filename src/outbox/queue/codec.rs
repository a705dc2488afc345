//! A job as stored in the queue's streams: the field names (an operator reads them with
//! `redis-cli`, and older docgates wrote them), a [`Job`] to fields and back, and the fields a
//! dead letter adds.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use lettre::Address;
use lettre::message::Mailbox;
use redis::Value;
use redis::streams::StreamId;

use crate::mail::LinkMail;
use crate::mail::Note;
use crate::notify::{Download, Event};
use crate::outbox::{Job, Kind};
use crate::token::{Claims, ISSUER};

/// The job fields.
pub(super) const F_KIND: &str = "kind";
pub(super) const F_JTI: &str = "jti";
pub(super) const F_DOC: &str = "doc";
pub(super) const F_IAT: &str = "iat";
pub(super) const F_EXP: &str = "exp";
pub(super) const F_TO: &str = "to";
pub(super) const F_TITLE: &str = "title";
pub(super) const F_SIZE: &str = "size";
pub(super) const F_EVENT_ID: &str = "event-id";
pub(super) const F_EMAIL: &str = "email";
pub(super) const F_DOWNLOADED: &str = "downloaded-at";
pub(super) const F_CLIENT_IP: &str = "client-ip";
pub(super) const F_SUBJECT: &str = "subject";
pub(super) const F_BODY: &str = "body";
pub(super) const F_ENQUEUED: &str = "enqueued-at";
pub(super) const F_ATTEMPTS: &str = "attempts";
pub(super) const F_LAST_ERROR: &str = "last-error";
/// The fields a dead letter adds.
pub(super) const F_CAUSE: &str = "cause";
pub(super) const F_DETAIL: &str = "detail";
pub(super) const F_FAILED: &str = "failed-at";

/// One queued job, as stored.
#[derive(Debug, Clone)]
pub(super) struct Entry {
    pub(super) job: Job,
    /// When it was queued, ms since the epoch.
    pub(super) enqueued_at: u64,
    pub(super) attempts: u32,
    pub(super) last_error: Option<String>,
}

impl Entry {
    /// A job queued now.
    pub(super) fn new(job: Job) -> Self {
        Self {
            job,
            enqueued_at: now_ms(),
            attempts: 0,
            last_error: None,
        }
    }

    pub(super) fn parse(fields: &Fields) -> Result<Self, &'static str> {
        let text = |name, why| fields.get(name).map(str::to_owned).ok_or(why);
        let number = |name, why| fields.number(name).ok_or(why);
        // Jobs queued before notices existed have no `kind`: they are link mails.
        let kind = match fields.get(F_KIND) {
            None => Kind::Link,
            Some(tag) => Kind::from_tag(tag).ok_or("unknown kind")?,
        };
        let job = match kind {
            Kind::Link => {
                let to: Address = text(F_TO, "no recipient")?
                    .parse()
                    .map_err(|_| "the recipient is not an address")?;
                Job::Link(LinkMail {
                    to,
                    // The claims are exactly those of the link the request recorded.
                    claims: Claims {
                        jti: text(F_JTI, "no jti")?.into(),
                        doc: text(F_DOC, "no doc")?,
                        iat: number(F_IAT, "no valid iat")?,
                        exp: number(F_EXP, "no valid exp")?,
                        iss: ISSUER.to_owned(),
                    },
                    title: text(F_TITLE, "no title")?,
                    size: fields.number(F_SIZE),
                })
            }
            Kind::Event => Job::Event(Event {
                id: text(F_JTI, "no jti")?.into(),
                doc: text(F_DOC, "no doc")?,
                exp: number(F_EXP, "no valid exp")?,
                body: text(F_BODY, "no body")?,
            }),
            Kind::Note => Job::Note(Note {
                to: text(F_TO, "no recipient")?
                    .parse()
                    .map_err(|_| "the recipient is not an address")?,
                subject: text(F_SUBJECT, "no subject")?,
                body: text(F_BODY, "no body")?,
                id: text(F_JTI, "no jti")?.into(),
                doc: text(F_DOC, "no doc")?,
                exp: number(F_EXP, "no valid exp")?,
            }),
            Kind::OwnerMail | Kind::Webhook => {
                let download = Download {
                    event_id: text(F_EVENT_ID, "no event id")?,
                    jti: text(F_JTI, "no jti")?.into(),
                    doc: text(F_DOC, "no doc")?,
                    title: text(F_TITLE, "no title")?,
                    email: fields.get(F_EMAIL).map(str::to_owned),
                    downloaded_at: number(F_DOWNLOADED, "no valid downloaded-at")?,
                    client_ip: text(F_CLIENT_IP, "no client ip")?
                        .parse::<IpAddr>()
                        .map_err(|_| "the client ip is not an IP address")?,
                };
                if kind == Kind::Webhook {
                    Job::Webhook(download)
                } else {
                    let to: Mailbox = text(F_TO, "no recipient")?
                        .parse()
                        .map_err(|_| "the recipient is not an address")?;
                    Job::OwnerMail { to, download }
                }
            }
        };
        Ok(Self {
            job,
            enqueued_at: fields.number(F_ENQUEUED).unwrap_or(0),
            attempts: fields
                .number(F_ATTEMPTS)
                .and_then(|n| u32::try_from(n).ok())
                .unwrap_or(0),
            last_error: None,
        })
    }

    pub(super) fn fields(&self) -> Vec<(String, String)> {
        let mut fields: Vec<(&str, String)> = vec![(F_KIND, self.job.kind().tag().to_owned())];
        match &self.job {
            Job::Link(mail) => {
                fields.extend([
                    (F_JTI, mail.claims.jti.as_str().to_owned()),
                    (F_DOC, mail.claims.doc.clone()),
                    (F_IAT, mail.claims.iat.to_string()),
                    (F_EXP, mail.claims.exp.to_string()),
                    (F_TO, mail.to.to_string()),
                    (F_TITLE, mail.title.clone()),
                ]);
                if let Some(size) = mail.size {
                    fields.push((F_SIZE, size.to_string()));
                }
            }
            Job::OwnerMail { download, .. } | Job::Webhook(download) => {
                fields.extend([
                    (F_EVENT_ID, download.event_id.clone()),
                    (F_JTI, download.jti.as_str().to_owned()),
                    (F_DOC, download.doc.clone()),
                    (F_TITLE, download.title.clone()),
                ]);
                if let Some(email) = &download.email {
                    fields.push((F_EMAIL, email.clone()));
                }
                fields.extend([
                    (F_DOWNLOADED, download.downloaded_at.to_string()),
                    (F_CLIENT_IP, download.client_ip.to_string()),
                    (F_EXP, self.job.exp().to_string()),
                ]);
                if let Job::OwnerMail { to, .. } = &self.job {
                    fields.push((F_TO, to.to_string()));
                }
            }
            Job::Event(event) => {
                fields.extend([
                    (F_JTI, event.id.as_str().to_owned()),
                    (F_DOC, event.doc.clone()),
                    (F_EXP, event.exp.to_string()),
                    (F_BODY, event.body.clone()),
                ]);
            }
            Job::Note(note) => {
                fields.extend([
                    (F_JTI, note.id.as_str().to_owned()),
                    (F_DOC, note.doc.clone()),
                    (F_EXP, note.exp.to_string()),
                    (F_TO, note.to.to_string()),
                    (F_SUBJECT, note.subject.clone()),
                    (F_BODY, note.body.clone()),
                ]);
            }
        }
        fields.extend([
            (F_ENQUEUED, self.enqueued_at.to_string()),
            (F_ATTEMPTS, self.attempts.to_string()),
        ]);
        if let Some(error) = &self.last_error {
            fields.push((F_LAST_ERROR, error.clone()));
        }
        fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
    }

    pub(super) fn dead_fields(
        &self,
        cause: &str,
        detail: &str,
        attempts: u32,
    ) -> Vec<(String, String)> {
        let mut fields = Entry {
            attempts,
            last_error: None,
            ..self.clone()
        }
        .fields();
        fields.retain(|(k, _)| k != F_ATTEMPTS);
        fields.extend(dead_fields(cause, detail, attempts));
        fields
    }
}

/// The fields a dead letter adds to the job's.
pub(super) fn dead_fields(cause: &str, detail: &str, attempts: u32) -> Vec<(String, String)> {
    vec![
        (F_CAUSE.to_owned(), cause.to_owned()),
        (F_DETAIL.to_owned(), detail.to_owned()),
        (F_ATTEMPTS.to_owned(), attempts.to_string()),
        (F_FAILED.to_owned(), now_ms().to_string()),
    ]
}

/// A stream entry's fields that are text, sorted by name; or a job's, in the order written.
pub(super) struct Fields(pub(super) Vec<(String, String)>);

impl From<&StreamId> for Fields {
    fn from(entry: &StreamId) -> Self {
        let map: &HashMap<String, Value> = &entry.map;
        let mut fields: Vec<(String, String)> = map
            .iter()
            .filter_map(|(k, v)| match v {
                Value::BulkString(bytes) => Some((
                    k.clone(),
                    String::from_utf8_lossy(bytes.as_slice()).into_owned(),
                )),
                Value::SimpleString(s) => Some((k.clone(), s.clone())),
                Value::Int(n) => Some((k.clone(), n.to_string())),
                _ => None,
            })
            .collect();
        fields.sort();
        Self(fields)
    }
}

impl Fields {
    pub(super) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub(super) fn text(&self, name: &str) -> String {
        self.get(name).unwrap_or_default().to_owned()
    }

    pub(super) fn number(&self, name: &str) -> Option<u64> {
        self.get(name).and_then(|v| v.parse().ok())
    }
}

pub(super) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> Entry {
        Entry {
            job: Job::Link(LinkMail {
                to: "visitor@example.org".parse().unwrap(),
                claims: Claims {
                    jti: "abcdefghijklmnopqrstuv".into(),
                    doc: "resume".to_owned(),
                    iat: 1_800_000_000,
                    exp: 1_800_000_900,
                    iss: ISSUER.to_owned(),
                },
                title: "Jane's resume".to_owned(),
                size: Some(307_200),
            }),
            enqueued_at: 1_800_000_000_123,
            attempts: 2,
            last_error: Some("SMTP timeout".to_owned()),
        }
    }

    fn download() -> Download {
        Download {
            event_id: "evt-1".to_owned(),
            jti: "abcdefghijklmnopqrstuv".into(),
            doc: "resume".to_owned(),
            title: "Jane's resume".to_owned(),
            email: Some("visitor@example.org".to_owned()),
            downloaded_at: 1_800_000_100,
            client_ip: IpAddr::from([192, 0, 2, 7]),
        }
    }

    fn names(fields: &Fields) -> Vec<&str> {
        fields.0.iter().map(|(k, _)| k.as_str()).collect()
    }

    #[test]
    fn a_job_round_trips_through_its_fields_and_holds_no_link() {
        let job = entry();
        let fields = Fields(job.fields());
        let back = Entry::parse(&fields).unwrap();
        assert_eq!(back.job.exp(), 1_800_000_900);
        assert_eq!(back.attempts, 2);
        assert_eq!(back.enqueued_at, job.enqueued_at);
        assert_eq!(
            names(&fields),
            [
                "kind",
                "jti",
                "doc",
                "iat",
                "exp",
                "to",
                "title",
                "size",
                "enqueued-at",
                "attempts",
                "last-error"
            ]
        );
        let Job::Link(mail) = back.job else {
            panic!("a link mail");
        };
        assert_eq!(mail.claims.iss, ISSUER);
        assert_eq!(mail.claims.jti, "abcdefghijklmnopqrstuv");
        assert_eq!(mail.to.to_string(), "visitor@example.org");
        assert_eq!(mail.size, Some(307_200));
        assert_eq!(job.job.jti().short(), "abcdef");
    }

    #[test]
    fn a_job_queued_before_kinds_existed_is_a_link_mail() {
        let mut fields = entry().fields();
        fields.retain(|(k, _)| k != "kind" && k != "size");
        let back = Entry::parse(&Fields(fields)).unwrap();
        assert_eq!(back.job.kind(), Kind::Link);
        let Job::Link(mail) = back.job else {
            panic!("a link mail");
        };
        assert_eq!(mail.size, None);
    }

    #[test]
    fn a_note_round_trips_and_carries_no_iat() {
        let note = Job::Note(Note {
            to: "Jane Doe <jane@example.com>".parse().unwrap(),
            subject: "Approve a request for Jane's resume?".to_owned(),
            body: "visitor@example.org asks for Jane's resume.\n".to_owned(),
            id: "abcdefghijklmnopqrstuv".into(),
            doc: "resume".to_owned(),
            exp: 1_800_604_800,
        });
        let fields = Fields(Entry::new(note.clone()).fields());
        // Without `iat`, a sender of an older docgate dead-letters a note rather than mailing
        // it as a link.
        assert_eq!(fields.get("iat"), None);
        assert_eq!(fields.get("kind"), Some("note"));
        let back = Entry::parse(&fields).unwrap();
        assert_eq!(back.job, note);
        assert_eq!(back.job.exp(), 1_800_604_800);
    }

    #[test]
    fn notices_round_trip_and_carry_no_iat() {
        let owner: Mailbox = "Jane Doe <jane@example.com>".parse().unwrap();
        for notice in [
            Job::OwnerMail {
                to: owner,
                download: download(),
            },
            Job::Webhook(download()),
        ] {
            let job = Entry::new(notice.clone());
            let fields = Fields(job.fields());
            // Without `iat`, a sender of an older docgate dead-letters a notice rather than
            // mailing it as a link.
            assert_eq!(fields.get("iat"), None);
            assert_eq!(
                fields.get("exp"),
                Some((1_800_000_100 + 3 * 24 * 3600).to_string().as_str())
            );
            let back = Entry::parse(&fields).unwrap();
            assert_eq!(back.job, notice);
        }
        let job = Entry::new(Job::Webhook(Download {
            email: None,
            ..download()
        }));
        let fields = Fields(job.fields());
        assert_eq!(
            names(&fields),
            [
                "kind",
                "event-id",
                "jti",
                "doc",
                "title",
                "downloaded-at",
                "client-ip",
                "exp",
                "enqueued-at",
                "attempts"
            ]
        );
    }

    #[test]
    fn a_job_missing_a_field_is_named() {
        let mut fields = entry().fields();
        fields.retain(|(k, _)| k != "exp");
        assert_eq!(Entry::parse(&Fields(fields)).unwrap_err(), "no valid exp");
        let mut fields = Entry::new(Job::Webhook(download())).fields();
        fields.retain(|(k, _)| k != "client-ip");
        assert_eq!(Entry::parse(&Fields(fields)).unwrap_err(), "no client ip");
        let fields = vec![("kind".to_owned(), "fax".to_owned())];
        assert_eq!(Entry::parse(&Fields(fields)).unwrap_err(), "unknown kind");
    }

    #[test]
    fn dead_fields_replace_the_attempt_count() {
        let fields = entry().dead_fields("rejected", "550 no such user", 3);
        let fields = Fields(fields);
        assert_eq!(fields.get("attempts"), Some("3"));
        assert_eq!(fields.get("cause"), Some("rejected"));
        assert_eq!(fields.get("last-error"), None);
        assert_eq!(fields.0.iter().filter(|(k, _)| k == "attempts").count(), 1);
    }
}
