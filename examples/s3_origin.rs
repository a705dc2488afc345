//! A standalone S3-protocol origin for the download benchmark (`benches/download.sh`): s3s-fs
//! serving a directory on a loopback port, with fixed credentials, like the integration tests'
//! in-process server (`tests/it/support/s3.rs`) but as a process of its own.
//!
//! ```sh
//! cargo run --release --example s3_origin -- --root /tmp/origin --seed /tmp/files
//! ```
//!
//! Objects live at `<root>/<bucket>/<key>`, so nginx can serve the same bytes under
//! `/<bucket>/<key>`. Every file directly in `--seed` is uploaded once at start (key
//! `bench/<file name>`) through the S3 API, so s3s-fs stores its ETag and does not hash the file
//! on every request. The server is plain s3s-fs: 4 KiB body pieces, no `TCP_NODELAY`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::presigning::PresigningConfig;
use clap::Parser;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;
use tokio::net::TcpListener;

/// The fixed key pair (benchmark only: the server listens on loopback).
const ACCESS_KEY: &str = "DOCGATEBENCHACCESSKEY";
const SECRET_KEY: &str = "docgate-bench-secret-key-0123456789abcdef";

#[derive(Parser)]
struct Args {
    /// Where s3s-fs keeps buckets and objects.
    #[arg(long)]
    root: PathBuf,
    /// Address to listen on (loopback).
    #[arg(long, default_value = "127.0.0.1:9000")]
    listen: SocketAddr,
    /// The bucket to create and fill.
    #[arg(long, default_value = "documents")]
    bucket: String,
    /// Files to upload as `bench/<name>` before serving.
    #[arg(long)]
    seed: Option<PathBuf>,
    /// Write `<key> <path?query>` of a presigned GET (valid a day) per seeded object here, so a
    /// plain HTTP client (wrk, or nginx in front) can read the bucket.
    #[arg(long)]
    presign: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    std::fs::create_dir_all(&args.root)?;
    let service = {
        let mut builder = S3ServiceBuilder::new(
            s3s_fs::FileSystem::new(&args.root).map_err(|e| format!("s3s-fs: {e:?}"))?,
        );
        builder.set_auth(SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
        builder.build()
    };
    let listener = TcpListener::bind(args.listen).await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let http = ConnBuilder::new(TokioExecutor::new());
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                continue;
            };
            let conn = http
                .serve_connection(TokioIo::new(socket), service.clone())
                .into_owned();
            tokio::spawn(async move {
                let _ = conn.await;
            });
        }
    });

    let client = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(format!("http://{addr}"))
            .force_path_style(true)
            .credentials_provider(Credentials::new(
                ACCESS_KEY, SECRET_KEY, None, None, "bench",
            ))
            .build(),
    );
    if !args.root.join(&args.bucket).is_dir() {
        client.create_bucket().bucket(&args.bucket).send().await?;
    }
    let mut presigned = String::new();
    if let Some(seed) = &args.seed {
        for entry in std::fs::read_dir(seed)? {
            let path = entry?.path();
            if !path.is_file() {
                continue;
            }
            let key = format!(
                "bench/{}",
                path.file_name().unwrap_or_default().to_string_lossy()
            );
            let body = std::fs::read(&path)?;
            client
                .put_object()
                .bucket(&args.bucket)
                .key(&key)
                .body(body.into())
                .send()
                .await?;
            let url = client
                .get_object()
                .bucket(&args.bucket)
                .key(&key)
                .presigned(PresigningConfig::expires_in(Duration::from_secs(86_400))?)
                .await?;
            let uri: http::Uri = url.uri().parse()?;
            let path = uri.path_and_query().map_or("/", |p| p.as_str());
            presigned.push_str(&format!("{key} {path}\n"));
            eprintln!("s3_origin: put {key}");
        }
    }
    if let Some(file) = &args.presign {
        std::fs::write(file, presigned)?;
    }
    println!(
        "s3_origin: listening on http://{addr}, bucket {}",
        args.bucket
    );
    tokio::signal::ctrl_c().await?;
    Ok(())
}
