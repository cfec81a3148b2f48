//! What the operator and the doctor read from a TLS Secret's certificate: when it expires and
//! which names it covers (PEM and X.509 parsing by `x509-parser`), and what that means for a
//! Shard's Ingress.
use x509_parser::extensions::GeneralName;
use x509_parser::pem::parse_x509_pem;

#[derive(Clone, Debug, PartialEq)]
pub struct CertInfo {
    /// Unix seconds.
    pub not_after: i64,
    /// DNS names of the subjectAltName extension.
    pub dns_names: Vec<String>,
}

/// The first certificate of a PEM chain (`tls.crt`), or why it cannot be read.
pub fn parse(pem: &[u8]) -> Result<CertInfo, String> {
    let (_, pem) = parse_x509_pem(pem).map_err(|e| format!("not a PEM certificate: {e}"))?;
    let cert = pem.parse_x509().map_err(|e| format!("not an X.509 certificate: {e}"))?;
    let dns_names = match cert.subject_alternative_name() {
        Ok(Some(san)) => san
            .value
            .general_names
            .iter()
            .filter_map(|n| match n {
                GeneralName::DNSName(d) => Some(d.to_string()),
                _ => None,
            })
            .collect(),
        _ => vec![],
    };
    Ok(CertInfo { not_after: cert.validity().not_after.timestamp(), dns_names })
}

/// Whether a certificate name (`*.example.com` matches one label) covers `domain`.
pub fn covers(names: &[String], domain: &str) -> bool {
    let domain = domain.to_ascii_lowercase();
    names.iter().any(|n| {
        let n = n.to_ascii_lowercase();
        match n.strip_prefix("*.") {
            Some(rest) => domain.split_once('.').is_some_and(|(_, d)| d == rest),
            None => n == domain,
        }
    })
}

/// A certificate expiring sooner than this is a warning (the alert's window too).
pub const EXPIRY_WARNING_DAYS: i64 = 14;
const WARNING_SECONDS: i64 = EXPIRY_WARNING_DAYS * 86_400;

/// A TLS Secret as read: the operator caches no Secret data, so it is read when checked.
#[derive(Clone, Debug, PartialEq)]
pub enum SecretCert {
    NoSecret,
    NoCertificate,
    Unreadable(String),
    Cert(CertInfo),
}

impl SecretCert {
    /// `tls.crt` of a Secret's data.
    pub fn of(tls_crt: Option<&[u8]>) -> Self {
        match tls_crt.map(parse) {
            None => SecretCert::NoCertificate,
            Some(Err(e)) => SecretCert::Unreadable(e),
            Some(Ok(c)) => SecretCert::Cert(c),
        }
    }
}

fn date(unix: i64) -> String {
    jiff::Timestamp::from_second(unix).map(|t| t.to_string()).unwrap_or_else(|_| unix.to_string())
}

/// Pure: what is wrong with the Shard's Ingress certificate (`secret`, for `domain`) at `now`
/// (Unix seconds), as a Degraded reason and message; None when nothing is.
pub fn ingress_problem(
    secret: &str,
    domain: &str,
    found: &SecretCert,
    now: i64,
) -> Option<(&'static str, String)> {
    let c = match found {
        SecretCert::NoSecret => {
            return Some((
                "IngressTLSSecretMissing",
                format!(
                    "the Ingress TLS Secret {secret} (spec.ingress.tlsSecretName) does not exist: cert-manager may still be issuing it (kubectl describe certificate)"
                ),
            ));
        }
        SecretCert::NoCertificate => {
            return Some(("CertificateInvalid", format!("the Ingress TLS Secret {secret} has no tls.crt")));
        }
        SecretCert::Unreadable(e) => {
            return Some(("CertificateInvalid", format!("tls.crt of the Ingress TLS Secret {secret}: {e}")));
        }
        SecretCert::Cert(c) => c,
    };
    if c.not_after <= now {
        return Some((
            "CertificateExpired",
            format!("the certificate in Secret {secret} expired at {}: renew it", date(c.not_after)),
        ));
    }
    if !covers(&c.dns_names, domain) {
        return Some((
            "CertificateNameMismatch",
            format!(
                "the certificate in Secret {secret} names {} but not {domain}",
                if c.dns_names.is_empty() { "no DNS name".to_string() } else { c.dns_names.join(", ") }
            ),
        ));
    }
    if c.not_after - now < WARNING_SECONDS {
        return Some((
            "CertificateExpiring",
            format!(
                "the certificate in Secret {secret} expires at {} (in {} days): renew it (cert-manager: kubectl describe certificate)",
                date(c.not_after),
                (c.not_after - now).div_euclid(86_400)
            ),
        ));
    }
    None
}

/// Pure: seconds from `now` until the certificate crosses the next line the condition
/// depends on (14 days left, then expiry); None once it has expired.
pub fn next_change(not_after: i64, now: i64) -> Option<u64> {
    let warn_at = not_after - WARNING_SECONDS;
    let next = if now < warn_at { warn_at } else { not_after };
    (next > now).then(|| (next - now) as u64 + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_expiry_and_names_of_a_real_certificate() {
        let mut params = rcgen::CertificateParams::new(vec!["meet.example.com".into()]).unwrap();
        params.not_after = rcgen::date_time_ymd(2031, 1, 2);
        let key = rcgen::KeyPair::generate().unwrap();
        let pem = params.self_signed(&key).unwrap().pem();
        let info = parse(pem.as_bytes()).unwrap();
        assert_eq!(info.dns_names, vec!["meet.example.com".to_string()]);
        assert_eq!(info.not_after, 1_925_078_400); // 2031-01-02T00:00:00Z
        assert!(parse(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n").is_err());
        assert!(parse(b"hello").is_err());
    }

    #[test]
    fn wildcards_cover_one_label() {
        let names = vec!["*.example.com".to_string()];
        assert!(covers(&names, "meet.example.com"));
        assert!(!covers(&names, "a.meet.example.com"));
        assert!(!covers(&names, "example.com"));
        assert!(covers(&["Meet.Example.com".into()], "meet.example.com"));
    }

    #[test]
    fn the_ingress_certificate_is_judged_at_the_time_given() {
        let now = 1_800_000_000;
        let day = 86_400;
        let cert = |days: i64, name: &str| {
            SecretCert::Cert(CertInfo { not_after: now + days * day, dns_names: vec![name.into()] })
        };
        let judge = |c: &SecretCert| ingress_problem("meet-tls", "meet.example.com", c, now);
        assert_eq!(judge(&cert(30, "meet.example.com")), None);
        assert_eq!(judge(&cert(30, "*.example.com")), None);
        let (reason, message) = judge(&cert(5, "meet.example.com")).unwrap();
        assert_eq!(reason, "CertificateExpiring");
        assert!(message.contains("meet-tls") && message.contains("2027-01-20T08:00:00Z"), "{message}");
        assert!(message.contains("in 5 days"), "{message}");
        assert_eq!(judge(&cert(-1, "meet.example.com")).unwrap().0, "CertificateExpired");
        let (reason, message) = judge(&cert(30, "other.example.org")).unwrap();
        assert_eq!(reason, "CertificateNameMismatch");
        assert!(message.contains("other.example.org but not meet.example.com"));
        let (reason, message) = judge(&SecretCert::NoSecret).unwrap();
        assert_eq!(reason, "IngressTLSSecretMissing");
        assert!(message.contains("cert-manager may still be issuing it"));
        assert_eq!(judge(&SecretCert::NoCertificate).unwrap().0, "CertificateInvalid");
        assert_eq!(judge(&SecretCert::of(Some(b"junk"))).unwrap().0, "CertificateInvalid");
    }

    #[test]
    fn the_next_check_is_just_after_each_line() {
        let day = 86_400;
        assert_eq!(next_change(100 * day, 0), Some((86 * day + 1) as u64));
        assert_eq!(next_change(100 * day, 90 * day), Some((10 * day + 1) as u64));
        assert_eq!(next_change(100 * day, 100 * day), None);
    }
}
