//! The link-request body (exactly its fields, only from a JSON object or a form, a repeated key
//! refused), the address check, and the `Content-Disposition` built from a filename. The body's
//! model is `tests/models/request_body.rs`, the repeated-key model `tests/models/json.rs` (shared
//! with the `request_body` and `json` fuzz targets).

use super::*;

/// Any JSON value, nested a little.
pub(crate) fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        any::<String>().prop_map(Value::String),
        "(email|document|@|a){0,3}".prop_map(Value::String),
        "(true|on|yes|1|no| )".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("email|document|name|company|consent|.{0,6}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// The fields a link request reads; any other key is ignored.
pub(crate) const FIELDS: [&str; 5] = ["email", "document", "name", "company", "consent"];

/// Keys other than the fields.
pub(crate) fn extra_key() -> impl Strategy<Value = String> {
    any::<String>().prop_filter("not a field", |k| !FIELDS.contains(&k.as_str()))
}

/// A field as a client could send it: absent, `null`, or a string.
#[derive(Debug, Clone)]
pub(crate) enum Field {
    Absent,
    Null,
    Text(String),
}

impl Field {
    fn expected(&self) -> Option<String> {
        match self {
            Field::Text(s) => Some(s.clone()),
            Field::Absent | Field::Null => None,
        }
    }
}

pub(crate) fn field() -> impl Strategy<Value = Field> {
    prop_oneof![
        1 => Just(Field::Absent),
        1 => Just(Field::Null),
        6 => any::<String>().prop_map(Field::Text),
        2 => "[a-z0-9.+-]{1,10}@[a-z0-9.-]{1,10}".prop_map(Field::Text),
    ]
}

/// The error every refused body gets: a `body` problem.
pub(crate) fn is_body_error(result: &Result<Fields, Error>) -> bool {
    matches!(result, Err(Error::Invalid(problems)) if problems.contains_key("body"))
}

/// Bytes that are sometimes JSON objects or forms, often nearly.
pub(crate) fn body_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..200),
        "[{}\\[\\]\":, a-z0-9@.\\\\=&%+]{0,60}".prop_map(String::into_bytes),
        json_value().prop_map(|v| v.to_string().into_bytes()),
        (json_value(), any::<Index>(), any::<u8>()).prop_map(|(v, i, b)| {
            let mut bytes = v.to_string().into_bytes();
            bytes.insert(i.index(bytes.len() + 1), b);
            bytes
        }),
    ]
}

proptest! {
    #![proptest_config(config(2000))]

    /// Arbitrary bytes never panic. A JSON body is accepted only when it is an object whose
    /// `email`, `document`, `name` and `company` are strings (or `null`, or absent) and whose
    /// `consent` is a boolean or a string, and then the fields are those values; a form body is
    /// accepted only with at most one of each field, and then they are its values.
    #[test]
    fn bodies_decode_to_what_they_carry(bytes in body_bytes()) {
        let json = decode_fields(false, &bytes);
        let expected = match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Object(object)) if !repeats_a_key(&bytes) => body_model::json(&object),
            _ => None,
        };
        match expected {
            Some(fields) => prop_assert_eq!(setup(json)?, fields),
            None => prop_assert!(is_body_error(&json), "{json:?}"),
        }

        let form = decode_fields(true, &bytes);
        let pairs: Vec<(String, String)> = setup(serde_urlencoded::from_bytes(&bytes))?;
        match body_model::form(&pairs) {
            Some(fields) => prop_assert_eq!(setup(form)?, fields),
            None => prop_assert!(is_body_error(&form), "{form:?}"),
        }
    }

    /// A JSON object built from arbitrary strings, with extra members of any type, in any
    /// order and layout, gives back its fields.
    #[test]
    fn json_objects_round_trip(
        email in field(),
        document in field(),
        extras in prop::collection::vec((extra_key(), json_value()), 0..4),
        pretty in prop::bool::ANY,
    ) {
        let mut object = serde_json::Map::new();
        for (key, value) in extras {
            object.insert(key, value);
        }
        for (name, field) in [("email", &email), ("document", &document)] {
            let value = match field {
                Field::Absent => continue,
                Field::Null => Value::Null,
                Field::Text(s) => Value::String(s.clone()),
            };
            object.insert(name.to_owned(), value);
        }
        let object = Value::Object(object);
        let bytes = setup(if pretty { serde_json::to_vec_pretty(&object) } else { serde_json::to_vec(&object) })?;
        let expected = Fields { email: email.expected(), document: document.expected(), ..Fields::default() };
        prop_assert_eq!(setup(decode_fields(false, &bytes))?, expected);
    }

    /// A form built from arbitrary strings, with extra pairs, in any order, gives back its
    /// fields.
    #[test]
    fn forms_round_trip(
        email in any::<Option<String>>(),
        document in any::<Option<String>>(),
        extras in prop::collection::vec((extra_key(), any::<String>()), 0..4),
        order in any::<Index>(),
    ) {
        let mut pairs: Vec<(String, String)> = extras
            .into_iter()
            .collect::<std::collections::BTreeMap<_, _>>()
            .into_iter()
            .collect();
        for (name, value) in [("email", &email), ("document", &document)] {
            if let Some(value) = value {
                let at = order.index(pairs.len() + 1);
                pairs.insert(at, (name.to_owned(), value.clone()));
            }
        }
        let body = setup(serde_urlencoded::to_string(&pairs))?;
        prop_assert_eq!(setup(decode_fields(true, body.as_bytes()))?, Fields { email, document, ..Fields::default() });
    }

    /// Arrays (even of two strings, which serde would read as the struct's fields in order),
    /// numbers, strings, booleans and `null` are refused, as are objects whose fields are not
    /// strings.
    #[test]
    fn non_objects_are_refused(
        value in prop_oneof![
            json_value().prop_filter("not an object", |v| !v.is_object()),
            (any::<String>(), any::<String>()).prop_map(|(e, d)| json!([e, d])),
            json_value()
                .prop_filter("neither string nor null", |v| !v.is_string() && !v.is_null())
                .prop_map(|v| json!({ "email": v, "document": "resume" })),
        ],
    ) {
        let bytes = value.to_string().into_bytes();
        let result = decode_fields(false, &bytes);
        prop_assert!(is_body_error(&result), "{value} gave {result:?}");
    }
}

/// True when `bytes` is JSON in which some object names a key twice.
pub(crate) fn repeats_a_key(bytes: &[u8]) -> bool {
    let Ok(value) = serde_json::from_slice::<Value>(bytes) else {
        return false;
    };
    models::json::repeats_a_key(bytes, &value).unwrap_or(false)
}

/// A JSON text with one key of one object repeated (at any depth).
pub(crate) fn with_a_repeated_key() -> impl Strategy<Value = Vec<u8>> {
    (
        json_value(),
        any::<String>(),
        json_value(),
        json_value(),
        any::<Index>(),
    )
        .prop_map(|(inner, key, first, second, depth)| {
            let key = Value::String(key).to_string();
            let object = format!("{{{key}: {first}, \"x\": {inner}, {key}: {second}}}");
            match depth.index(3) {
                0 => object,
                1 => format!("[1, {object}]"),
                _ => format!("{{\"email\": \"a@example.org\", \"nested\": {object}}}"),
            }
            .into_bytes()
        })
}

proptest! {
    #![proptest_config(config(1000))]

    /// `docgate::json` reads what serde_json reads, value for value, unless an object repeats a
    /// key: then it refuses, and so does the link request body.
    #[test]
    fn strict_json_is_serde_json_without_repeated_keys(bytes in body_bytes()) {
        let ours = docgate::json::from_slice(&bytes);
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(value) if repeats_a_key(&bytes) => {
                prop_assert_eq!(ours, Err(docgate::json::JsonError::DuplicateKey), "{}", value);
            }
            Ok(value) => prop_assert_eq!(ours, Ok(value)),
            Err(_) => prop_assert_eq!(ours, Err(docgate::json::JsonError::Syntax)),
        }
    }

    #[test]
    fn a_repeated_key_anywhere_is_refused(bytes in with_a_repeated_key()) {
        prop_assert!(repeats_a_key(&bytes));
        prop_assert_eq!(docgate::json::from_slice(&bytes), Err(docgate::json::JsonError::DuplicateKey));
        let result = decode_fields(false, &bytes);
        prop_assert!(is_body_error(&result), "{result:?}");
    }

    /// A genuinely signed token whose header carries `crit`, whatever its value and whatever else
    /// the header holds, is refused as invalid.
    #[test]
    fn a_crit_header_never_verifies((claims, now) in claims_and_now(), crit in json_value(), typ in any::<bool>()) {
        let mut header = json!({ "alg": "HS256", "kid": CODEC.signing_kid(), "crit": crit });
        if typ {
            header["typ"] = "JWT".into();
        }
        let token = setup(sign_parts(
            &URL_SAFE_NO_PAD.encode(header.to_string()),
            &URL_SAFE_NO_PAD.encode(setup(serde_json::to_string(&claims))?),
            SECRET,
            Algorithm::HS256,
        ).ok_or("signing failed"))?;
        let result = CODEC.verify(&token, now);
        prop_assert!(is_invalid(&result), "{result:?}");
    }

    /// The `Content-Disposition` of any filename is printable ASCII; its plain `filename` is a
    /// quoted string with no quote or backslash inside; `filename*` decodes to the exact name.
    #[test]
    fn content_disposition_is_ascii_and_carries_the_exact_name(name in prop_oneof![
        any::<String>(),
        "[a-zA-Z0-9 äöüßÄÖÜéèçñøåłž€\"\\_.-]{0,40}",
    ]) {
        for disposition in [docgate::config::Disposition::Attachment, docgate::config::Disposition::Inline] {
            let value = docgate::http::download::content_disposition(&name, disposition);
            prop_assert!(value.bytes().all(|b| (b' '..=b'~').contains(&b)), "{value:?}");
            prop_assert!(HeaderValue::from_str(&value).is_ok());
            let (_, rest) = value.split_once("; filename=\"").ok_or_else(|| TestCaseError::fail("no filename"))?;
            let (plain, star) = rest.split_once("\"; filename*=UTF-8''").ok_or_else(|| TestCaseError::fail("no filename*"))?;
            prop_assert!(!plain.contains(['"', '\\']), "{plain:?}");
            let decoded = setup(percent_encoding::percent_decode_str(star).decode_utf8())?;
            prop_assert_eq!(decoded.as_ref(), name.as_str());
        }
    }

    /// Every address accepted can be mailed: lettre builds a message to it whose envelope holds
    /// exactly that address, its local part is unquoted, and it validates to itself again.
    #[test]
    fn accepted_addresses_can_be_mailed(raw in prop_oneof![
        any::<String>(),
        "\"?[a-zA-Z0-9 .+_'\"\\\\ü-]{1,12}\"?@[a-z0-9ü-]{1,8}\\.(com|org|example)",
    ]) {
        if let Ok(address) = docgate::address::validate(&raw) {
            prop_assert!(!address.user().contains(['"', '\\', ' ']), "{address}");
            let mailbox = lettre::message::Mailbox::new(None, address.clone());
            let message = setup(lettre::Message::builder()
                .from(mailbox.clone())
                .to(mailbox)
                .subject("x")
                .body(String::new()))?;
            prop_assert_eq!(message.envelope().to(), std::slice::from_ref(&address));
            prop_assert_eq!(docgate::address::validate(address.as_ref()), Ok(address.clone()));
        }
    }
}

/// The shared models (`tests/models/`) must not be vacuous: each property's interesting branch is reachable.
#[test]
fn models_agree_with_known_answers() {
    let trusted: Vec<IpNet> = ["10.0.0.0/8"]
        .iter()
        .filter_map(|s| s.parse().ok())
        .collect();
    let peer = SocketAddr::from(([10, 0, 0, 2], 5000));
    let hops = |s: &str| s.split(',').map(xff_model::hop).collect::<Vec<_>>();
    let ip = |s: &str| s.parse::<IpAddr>().ok();
    let client = |s: &str| Some(xff_model::client(peer.ip(), &hops(s), &trusted));
    assert_eq!(
        client("6.6.6.6, 198.51.100.7, 10.0.0.5"),
        ip("198.51.100.7")
    );
    assert_eq!(client("garbage, 10.0.0.7"), ip("10.0.0.7"));
    assert_eq!(client("10.0.0.9, 10.0.0.7"), ip("10.0.0.9"));
    assert_eq!(client("10.0.0.9, junk"), ip("10.0.0.2"));
    assert_eq!(client("[::ffff:1.2.3.4]:80"), ip("1.2.3.4"));
    assert_eq!(range_model::range(Spec::Suffix(5), 3), Some((0, 3)));
    assert_eq!(range_model::range(Spec::Bounded(2, 9), 3), Some((2, 3)));
    assert_eq!(range_model::range(Spec::From(3), 3), None);
    assert_eq!(range_model::range(Spec::Suffix(0), 3), None);
}

/// The body models are not vacuous: they accept, refuse and read `consent` as the decoder does
/// on known bodies.
#[test]
fn body_models_agree_with_known_answers() {
    let object = |v: Value| v.as_object().cloned().unwrap();
    let jane =
        json!({"email": "j@example.org", "document": "resume", "name": "Jane", "consent": "On"});
    let expected = Fields {
        email: Some("j@example.org".to_owned()),
        document: Some("resume".to_owned()),
        name: Some("Jane".to_owned()),
        company: None,
        consent: Some(true),
    };
    assert_eq!(body_model::json(&object(jane.clone())), Some(expected));
    assert_eq!(
        decode_fields(false, jane.to_string().as_bytes()).ok(),
        body_model::json(&object(jane))
    );
    for refused in [
        json!({"consent": 1}),
        json!({"company": []}),
        json!({"name": false}),
    ] {
        assert_eq!(
            body_model::json(&object(refused.clone())),
            None,
            "{refused}"
        );
        assert!(is_body_error(&decode_fields(
            false,
            refused.to_string().as_bytes()
        )));
    }
    let pairs = |body: &str| serde_urlencoded::from_str::<Vec<(String, String)>>(body).unwrap();
    let form = "consent=no&company=Acme";
    assert_eq!(
        body_model::form(&pairs(form)).map(|f| (f.consent, f.company)),
        Some((Some(false), Some("Acme".to_owned())))
    );
    assert_eq!(
        decode_fields(true, form.as_bytes()).ok(),
        body_model::form(&pairs(form))
    );
    assert_eq!(body_model::form(&pairs("name=a&name=b")), None);
    assert!(is_body_error(&decode_fields(true, b"name=a&name=b")));
}
