//! The production backends' settings (`backends.rs`): Redis in each topology, replicas' `WAIT`, the
//! CA file, S3 and SMTP; secrets hidden, each mistake one line naming its variable.

use super::*;

#[test]
fn production_backends_are_read_and_hide_their_secrets() {
    let config = Config::from_source(&source(&[
        (ENV_REDIS_URL, "redis://:hunter2@redis:6379/0"),
        (ENV_TOKEN_SECRET, "0123456789abcdef0123456789abcdef"),
        (ENV_PSEUDONYM_KEY, "pseudonyms-0123456789abcdef012345"),
        (ENV_S3_BUCKET, "private-docs"),
        (ENV_S3_ENDPOINT, "http://127.0.0.1:9000/"),
        (ENV_AWS_ACCESS_KEY_ID, "AKIDEXAMPLE"),
        (ENV_AWS_SECRET_ACCESS_KEY, "wJalrXUtnFEMI"),
        (ENV_SMTP_URL, "smtp://user:pass@mail:587?tls=required"),
    ]))
    .unwrap();
    let redis = config.redis.as_ref().unwrap();
    assert_eq!(redis.prefix, "docgate:");
    let s3 = config.s3.as_ref().unwrap();
    assert_eq!(s3.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
    assert_eq!(
        s3.credentials.as_ref().unwrap().access_key_id,
        "AKIDEXAMPLE"
    );
    let debug = format!("{config:?}");
    for secret in ["hunter2", "wJalrXUtnFEMI", "user:pass"] {
        assert!(!debug.contains(secret), "{secret} shown in {debug}");
    }

    let err = Config::from_source(&source(&[(ENV_REDIS_URL, "redis://localhost")])).unwrap_err();
    assert_eq!(
        err.name, ENV_TOKEN_SECRET,
        "a shared key is required with Redis"
    );
    let err = Config::from_source(&source(&[
        (ENV_S3_BUCKET, "private-docs"),
        (ENV_AWS_ACCESS_KEY_ID, "AKIDEXAMPLE"),
    ]))
    .unwrap_err();
    assert_eq!(err.name, ENV_AWS_ACCESS_KEY_ID);
}

#[test]
fn the_s3_receive_buffer_is_4_mib_unless_set_and_0_leaves_it_to_the_kernel() {
    let bucket = (ENV_S3_BUCKET, "private-docs");
    let read = |pairs: &[(&str, &str)]| Config::from_source(&source(pairs)).unwrap().s3.unwrap();
    assert_eq!(read(&[bucket]).receive_buffer, 4 << 20);
    assert_eq!(
        read(&[bucket, (ENV_S3_RECEIVE_BUFFER_BYTES, "0")]).receive_buffer,
        0
    );
    assert_eq!(
        read(&[bucket, (ENV_S3_RECEIVE_BUFFER_BYTES, "1048576")]).receive_buffer,
        1 << 20
    );
    for wrong in ["65535", "67108865", "4MiB", "-1"] {
        refused(
            &[bucket, (ENV_S3_RECEIVE_BUFFER_BYTES, wrong)],
            ENV_S3_RECEIVE_BUFFER_BYTES,
            "expected 0 (the kernel sizes it) or a number of bytes from 65536 to 67108864",
        );
    }
}

#[test]
fn redis_topologies_are_read_one_at_a_time() {
    let with = with_shared_keys;

    let config = with(&[(
        ENV_REDIS_CLUSTER_URLS,
        "redis://:hunter2@10.0.0.1:6379, redis://:hunter2@10.0.0.2:6379",
    )])
    .unwrap();
    let redis = config.redis.as_ref().unwrap();
    match &redis.topology {
        Topology::Cluster { urls } => assert_eq!(urls.len(), 2),
        other => panic!("{other:?}"),
    }
    assert_eq!(redis.topology.variable(), ENV_REDIS_CLUSTER_URLS);
    assert!(!format!("{config:?}").contains("hunter2"));

    let config = with(&[
        (
            ENV_REDIS_SENTINEL_URLS,
            "redis://10.0.0.1:26379,redis://10.0.0.2:26379",
        ),
        (ENV_REDIS_SENTINEL_MASTER, "mymaster"),
    ])
    .unwrap();
    match &config.redis.as_ref().unwrap().topology {
        Topology::Sentinel { urls, master } => {
            assert_eq!(urls.len(), 2);
            assert_eq!(master, "mymaster");
        }
        other => panic!("{other:?}"),
    }
    assert!(
        with(&[(ENV_REDIS_URL, "redis://localhost")])
            .unwrap()
            .redis
            .is_some_and(|r| matches!(r.topology, Topology::Standalone { .. }) && r.ca.is_none())
    );
}

#[test]
fn completions_wait_for_replicas_only_when_asked() {
    let with = |pairs: &[(&str, &str)]| {
        let mut all = vec![(ENV_REDIS_URL, "redis://localhost")];
        all.extend_from_slice(pairs);
        with_shared_keys(&all).unwrap().redis.unwrap().wait
    };
    assert_eq!(with(&[]), None, "off by default");
    assert_eq!(with(&[(ENV_REDIS_WAIT_REPLICAS, "0")]), None);
    assert_eq!(
        with(&[(ENV_REDIS_WAIT_REPLICAS, "2")]),
        Some(WaitReplicas {
            replicas: 2,
            timeout: Duration::from_millis(250)
        })
    );
    assert_eq!(
        with(&[
            (ENV_REDIS_WAIT_REPLICAS, "1"),
            (ENV_REDIS_WAIT_TIMEOUT, "1s")
        ]),
        Some(WaitReplicas {
            replicas: 1,
            timeout: Duration::from_secs(1)
        })
    );
}

#[test]
fn every_redis_mistake_is_one_line_naming_its_variable() {
    let dir = tempfile::tempdir().unwrap();
    let not_pem = dir.path().join("ca.txt");
    std::fs::write(&not_pem, "hello").unwrap();
    let missing = dir.path().join("missing.pem");
    let (not_pem, missing) = (not_pem.display().to_string(), missing.display().to_string());
    // The variables set, the variable the error names, and what it says.
    type Case<'a> = (Vec<(&'a str, &'a str)>, &'a str, &'a str);
    let cases: Vec<Case> = vec![
        (
            vec![
                (ENV_REDIS_URL, "redis://a"),
                (ENV_REDIS_CLUSTER_URLS, "redis://b"),
            ],
            ENV_REDIS_CLUSTER_URLS,
            "set only one of DOCGATE_REDIS_URL and DOCGATE_REDIS_CLUSTER_URLS",
        ),
        (
            vec![
                (ENV_REDIS_CLUSTER_URLS, "redis://b"),
                (ENV_REDIS_SENTINEL_URLS, "redis://c"),
                (ENV_REDIS_SENTINEL_MASTER, "m"),
            ],
            ENV_REDIS_SENTINEL_URLS,
            "set only one of",
        ),
        (
            vec![(ENV_REDIS_SENTINEL_URLS, "redis://c:26379")],
            ENV_REDIS_SENTINEL_MASTER,
            "is required with DOCGATE_REDIS_SENTINEL_URLS",
        ),
        (
            vec![(ENV_REDIS_SENTINEL_MASTER, "mymaster")],
            ENV_REDIS_SENTINEL_MASTER,
            "needs DOCGATE_REDIS_SENTINEL_URLS",
        ),
        (
            vec![
                (ENV_REDIS_SENTINEL_URLS, "redis://c:26379"),
                (ENV_REDIS_SENTINEL_MASTER, "my master"),
            ],
            ENV_REDIS_SENTINEL_MASTER,
            "without spaces",
        ),
        (
            vec![(ENV_REDIS_CLUSTER_URLS, "redis://a:6379,,redis://b:6379")],
            ENV_REDIS_CLUSTER_URLS,
            "URL 2 of the list is empty",
        ),
        (
            vec![(ENV_REDIS_CLUSTER_URLS, "redis://a:6379,http://b:6379")],
            ENV_REDIS_CLUSTER_URLS,
            "URL 2 of the list: expected a redis:// or rediss:// URL",
        ),
        (
            vec![(ENV_REDIS_CLUSTER_URLS, "redis://a:6379,rediss://b:6379")],
            ENV_REDIS_CLUSTER_URLS,
            "mixes redis:// and rediss://",
        ),
        (
            vec![(
                ENV_REDIS_CLUSTER_URLS,
                "redis://:x@a:6379,redis://:y@b:6379",
            )],
            ENV_REDIS_CLUSTER_URLS,
            "the same user, password and database",
        ),
        (
            vec![(ENV_REDIS_CLUSTER_URLS, "redis://a:6379/2")],
            ENV_REDIS_CLUSTER_URLS,
            "only database 0",
        ),
        (
            vec![(ENV_REDIS_CA_FILE, "/etc/ca.pem")],
            ENV_REDIS_CA_FILE,
            "needs DOCGATE_REDIS_URL",
        ),
        (
            vec![(ENV_REDIS_URL, "redis://a"), (ENV_REDIS_CA_FILE, &not_pem)],
            ENV_REDIS_CA_FILE,
            "applies to rediss:// URLs only",
        ),
        (
            vec![(ENV_REDIS_URL, "rediss://a"), (ENV_REDIS_CA_FILE, &not_pem)],
            ENV_REDIS_CA_FILE,
            "holds no PEM certificate",
        ),
        (
            vec![(ENV_REDIS_URL, "rediss://a"), (ENV_REDIS_CA_FILE, &missing)],
            ENV_REDIS_CA_FILE,
            "is not valid",
        ),
    ];
    for (pairs, name, expected) in cases {
        let line = refused(&pairs, name, expected);
        assert!(!line.contains("://:"), "no credentials shown: {line}");
    }
}
