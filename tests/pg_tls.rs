//! TLS to the PostgreSQL store, against a real server with `ssl=on` whose certificate openssl
//! made (not botgate): the role `botgate` may only connect with TLS (`hostssl`), so a command
//! that works proves the connection was encrypted, and a wrong CA or host name is refused with a
//! message naming the store.

mod common;

use botgate::store::testdb::{PrivateServer, execute_sql};

/// A CA and a server certificate for 127.0.0.1 only (no DNS name), made with openssl.
fn server_pki(dir: &std::path::Path) -> (String, String) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    for (name, cn) in [("ca", "test db CA"), ("other-ca", "someone else's CA")] {
        let mut args = vec!["req", "-x509"];
        args.extend(ec);
        let (key, pem, subj) = (
            format!("{name}.key"),
            format!("{name}.pem"),
            format!("/CN={cn}"),
        );
        args.extend(["-keyout", &key, "-out", &pem, "-days", "2", "-subj", &subj]);
        common::openssl(dir, &args);
    }
    let mut args = vec!["req"];
    args.extend(ec);
    args.extend([
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    common::openssl(dir, &args);
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    common::openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-sha256",
            "-extfile",
            "san.ext",
        ],
    );
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
    (read("server.crt"), read("server.key"))
}

fn with_store(env: &common::CliEnv, url: &str) {
    std::fs::write(
        env.path("policy.toml"),
        format!("[store]\nurl = \"{url}\"\n"),
    )
    .unwrap();
}

#[test]
fn commands_reach_the_store_over_verified_tls_and_refuse_a_server_they_cannot_verify() {
    let env = common::CliEnv::new();
    let (cert, key) = server_pki(env.dir.path());
    let server = PrivateServer::start_tls(&cert, &key);
    let admin = server.admin_url();
    let port = admin
        .rsplit_once(':')
        .and_then(|(_, rest)| rest.split('/').next())
        .unwrap()
        .to_string();
    server.database("botgate_tls");
    execute_sql(&admin, "ALTER DATABASE botgate_tls OWNER TO botgate").unwrap();
    let ca = env.path("ca.pem");
    let ca = ca.to_str().unwrap();
    let base = format!("postgres://botgate@127.0.0.1:{port}/botgate_tls");

    // Plain TCP is refused by the server for this role: what works below went over TLS.
    with_store(&env, &format!("{base}?sslmode=disable"));
    let (code, _, err) = env.run(&["token", "list"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!("botgate@127.0.0.1:{port}/botgate_tls")),
        "{err}"
    );

    for mode in ["verify-full", "require"] {
        with_store(&env, &format!("{base}?sslmode={mode}&sslrootcert={ca}"));
        let name = format!("ci-{}-prod", mode.replace('-', ""));
        let (code, _, err) = env.run(&["token", "create", &name]);
        assert_eq!(code, 0, "sslmode={mode}: {err}");
        let listed = env.json(&["token", "list"]);
        assert!(listed.to_string().contains(&name), "{listed}");
    }

    // Someone else's CA: refused, naming the store, writing nothing.
    let other = env.path("other-ca.pem");
    with_store(
        &env,
        &format!("{base}?sslmode=verify-full&sslrootcert={}", other.display()),
    );
    let (code, _, err) = env.run(&["token", "create", "ci-never-prod"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!("botgate@127.0.0.1:{port}/botgate_tls")),
        "{err}"
    );
    assert!(
        err.to_lowercase().contains("certificate"),
        "says why: {err}"
    );
    assert!(
        err.contains("check that sslrootcert"),
        "says what to check: {err}"
    );

    // The right CA but a host name the certificate does not carry: refused too.
    with_store(
        &env,
        &format!(
            "postgres://botgate@localhost:{port}/botgate_tls?sslmode=verify-full&sslrootcert={ca}"
        ),
    );
    let (code, _, err) = env.run(&["token", "list"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.to_lowercase().contains("certificate"),
        "says why: {err}"
    );
    assert!(
        err.contains("check that sslrootcert"),
        "says what to check: {err}"
    );

    // No sslrootcert: refused before connecting, saying what to add.
    with_store(&env, &format!("{base}?sslmode=require"));
    let (code, _, err) = env.run(&["token", "list"]);
    assert_ne!(code, 0);
    assert!(err.contains("sslrootcert"), "{err}");

    // Over TLS the two tokens were written (and nothing else).
    with_store(
        &env,
        &format!("{base}?sslmode=verify-full&sslrootcert={ca}"),
    );
    let listed = env.json(&["token", "list"]);
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");
}
