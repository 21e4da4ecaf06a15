//! TLS and SASL/SCRAM-SHA-512, purely by configuration, against a local Kafka
//! with a SASL_SSL listener, a SCRAM user and certificates made at test time
//! (openssl). Credentials never appear in any output, even at -vvv.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

const PASSWORD: &str = "alice-s3cret-Pw-4711";
const WRONG: &str = "not-alices-Pw-0815";

fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl");
    assert!(
        output.status.success(),
        "openssl {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A CA, a server certificate for 127.0.0.1 signed by it, and a PKCS12 keystore.
fn certificates(dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=alertstream test CA",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ],
    );
    std::fs::write(
        dir.join("san.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .unwrap();
    openssl(
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
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "san.ext",
        ],
    );
    std::fs::write(dir.join("password"), "keystore-pw").unwrap();
    openssl(
        dir,
        &[
            "pkcs12",
            "-export",
            "-in",
            "server.pem",
            "-inkey",
            "server.key",
            "-out",
            "server.p12",
            "-name",
            "kafka",
            "-passout",
            "pass:keystore-pw",
        ],
    );
}

#[test]
fn sasl_ssl_with_scram_works_and_never_shows_the_password() {
    let certs = tempfile::tempdir().unwrap();
    certificates(certs.path());
    let scram = format!("alice:{PASSWORD}");
    let cluster = Cluster::start(
        "secure",
        1,
        9492,
        &[
            "--sasl-ssl",
            certs.path().to_str().unwrap(),
            "--scram",
            &scram,
        ],
    );
    let secure = "127.0.0.1:9592";
    let config = certs.path().join("client.properties");
    std::fs::write(
        &config,
        format!(
            "# alertstream client settings for the test cluster\n\
             security.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-512\nsasl.username=alice\n\
             sasl.password={PASSWORD}\nssl.ca.location={}\n",
            certs.path().join("ca.pem").display()
        ),
    )
    .unwrap();
    let topic = topic("secure");
    let config = config.to_str().unwrap();

    let sent = run(&[
        "-vvv",
        "-b",
        secure,
        "--kafka-config",
        config,
        "send",
        &topic,
    ]);
    let sent_log = stderr(&sent);
    assert!(sent.status.success(), "{sent_log}");
    let printed = run(&[
        "-vvv",
        "-b",
        secure,
        "--kafka-config",
        config,
        "print",
        &topic,
        "--group",
        "s",
        "-e",
    ]);
    let printed_log = stderr(&printed);
    assert!(printed.status.success(), "{printed_log}");
    assert_eq!(
        json_lines(&String::from_utf8(printed.stdout).unwrap()).len(),
        12
    );
    assert!(
        sent_log.contains("sasl.password=[redacted]"),
        "the configuration is logged, redacted"
    );
    for log in [&sent_log, &printed_log] {
        assert!(
            !log.contains(PASSWORD),
            "the password leaked into the output"
        );
    }

    // The wrong password: a clear authentication error, and still no password.
    let denied = run(&[
        "-vvv",
        "-b",
        secure,
        "--kafka-config",
        config,
        "-X",
        &format!("sasl.password={WRONG}"),
        "send",
        &topic,
    ]);
    let log = stderr(&denied);
    assert_eq!(denied.status.code(), Some(1), "{log}");
    let last = log.lines().last().unwrap_or_default();
    assert!(
        last.contains("authentication with Kafka at 127.0.0.1:9592 failed"),
        "{log}"
    );
    assert!(
        !log.contains(WRONG) && !log.contains(PASSWORD),
        "a password leaked:\n{log}"
    );

    // The plaintext listener of the same broker still serves others.
    drop(cluster);
}

/// A secret setting mistyped with ':' for '=' (or '=' left out), or with
/// its name misspelt, is refused with exit 2, and neither the error nor the
/// debug lines (-vvv) show its value.
#[test]
fn a_mistyped_secret_setting_never_shows_its_value() {
    for setting in [
        format!("sasl.password:{PASSWORD}"),
        format!("ssl.key.password{PASSWORD}"),
        format!("sasl.oauthbearer.client.secret {PASSWORD}"),
        // A misspelt name: no secret by name, so no value of an unknown one.
        format!("sasl.passwrd={PASSWORD}"),
    ] {
        let output = run(&["-X", &setting, "print", "t", "--no-wait", "-vvv"]);
        let log = stderr(&output);
        assert_eq!(output.status.code(), Some(2), "{setting}: {log}");
        assert!(!log.contains(PASSWORD), "{setting} leaked:\n{log}");
        assert!(log.contains("-X"), "{log}");
    }
}
