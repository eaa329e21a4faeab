//! Encrypted database connections (the brief), against a real PostgreSQL cluster that
//! takes TLS connections only, with a certificate from a CA made for the test:
//! `sslmode=verify-full` works for the migrations (tokio-postgres, crates/postrunner-schema/src/tls.rs) and
//! the pools (sqlx), and refuses a server whose certificate another CA signed or whose
//! name is not the one connected to.

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use postrunner_schema::local_cluster::LocalCluster;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};

/// A CA's certificate (PEM) and a server certificate for `localhost` it signed.
struct Certificates {
    ca_pem: String,
    server_pem: String,
    server_key_pem: String,
}

fn certificates() -> Certificates {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "postrunner test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let server_key = KeyPair::generate().unwrap();
    let mut server_params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    server_params.distinguished_name.push(DnType::CommonName, "localhost");
    let server = server_params.signed_by(&server_key, &ca, &ca_key).unwrap();
    Certificates {
        ca_pem: ca.pem(),
        server_pem: server.pem(),
        server_key_pem: server_key.serialize_pem(),
    }
}

/// Turns TLS on in `cluster` with `certs`, and refuses every connection without it.
async fn require_tls(cluster: &LocalCluster, certs: &Certificates) {
    let admin = sqlx::PgPool::connect(&cluster.admin_url()).await.unwrap();
    let data: String = sqlx::query_scalar("SHOW data_directory")
        .fetch_one(&admin)
        .await
        .unwrap();
    let data = PathBuf::from(data);
    let owner = std::fs::metadata(&data).unwrap();
    for (name, pem) in [("server.crt", &certs.server_pem), ("server.key", &certs.server_key_pem)] {
        let path = data.join(name);
        std::fs::write(&path, pem).unwrap();
        std::os::unix::fs::chown(&path, Some(owner.uid()), Some(owner.gid())).unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    }
    std::fs::write(
        data.join("pg_hba.conf"),
        "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostnossl all all 127.0.0.1/32 reject\n",
    )
    .unwrap();
    for statement in ["ALTER SYSTEM SET ssl = on", "SELECT pg_reload_conf()"] {
        sqlx::query(statement).execute(&admin).await.unwrap();
    }
    // The reload is asynchronous: wait until the server says TLS is on.
    crate::support::eventually(
        std::time::Duration::from_secs(10),
        "ssl = on after the reload",
        || async {
            sqlx::query_scalar::<_, String>("SHOW ssl")
                .fetch_one(&admin)
                .await
                .is_ok_and(|on| on == "on")
        },
    )
    .await;
    admin.close().await;
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[tokio::test]
async fn verify_full_connects_the_migrations_and_the_pools_and_refuses_impostors() {
    // The pools' rustls and the test build's other provider: choose ring, as the program does.
    postrunner_providers::http::install_crypto_provider();
    let cluster = tokio::task::spawn_blocking(LocalCluster::start).await.unwrap().unwrap();
    let certs = certificates();
    require_tls(&cluster, &certs).await;
    let dir = std::env::temp_dir().join(format!("postrunner-tls-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca = write(&dir, "ca.pem", &certs.ca_pem);
    let other_ca = write(&dir, "other-ca.pem", &certificates().ca_pem);
    let port = cluster.port();
    let url = |host: &str, params: &str| format!("postgres://postgres@{host}:{port}/postgres?{params}");
    let verified = url("localhost", &format!("sslmode=verify-full&sslrootcert={ca}"));

    // Without TLS the server refuses: whatever connects below, connects encrypted.
    let plain = sqlx::PgPool::connect(&url("127.0.0.1", "sslmode=disable")).await;
    assert!(
        plain.unwrap_err().to_string().contains("no encryption"),
        "hostnossl reject"
    );

    let report = postrunner_schema::migrate::run(&verified)
        .await
        .expect("migrations over verify-full");
    assert!(!report.migrations.is_empty());
    let pool = postrunner_schema::pool(&verified, 2, "postrunner-tls-test").unwrap();
    let (ssl, version): (bool, String) =
        sqlx::query_as("SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(ssl && version.starts_with("TLS"), "{version}");

    // The binary, as a deployment runs it.
    crate::support::run::postrunner_output(&verified, &["status", "--json"], &[]).await;

    // Another CA's server, or a name the certificate does not carry: refused by both.
    for (what, impostor) in [
        (
            "signed by another CA",
            url("localhost", &format!("sslmode=verify-full&sslrootcert={other_ca}")),
        ),
        (
            "not the certificate's name",
            url("127.0.0.1", &format!("sslmode=verify-full&sslrootcert={ca}")),
        ),
    ] {
        let migrated = postrunner_schema::migrate::run(&impostor).await;
        assert!(migrated.is_err(), "migrate must refuse a server {what}");
        let pooled = sqlx::PgPool::connect(&impostor).await;
        assert!(pooled.is_err(), "the pool must refuse a server {what}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
