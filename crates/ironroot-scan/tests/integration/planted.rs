//! Every planted secret of the test image set is found, at its offset, with its kind and
//! severity, and its value never reaches the report; the same images without the plants
//! have no finding at all.

use ironroot_scan::{Container, FindingKind as K, P256_OID_DER, Scanner, Severity as S};

use crate::common::*;

fn b64url(bytes: &[u8]) -> String {
    let a = B64URL.as_bytes();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.len();
        let v = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for i in 0..=n {
            out.push(a[((v >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

fn b64(bytes: &[u8]) -> String {
    b64url(bytes).replace('-', "+").replace('_', "/")
}

/// The PEM body (between the header and footer lines).
fn pem_body(pem: &[u8]) -> String {
    let text = String::from_utf8_lossy(pem);
    text.lines().filter(|l| !l.starts_with("-----")).collect()
}

#[test]
fn every_planted_key_is_found_at_its_offset_and_clean_firmware_has_no_finding() {
    let dir = scratch();
    let d = dir.path();
    let mut rng = Rng::new();
    let clean = clean_firmware(&mut rng, 512 * 1024);
    assert_eq!(
        Scanner::new().scan(&clean).findings,
        [],
        "clean firmware-like bytes must have no finding"
    );

    let ec = genpkey(d, "ec.pem", "EC");
    let ed = genpkey(d, "ed.pem", "ED25519");
    let rsa = genpkey(d, "rsa.pem", "RSA");
    let ec_pem = std::fs::read(&ec).unwrap();
    let ed_pem = std::fs::read(&ed).unwrap();
    let sec1_pem = openssl(&["ec", "-in", p(&ec)]);
    let pkcs1_pem = openssl(&["rsa", "-in", p(&rsa), "-traditional"]);
    let pkcs8_der = openssl(&["pkey", "-in", p(&ec), "-outform", "DER"]);
    let sec1_der = openssl(&["ec", "-in", p(&ec), "-outform", "DER"]);
    let pkcs1_der = openssl(&["rsa", "-in", p(&rsa), "-traditional", "-outform", "DER"]);
    let pass = format!("pw{}", rng.chars(ALNUM, 10));
    let enc_pem = openssl(&[
        "pkcs8",
        "-topk8",
        "-in",
        p(&ec),
        "-v2",
        "aes-256-cbc",
        "-passout",
        &format!("pass:{pass}"),
    ]);
    assert!(sec1_pem.starts_with(b"-----BEGIN EC PRIVATE KEY-----"));
    assert!(pkcs1_pem.starts_with(b"-----BEGIN RSA PRIVATE KEY-----"));

    let mut img = clean.clone();
    let plants: Vec<(usize, &[u8], K, S)> = vec![
        (0x1000, &ec_pem, K::PrivateKey, S::Critical),
        (0x3000, &ed_pem, K::PrivateKey, S::Critical),
        (0x5000, &sec1_pem, K::PrivateKey, S::Critical),
        (0x7000, &pkcs1_pem, K::PrivateKey, S::Critical),
        (0xa000, &pkcs8_der, K::PrivateKey, S::Critical),
        (0xb003, &sec1_der, K::PrivateKey, S::Critical),
        (0xc001, &pkcs1_der, K::PrivateKey, S::Critical),
        (0xe000, &enc_pem, K::EncryptedPrivateKey, S::High),
    ];
    for (off, bytes, ..) in &plants {
        // A NUL before and after, as a C string or blob sits in an image.
        img[off - 1] = 0;
        plant(&mut img, *off, bytes);
        img[off + bytes.len()] = 0;
    }
    let report = Scanner::new().scan(&img);
    for (off, bytes, kind, sev) in &plants {
        let f = expect(&report, *kind, *sev, *off);
        // A PEM finding ends with its END line (the newline after it is not part of it).
        assert_eq!(f.length as usize, bytes.trim_ascii_end().len(), "{f:?}");
    }
    // Secrets are not in the report: neither PEM bodies, nor DER bytes (as hex or text).
    for pem in [&ec_pem, &ed_pem, &sec1_pem, &pkcs1_pem, &enc_pem] {
        assert_redacted(&report, &pem_body(pem));
    }
    assert_redacted(&report, &pass);
    // No other high finding than the plants.
    let highs = report.at_least(S::High).count();
    assert_eq!(highs, plants.len(), "{:#?}", report.findings);
}

#[test]
fn certificate_with_its_key_is_an_identity_baked_in_and_alone_is_info() {
    let dir = scratch();
    let d = dir.path();
    let mut rng = Rng::new();
    let cn = format!("dev-{}", rng.chars(ALNUM, 8));
    for alg in ["EC", "ED25519", "RSA"] {
        let key = genpkey(d, &format!("{alg}.pem"), alg);
        let cert = self_signed(d, &key, &cn);
        let cert_pem = std::fs::read(&cert).unwrap();
        let cert_der = openssl(&["x509", "-in", p(&cert), "-outform", "DER"]);
        let key_pem = std::fs::read(&key).unwrap();
        let key_der = openssl(&["pkey", "-in", p(&key), "-outform", "DER"]);

        // Certificate alone: info, with its subject.
        let mut img = clean_firmware(&mut rng, 64 * 1024);
        plant(&mut img, 0x800, &cert_pem);
        let report = Scanner::new().scan(&img);
        let f = expect(&report, K::Certificate, S::Info, 0x800);
        assert!(f.detail.contains(&cn), "{f:?}");
        assert!(!report.fails(S::Low), "{alg}: {:#?}", report.findings);

        // PEM certificate + PEM key, and DER certificate + DER key.
        for (c, k) in [(&cert_pem, &key_pem), (&cert_der, &key_der)] {
            let mut img = clean_firmware(&mut rng, 64 * 1024);
            plant(&mut img, 0x800, c);
            plant(&mut img, 0x4000, k);
            let report = Scanner::new().scan(&img);
            expect(&report, K::Certificate, S::Info, 0x800);
            expect(&report, K::PrivateKey, S::Critical, 0x4000);
            let id = expect(&report, K::IdentityBakedIn, S::Critical, 0x800);
            assert!(id.detail.contains("0x4000"), "{id:?}");
        }

        // A certificate and someone else's key: two findings, no identity.
        let other = genpkey(d, "other.pem", alg);
        let mut img = clean_firmware(&mut rng, 64 * 1024);
        plant(&mut img, 0x800, &cert_pem);
        plant(&mut img, 0x4000, &std::fs::read(&other).unwrap());
        let report = Scanner::new().scan(&img);
        expect(&report, K::PrivateKey, S::Critical, 0x4000);
        assert!(at(&report, K::IdentityBakedIn, 0x800).is_empty(), "{alg}");
    }
}

#[test]
fn raw_p256_scalar_next_to_the_curve_oid_is_found_and_a_public_key_is_not() {
    let dir = scratch();
    let key = genpkey(dir.path(), "ec.pem", "EC");
    let sec1 = openssl(&["ec", "-in", p(&key), "-outform", "DER"]);
    // SEC1: 30 77 02 01 01 04 20 <scalar> a0 0a <oid> a1 44 03 42 00 <point>.
    let scalar = &sec1[7..39];
    let point = &sec1[sec1.len() - 65..];
    let spki = openssl(&["pkey", "-in", p(&key), "-pubout", "-outform", "DER"]);
    let mut rng = Rng::new();

    // OID, a 2-byte header, the scalar: high.
    let mut img = clean_firmware(&mut rng, 32 * 1024);
    plant(&mut img, 0x400, &P256_OID_DER);
    plant(&mut img, 0x40a, &[0x04, 0x20]);
    plant(&mut img, 0x40c, scalar);
    let report = Scanner::new().scan(&img);
    expect(&report, K::RawEcScalar, S::High, 0x40c);

    // Scalar before the OID with its public point after: critical.
    let mut img = clean_firmware(&mut rng, 32 * 1024);
    plant(&mut img, 0x400, scalar);
    plant(&mut img, 0x420, &P256_OID_DER);
    plant(&mut img, 0x440, point);
    let report = Scanner::new().scan(&img);
    expect(&report, K::RawEcScalar, S::Critical, 0x400);

    // Text after the OID (an OID table next to a string table) is no scalar, though it
    // passes the distinct-bytes test and is numerically below the group order.
    let mut img = clean_firmware(&mut rng, 32 * 1024);
    plant(&mut img, 0x400, &[0u8; 64]);
    plant(&mut img, 0x420, &P256_OID_DER);
    plant(&mut img, 0x42a, b"eyJhbGciOiJIUzI1NiJ9.unrelated_text");
    assert_eq!(Scanner::new().scan(&img).findings, []);

    // The public key (SPKI DER, as a bootloader embeds it) is no finding.
    let mut img = clean_firmware(&mut rng, 32 * 1024);
    plant(&mut img, 0x400, &spki);
    assert_eq!(Scanner::new().scan(&img).findings, []);
}

#[test]
fn planted_tokens_and_passwords_are_found_and_never_shown() {
    let mut rng = Rng::new();
    let aws_id = format!("AKIA{}", rng.chars(BASE32, 16));
    let aws_secret = rng.chars(B64, 40);
    let github = format!("ghp_{}", rng.chars(ALNUM, 36));
    let slack = format!(
        "xoxb-{}-{}-{}",
        rng.chars("0123456789", 12),
        rng.chars("0123456789", 12),
        rng.chars(ALNUM, 24)
    );
    let google = format!("AIza{}", rng.chars(B64URL, 35));
    let jwt = format!(
        "{}.{}.{}",
        b64url(br#"{"alg":"HS256","typ":"JWT"}"#),
        b64url(format!(r#"{{"sub":"{}"}}"#, rng.chars(ALNUM, 10)).as_bytes()),
        rng.chars(B64URL, 43)
    );
    let bearer = rng.chars(ALNUM, 40);
    let basic = b64(format!("svc:{}", rng.chars(ALNUM, 12)).as_bytes());
    let wifi = rng.chars(ALNUM, 14);
    let json_pw = rng.chars(ALNUM, 10);
    let crypt = format!(
        "$6${}${}",
        rng.chars(ALNUM, 8),
        rng.chars(&B64.replace('+', "."), 86)
    );
    let user = format!("{}{}", rng.chars("abcdefghij", 5), "dev");

    let texts: Vec<(String, usize, K, S)> = vec![
        (
            format!("{aws_id}\0{aws_secret}"),
            0,
            K::AwsAccessKeyId,
            S::High,
        ),
        (
            format!("{aws_id}\0{aws_secret}"),
            21,
            K::AwsSecretKey,
            S::Critical,
        ),
        (github.clone(), 0, K::Token, S::High),
        (slack.clone(), 0, K::Token, S::High),
        (google.clone(), 0, K::Token, S::High),
        (jwt.clone(), 0, K::Token, S::High),
        (
            format!("Authorization: Bearer {bearer}"),
            15,
            K::Token,
            S::High,
        ),
        (
            format!("Authorization: Basic {basic}"),
            0,
            K::Token,
            S::High,
        ),
        (
            format!("wifi_{}={wifi}", "password"),
            5,
            K::HardcodedPassword,
            S::High,
        ),
        (
            format!("{{\"{}\": \"{json_pw}\"}}", "passwd"),
            2,
            K::HardcodedPassword,
            S::High,
        ),
        (
            format!("{}:{}", "admin", "admin"),
            0,
            K::DefaultCredential,
            S::High,
        ),
        (
            format!("{}\0\0\0\0{}", "root", "toor"),
            0,
            K::DefaultCredential,
            S::High,
        ),
        (
            format!("root:{crypt}:19000:0:99999:7:::"),
            5,
            K::PasswordHash,
            S::High,
        ),
        (
            format!("{}::0:0:root:/root:/bin/sh\n", "root"),
            0,
            K::DefaultCredential,
            S::High,
        ),
        ("[DEBUG] rx=%d bytes".into(), 1, K::DebugString, S::Low),
        ("UART0 console".into(), 0, K::DebugString, S::Low),
        (
            "U-Boot 2023.04 (Jan 01 2026)".into(),
            0,
            K::DebugString,
            S::Low,
        ),
        ("jtag_enable=1".into(), 0, K::JtagEnable, S::Medium),
        (
            format!("/home/{user}/fw/src/main.c"),
            0,
            K::BuildPath,
            S::Low,
        ),
        (
            "C:\\Users\\builder\\fw\\main.c".into(),
            0,
            K::BuildPath,
            S::Low,
        ),
        ("cipher RC4 selected".into(), 7, K::WeakCrypto, S::Low),
    ];
    for (text, rel, kind, sev) in &texts {
        let mut img = clean_firmware(&mut rng, 16 * 1024);
        let off = 0x2000 + (rng.next() % 0x1000) as usize;
        img[off - 1] = 0;
        plant(&mut img, off, text.as_bytes());
        img[off + text.len()] = 0;
        let report = Scanner::new().scan(&img);
        expect(&report, *kind, *sev, off + rel);
        assert!(
            report
                .findings
                .iter()
                .all(|f| f.severity <= *sev || f.kind == K::AwsSecretKey),
            "{text:?}: {:#?}",
            report.findings
        );
    }
    let secrets = [
        &aws_secret,
        &github,
        &slack,
        &google,
        &jwt,
        &bearer,
        &basic,
        &wifi,
        &json_pw,
        &crypt,
    ];
    let mut all = String::new();
    for (t, ..) in &texts {
        all.push_str(t);
        all.push('\0');
    }
    let report = Scanner::new().scan(all.as_bytes());
    for s in secrets {
        assert_redacted(&report, s);
    }
    // The key id's random part is not shown either.
    assert_redacted(&report, &aws_id[4..]);
}

#[test]
fn shapes_without_entropy_or_with_placeholders_are_not_findings() {
    let mut rng = Rng::new();
    let low = [
        format!("AKIA{}", "A".repeat(16)),
        format!("AKIA{}EXAMPLE", rng.chars(BASE32, 9)),
        format!("ghp_{}", "ab".repeat(18)),
        format!("{}=%s", "password"),
        format!("--{}=PASSWORD", "password"),
        format!("{}: must be at least 8 characters", "password"),
        format!("{}=********", "password"),
        "Enter password: ".into(),
        // Rust packs strings without NULs: a prompt runs into the next string.
        format!("Enter {}: exit_delete_modeexit_insert_mode", "password"),
        format!("ironroot::{}::check::{{closure}}", "password"),
        format!("{}::0:0:$1$$5$", "root"),
        "bypass=1234".into(),
        "/home/%s/.config".into(),
    ];
    for text in low {
        let mut img = clean_firmware(&mut rng, 8 * 1024);
        img[0x1000 - 1] = 0;
        plant(&mut img, 0x1000, text.as_bytes());
        img[0x1000 + text.len()] = 0;
        let report = Scanner::new().scan(&img);
        assert_eq!(report.findings, [], "{text:?}");
    }
    // The same path accepts the real shapes: a random body is a finding.
    let real = format!("AKIA{}", rng.chars(BASE32, 16));
    let report = Scanner::new().scan(real.as_bytes());
    expect(&report, K::AwsAccessKeyId, S::High, 0);
}

#[test]
fn weak_crypto_tables_are_found_in_either_byte_order() {
    let mut rng = Rng::new();
    let md5: Vec<u8> = [0x6745_2301u32, 0xefcd_ab89, 0x98ba_dcfe, 0x1032_5476]
        .iter()
        .flat_map(|w| w.to_le_bytes())
        .collect();
    let md5_be: Vec<u8> = [0x6745_2301u32, 0xefcd_ab89, 0x98ba_dcfe, 0x1032_5476]
        .iter()
        .flat_map(|w| w.to_be_bytes())
        .collect();
    let des_s1 = [14u8, 4, 13, 1, 2, 15, 11, 8, 3, 10, 6, 12, 5, 9, 0, 7];
    for (table, sev) in [
        (&md5[..], S::Low),
        (&md5_be[..], S::Low),
        (&des_s1[..], S::Medium),
    ] {
        let mut img = clean_firmware(&mut rng, 8 * 1024);
        plant(&mut img, 0x1000, table);
        let report = Scanner::new().scan(&img);
        expect(&report, K::WeakCrypto, sev, 0x1000);
    }
}

#[test]
fn container_is_reported_and_min_severity_filters() {
    let mut rng = Rng::new();
    let mut img = clean_firmware(&mut rng, 8 * 1024);
    plant(&mut img, 0x100, b"\0UART\0");
    let all = Scanner::new().scan(&img);
    assert_eq!(all.container, Container::Raw);
    expect(&all, K::DebugString, S::Low, 0x101);
    let high = Scanner::new().min_severity(S::High).scan(&img);
    assert_eq!(high.findings, []);
}
